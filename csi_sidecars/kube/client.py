"""The real :class:`~csi_sidecars.kube.port.KubePort`: raw JSON over HTTP/1.1 to the API server.

kubernetes_asyncio is used only to read the configuration (kubeconfig or in-cluster, including
re-reading a rotated service-account token through its refresh hook). Requests go through our own
small HTTP client (:mod:`csi_sidecars.kube.http`; a third of aiohttp's CPU per request) so hot
paths get plain dicts (msgspec's JSON decoder: the same values as ``json.loads``, several times
faster; slim ones from an informer's decoder) and never build generated
models; every request (watches included) first takes a token from the client's
:class:`~csi_sidecars.kube.ratelimit.TokenBucket`, as client-go does. Requests share a bounded
pool of keep-alive connections (``max_connections``); watches, which hold a connection for
minutes, each open a connection of their own and never wait for that pool.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import msgspec

from csi_sidecars import __version__
from csi_sidecars.kube.config import ClientConfig
from csi_sidecars.kube.http import HttpPool
from csi_sidecars.kube.port import PATCH_CONTENT_TYPES, Decoder, PatchType, WatchEvent
from csi_sidecars.kube.ratelimit import TokenBucket
from csi_sidecars.kube.resources import ApiError, JsonDict, Resource

DEFAULT_REQUEST_TIMEOUT = 30.0
WATCH_READ_MARGIN = 30.0
#: Connections for requests other than watches; more requests at once wait for one. Every TLS
#: connection costs a handshake on both ends and memory; a throttled client keeps a few busy.
#: (client-go keeps 25 idle HTTP/1.1 connections per host, or multiplexes one HTTP/2 connection.)
MAX_CONNECTIONS = 24


#: Request bodies to compact JSON bytes (msgspec: several times json.dumps' speed).
_encode = msgspec.json.Encoder().encode
#: Answers to plain dicts and lists, as ``json.loads`` gives them (a ValueError when not JSON).
_decode = msgspec.json.Decoder().decode


def user_agent(role: str) -> str:
    """The User-Agent for ``role``, e.g. ``csi-sidecars-attacher/0.1.0``."""
    return f"csi-sidecars-{role}/{__version__}"


def _ssl_context(cfg: ClientConfig) -> ssl.SSLContext | None:
    if not cfg.host.startswith("https"):
        return None
    ctx = ssl.create_default_context(cafile=cfg.ca_file)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class KubeClient:
    """An API server client: raw dicts in and out, throttled, with a user agent."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        qps: float = 5.0,
        burst: int = 10,
        agent: str = "csi-sidecars",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        limiter: TokenBucket | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        """Create a client; the HTTP session opens lazily inside the running loop.

        Args:
            config: where the API server is and how to authenticate.
            qps: requests per second (``--kube-api-qps``).
            burst: burst size (``--kube-api-burst``).
            agent: the User-Agent header.
            request_timeout: total timeout of a non-watch request, in seconds.
            limiter: a token bucket to use instead of one built from qps/burst.
            max_connections: connections for requests at once (watches have their own, one
                per watch, not counted).
        """
        self.config = config
        self.limiter = limiter or TokenBucket(qps, burst)
        self.agent = agent
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self._pool: HttpPool | None = None
        self._ssl: ssl.SSLContext | None = None
        self._ssl_made = False

    def _new_pool(self, limit: int) -> HttpPool:
        if not self._ssl_made:
            self._ssl = _ssl_context(self.config)
            self._ssl_made = True
        return HttpPool(
            self.config.host,
            ssl_context=self._ssl,
            server_hostname=self.config.tls_server_name,
            limit=limit,
            headers={"User-Agent": self.agent},
        )

    def _get_pool(self) -> HttpPool:
        if self._pool is None:
            self._pool = self._new_pool(self.max_connections)
        return self._pool

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._pool is not None:
            await self._pool.close()
        self._pool = None

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        auth = await self.config.authorization()
        if auth:
            headers["Authorization"] = auth
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        decode: Callable[[bytes], Any] | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> Any:
        """Send one throttled request and return the decoded JSON answer.

        ``decode`` replaces the plain JSON decoding of a successful answer (errors are always
        decoded whole). With ``sink`` a successful answer's body goes to it piece by piece as
        it arrives and None is returned.

        Raises:
            ApiError: for any non-2xx answer.
        """
        await self.limiter.acquire()
        data = None if body is None else _encode(body)
        if data is not None and content_type is None:
            content_type = "application/json"
        headers = await self._headers(content_type)
        pool = self._get_pool()
        resp = await pool.request(
            method,
            pool.target(path, params),
            headers=headers,
            body=data,
            timeout=self.request_timeout,
            sink=sink,
        )
        if sink is not None and resp.status < 300:
            return None
        raw = resp.body
        if decode is not None and resp.status < 300 and raw:
            # A long answer is a bytearray (see Stream.read_buffer); the decoders (msgspec,
            # json) take any bytes-like buffer.
            return decode(cast(bytes, raw))
        try:
            decoded = _decode(raw) if raw else None
        except ValueError:
            decoded = raw.decode("utf-8", "replace")
        if resp.status >= 300:
            raise ApiError.from_status(resp.status, decoded)
        return decoded

    async def get(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JsonDict:
        """Read one object."""
        out: JsonDict = await self.request("GET", resource.path(namespace, name, subresource))
        return out

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        decoder: Decoder | None = None,
        each: Callable[[Any], None] | None = None,
    ) -> JsonDict:
        """One page of a list (items slim when a ``decoder`` is given).

        With ``each`` every item is handed to it, in order, and the page comes back without
        items; with a ``decoder`` too, items are decoded and handed out while the answer
        arrives, so a long answer is never held whole (:class:`~.decode.PageSplitter`).
        """
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if each is not None and decoder is not None:
            splitter = decoder.splitter()

            def sink(piece: bytes) -> None:
                for obj in splitter.feed(piece):
                    each(obj)

            await self.request("GET", resource.path(namespace), params=params, sink=sink)
            page = splitter.finish()
        else:
            page = await self.request(
                "GET",
                resource.path(namespace),
                params=params,
                decode=decoder.page if decoder is not None else None,
            )
        if each is not None:
            for obj in page.get("items") or ():
                each(obj)
            page["items"] = []
        return page

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
        decoder: Decoder | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Stream watch events; the read timeout is the server timeout plus a margin.

        With ``decoder`` each line is decoded by it (objects slim).

        Raises:
            ApiError: for an error answer or an ERROR event (410 when the version is too old).
        """
        params: dict[str, str] = {"watch": "1"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if timeout_seconds:
            params["timeoutSeconds"] = str(timeout_seconds)
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        await self.limiter.acquire()
        headers = await self._headers(None)
        read = (timeout_seconds or 300) + WATCH_READ_MARGIN
        decode: Callable[[bytes], Any] = decoder.event if decoder is not None else _decode
        # Watches hold their connection for minutes: each has its own, never the pool's.
        pool = self._get_pool()
        async with pool.stream(
            "GET",
            pool.target(resource.path(namespace), params),
            headers=headers,
            connect_timeout=10.0,
            read_timeout=read,
        ) as resp:
            if resp.status >= 300:
                raw = await resp.read()
                try:
                    body = _decode(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                raise ApiError.from_status(resp.status, body)
            async for line in resp.lines():
                if not line.strip():
                    continue
                event = decode(line)
                etype = event.get("type")
                obj = event.get("object") or {}
                if etype == "ERROR":
                    raise ApiError.from_status(int(obj.get("code") or 500), obj)
                yield WatchEvent(str(etype), obj)

    async def create(
        self,
        resource: Resource,
        body: JsonDict,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> JsonDict:
        """Create an object."""
        ns = namespace or (body.get("metadata") or {}).get("namespace")
        path = resource.path(ns)
        if subresource:
            path = resource.path(ns, body["metadata"]["name"], subresource)
        params = {"fieldManager": field_manager} if field_manager else None
        out: JsonDict = await self.request("POST", path, params=params, body=body)
        return out

    async def replace(
        self,
        resource: Resource,
        body: JsonDict,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JsonDict:
        """PUT an object (optimistic concurrency on ``metadata.resourceVersion``)."""
        meta = body.get("metadata") or {}
        ns = namespace or meta.get("namespace")
        path = resource.path(ns, meta["name"], subresource)
        out: JsonDict = await self.request("PUT", path, body=body)
        return out

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> JsonDict:
        """Patch an object with the given patch type."""
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force is not None:
            params["force"] = "true" if force else "false"
        out: JsonDict = await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            params=params or None,
            body=patch,
            content_type=PATCH_CONTENT_TYPES[patch_type],
        )
        return out

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation_policy: str | None = None,
    ) -> JsonDict | None:
        """Delete an object."""
        body: JsonDict = {"kind": "DeleteOptions", "apiVersion": "v1"}
        pre: JsonDict = {}
        if uid:
            pre["uid"] = uid
        if resource_version:
            pre["resourceVersion"] = resource_version
        if pre:
            body["preconditions"] = pre
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        out: JsonDict | None = await self.request(
            "DELETE", resource.path(namespace, name), body=body
        )
        return out
