"""A small raw-HTTP Kubernetes client for the testbed: JSON dicts in, JSON dicts out.

Tests and the control plane itself use it to create objects, read them back and provoke edge
cases (conflicts, 410 Gone, forbidden requests) without any model layer in between. It is kept
independent of :mod:`csi_sidecars.kube`, so a bug in the code under test cannot hide in the tool
that checks it.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from csi_sidecars.playground.process import poll_until

_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


class ApiError(Exception):
    """An API request answered with an error status.

    Attributes:
        status: the HTTP status code.
        reason: ``Status.reason`` (e.g. ``NotFound``, ``Forbidden``, ``Conflict``), if any.
        body: the decoded response body (a ``Status`` object for API errors).
    """

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        self.reason = body.get("reason", "") if isinstance(body, dict) else ""
        message = body.get("message", "") if isinstance(body, dict) else str(body)[:300]
        super().__init__(f"{method} {path}: HTTP {status} {self.reason}: {message}")


class RawApi:
    """JSON requests against one API server with one bearer token.

    Args:
        server: base URL, e.g. ``https://127.0.0.1:6443``.
        token: bearer token (never logged or put in error messages).
        ca_file: CA bundle that signed the server certificate.
        timeout: default total timeout per request, in seconds.
    """

    def __init__(self, server: str, token: str, ca_file: Path, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self._ssl = ssl.create_default_context(cafile=str(ca_file))
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=50),
            )
        return self._session

    async def close(self) -> None:
        """Close the HTTP session; a later request opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RawApi:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        *,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        """Send one request; return ``(status, decoded body)`` without raising on HTTP errors."""
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self._http().request(
            method,
            self.server + path,
            data=data,
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
        ) as resp:
            text = await resp.text()
            try:
                decoded: Any = json.loads(text) if text else None
            except ValueError:
                decoded = text
            return resp.status, decoded

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        *,
        content_type: str = "application/json",
    ) -> Any:
        """Send one request and return the decoded body.

        Raises:
            ApiError: the status is not 2xx.
        """
        status, decoded = await self.call(method, path, body, params, content_type=content_type)
        if status >= 300:
            raise ApiError(method, path, status, decoded)
        return decoded

    async def get(self, path: str, **params: str) -> Any:
        """GET ``path`` (query parameters as keyword arguments)."""
        return await self.request("GET", path, params=params or None)

    async def get_or_none(self, path: str) -> Any:
        """GET ``path``; None when it is not found."""
        status, decoded = await self.call("GET", path)
        if status == 404:
            return None
        if status >= 300:
            raise ApiError("GET", path, status, decoded)
        return decoded

    async def create(self, path: str, obj: Mapping[str, Any]) -> Any:
        """POST ``obj`` to the collection ``path``."""
        return await self.request("POST", path, obj)

    async def replace(self, path: str, obj: Mapping[str, Any]) -> Any:
        """PUT ``obj`` at ``path``."""
        return await self.request("PUT", path, obj)

    async def patch(self, path: str, patch: Any, kind: str = "merge") -> Any:
        """PATCH ``path``; ``kind`` is ``merge``, ``strategic``, ``json`` or ``apply``."""
        return await self.request("PATCH", path, patch, content_type=_PATCH_TYPES[kind])

    async def delete(self, path: str, missing_ok: bool = True) -> Any:
        """DELETE ``path``; a 404 returns None when ``missing_ok``."""
        status, decoded = await self.call("DELETE", path)
        if status == 404 and missing_ok:
            return None
        if status >= 300:
            raise ApiError("DELETE", path, status, decoded)
        return decoded

    async def ensure(self, path: str, obj: Mapping[str, Any]) -> Any:
        """Create ``obj`` in collection ``path``; an existing object of that name is left as is."""
        status, decoded = await self.call("POST", path, obj)
        if status == 409:
            return None
        if status >= 300:
            raise ApiError("POST", path, status, decoded)
        return decoded

    async def wait_for(
        self,
        path: str,
        condition: Callable[[dict[str, Any]], bool],
        timeout: float = 60.0,
        what: str = "",
    ) -> dict[str, Any]:
        """Poll ``path`` until the object exists and ``condition(obj)`` holds; return it.

        Raises:
            TimeoutError: not within ``timeout`` seconds; the message shows the last object seen.
        """
        last: list[Any] = [None]

        async def check() -> dict[str, Any] | None:
            obj = await self.get_or_none(path)
            last[0] = obj
            return obj if obj is not None and condition(obj) else None

        try:
            return await poll_until(check, timeout, what or f"condition on {path}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last seen: {json.dumps(last[0])[:2000]}") from None

    async def wait_deleted(self, path: str, timeout: float = 60.0) -> None:
        """Poll ``path`` until it answers 404.

        Raises:
            TimeoutError: the object still exists after ``timeout`` seconds.
        """

        async def gone() -> bool:
            return await self.get_or_none(path) is None

        await poll_until(gone, timeout, f"{path} to be deleted")

    async def watch(
        self, path: str, resource_version: str, timeout: float = 30.0, **params: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch collection ``path`` from ``resource_version``; yield each event dict.

        A watch the server refuses (e.g. 410 Gone for a compacted resource version) arrives as
        one ``ERROR`` event carrying a ``Status`` object, exactly as a client sees it.
        """
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(int(timeout)),
            **params,
        }
        async with self._http().get(
            self.server + path,
            params=query,
            timeout=aiohttp.ClientTimeout(total=timeout + 5, sock_read=timeout + 5),
        ) as resp:
            if resp.status >= 300:
                text = await resp.text()
                try:
                    body: Any = json.loads(text)
                except ValueError:
                    body = text
                yield {"type": "ERROR", "object": body}
                return
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)
