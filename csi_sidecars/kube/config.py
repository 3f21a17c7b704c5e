"""Where the API server is and how to authenticate: ``--kubeconfig``, ``KUBECONFIG`` or in-cluster.

The order is the flag, then the ``KUBECONFIG`` environment variable, then the in-cluster service
account. A kubeconfig whose user needs no plugin (token, token file, client certificate, basic
auth) is read here; one with an exec or auth-provider plugin goes to kubernetes_asyncio's loader,
imported only then (importing it is a large part of a role's start-up). In-cluster config is read
here too: the projected service-account token is re-read whenever its file changes, so a rotated
token is used from the next request on. The result is a small :class:`ClientConfig` that our own
HTTP layer uses.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

AuthProvider = Callable[[], Awaitable[str | None]]


async def _no_auth() -> str | None:
    return None


@dataclass(slots=True)
class ClientConfig:
    """Connection settings for :class:`~csi_sidecars.kube.client.KubeClient`."""

    host: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify_ssl: bool = True
    tls_server_name: str | None = None
    auth: AuthProvider = field(default=_no_auth, repr=False)

    async def authorization(self) -> str | None:
        """The ``Authorization`` header value for the next request (re-read on each call)."""
        return await self.auth()

    @classmethod
    def with_token(
        cls, host: str, token: str, *, ca_file: str | None = None, verify_ssl: bool = True
    ) -> ClientConfig:
        """A config with a fixed bearer token."""

        async def auth() -> str:
            return f"Bearer {token}"

        return cls(host=host.rstrip("/"), ca_file=ca_file, verify_ssl=verify_ssl, auth=auth)


def _from_configuration(cfg: object) -> ClientConfig:
    """Wrap a kubernetes_asyncio ``Configuration``."""

    async def auth() -> str | None:
        settings = await cfg.auth_settings()  # type: ignore[attr-defined]
        bearer = settings.get("BearerToken")
        if bearer and bearer.get("value"):
            return str(bearer["value"])
        basic = cfg.get_basic_auth_token() if getattr(cfg, "username", None) else None  # type: ignore[attr-defined]
        return str(basic) if basic else None

    return ClientConfig(
        host=str(cfg.host).rstrip("/"),  # type: ignore[attr-defined]
        ca_file=getattr(cfg, "ssl_ca_cert", None),
        cert_file=getattr(cfg, "cert_file", None),
        key_file=getattr(cfg, "key_file", None),
        verify_ssl=bool(getattr(cfg, "verify_ssl", True)),
        tls_server_name=getattr(cfg, "tls_server_name", None),
        auth=auth,
    )


SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

#: User entries our own reader understands; anything else (exec, auth-provider) goes to
#: kubernetes_asyncio's loader.
_SIMPLE_USER_KEYS = {
    "token",
    "tokenFile",
    "client-certificate",
    "client-certificate-data",
    "client-key",
    "client-key-data",
    "username",
    "password",
}


def _named(entries: list[dict[str, Any]] | None, name: str, kind: str) -> dict[str, Any]:
    for entry in entries or []:
        if entry.get("name") == name:
            return dict(entry.get(kind) or {})
    raise KeyError(f"{kind} {name!r} not found in kubeconfig")


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _materialise(base: str, data_b64: str | None, path: str | None, suffix: str) -> str | None:
    """A file path for a kubeconfig file reference or inline ``*-data`` (written 0600)."""
    if data_b64:
        fd, tmp = tempfile.mkstemp(prefix="csi-sidecars-kube-", suffix=suffix)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(data_b64))
        atexit.register(_unlink_quietly, tmp)
        return tmp
    if path:
        return path if os.path.isabs(path) else os.path.join(base, path)
    return None


def _read_kubeconfig(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:  # a JSON kubeconfig (JSON is YAML too) needs no YAML parser: about 10 ms of start-up
        doc = json.loads(text)
    except ValueError:
        import yaml  # type: ignore[import-untyped]

        doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError("not a kubeconfig document")
    return doc


def _context(doc: dict[str, Any], context_name: str = "") -> dict[str, Any]:
    context_name = context_name or doc.get("current-context") or ""
    if not context_name:
        raise ValueError("kubeconfig has no current-context")
    return _named(doc.get("contexts"), context_name, "context")


def simple_kubeconfig(path: str, context_name: str = "") -> ClientConfig | None:
    """Read a kubeconfig that needs no plugin (token, token file, client certificate, basic).

    This avoids importing kubernetes_asyncio (a large part of a role's start-up time) for the
    common cases. Returns None when the current user needs an exec or auth-provider plugin, so
    the caller falls back to the full loader.

    Args:
        path: the kubeconfig file.
        context_name: the context to use ("" for ``current-context``).

    Raises:
        OSError: the file cannot be read.
        ValueError, KeyError, TypeError: the file is not a usable kubeconfig.
    """
    doc = _read_kubeconfig(path)
    context = _context(doc, context_name)
    cluster = _named(doc.get("clusters"), context["cluster"], "cluster")
    user = _named(doc.get("users"), context.get("user", ""), "user") if context.get("user") else {}
    if set(user) - _SIMPLE_USER_KEYS:
        return None
    base = os.path.dirname(os.path.abspath(path))
    server = str(cluster["server"]).rstrip("/")
    token, token_file = user.get("token"), user.get("tokenFile")
    auth: AuthProvider = _no_auth
    if token:

        async def bearer() -> str:
            return f"Bearer {token}"

        auth = bearer
    elif token_file:
        auth = _TokenFile(
            token_file if os.path.isabs(token_file) else os.path.join(base, token_file)
        )
    elif user.get("username"):
        basic = base64.b64encode(f"{user['username']}:{user.get('password', '')}".encode())

        async def basic_auth() -> str:
            return f"Basic {basic.decode()}"

        auth = basic_auth
    return ClientConfig(
        host=server,
        ca_file=_materialise(
            base,
            cluster.get("certificate-authority-data"),
            cluster.get("certificate-authority"),
            ".crt",
        ),
        cert_file=_materialise(
            base, user.get("client-certificate-data"), user.get("client-certificate"), ".crt"
        ),
        key_file=_materialise(base, user.get("client-key-data"), user.get("client-key"), ".key"),
        verify_ssl=not cluster.get("insecure-skip-tls-verify", False),
        tls_server_name=cluster.get("tls-server-name"),
        auth=auth,
    )


class _TokenFile:
    """Reads a bearer token file, again whenever it changes (rotation)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def _read(self) -> str:
        # A few bytes, read only when the file changed: not worth a thread.
        with open(self.path, encoding="utf-8") as f:
            return f.read().strip()

    async def __call__(self) -> str | None:
        st = os.stat(self.path)
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            token = self._read()
            if not token:
                raise RuntimeError(f"service account token file {self.path} is empty")
            self._token, self._stamp = token, stamp
        return f"Bearer {self._token}"


def in_cluster_config(environ: Mapping[str, str], sa_dir: str = SA_DIR) -> ClientConfig:
    """The in-cluster config from ``KUBERNETES_SERVICE_HOST/PORT`` and the service account.

    Raises:
        RuntimeError: when not running in a cluster.
    """
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise RuntimeError("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
    token = os.path.join(sa_dir, "token")
    ca = os.path.join(sa_dir, "ca.crt")
    for path in (token, ca):
        if not os.path.isfile(path):
            raise RuntimeError(f"{path} does not exist")
    if ":" in host:
        host = f"[{host}]"
    tokens = _TokenFile(token)
    return ClientConfig(host=f"https://{host}:{port}", ca_file=ca, auth=tokens)


def context_namespace(
    kubeconfig: str | None = None,
    context_name: str = "",
    environ: Mapping[str, str] | None = None,
    sa_dir: str = SA_DIR,
) -> str:
    """The default namespace, as kubectl picks it: the kubeconfig context's ``namespace``, or
    in-cluster the service account's namespace; "" when neither says.

    The kubeconfig is found as :func:`load_client_config` finds it. Never raises: an unreadable
    file yields "" (loading the client config reports the error).
    """
    env = os.environ if environ is None else environ
    path = kubeconfig or env.get("KUBECONFIG", "")
    try:
        if path:
            return str(_context(_read_kubeconfig(path), context_name).get("namespace") or "")
        with open(os.path.join(sa_dir, "namespace"), encoding="utf-8") as f:
            return f.read().strip()
    except (OSError, ValueError, KeyError, TypeError):
        return ""


async def load_client_config(
    kubeconfig: str | None = None,
    environ: Mapping[str, str] | None = None,
    sa_dir: str = SA_DIR,
    master: str = "",
    context_name: str = "",
) -> ClientConfig:
    """Load the API server connection settings.

    ``master`` (the ``--master`` flag of the roles that have it) overrides the server URL of
    the kubeconfig, as client-go's ``BuildConfigFromFlags`` does; with no kubeconfig at all it
    is the whole configuration (the URL, no credentials), not the in-cluster account.

    Args:
        kubeconfig: the ``--kubeconfig`` flag; empty means "not given".
        environ: the environment (defaults to ``os.environ``); ``KUBECONFIG`` is read from it.
        sa_dir: the service account directory (in-cluster).
        master: the ``--master`` flag; empty means "not given".
        context_name: the kubeconfig context to use ("" for its ``current-context``).

    Returns:
        The connection settings.

    Raises:
        RuntimeError: when no configuration can be loaded; the message names the sources tried.
    """
    env = os.environ if environ is None else environ
    path = kubeconfig or env.get("KUBECONFIG", "")
    if master:
        if not path:
            return ClientConfig(host=master.rstrip("/"))
        loaded = await load_client_config(
            path, environ=env, sa_dir=sa_dir, context_name=context_name
        )
        loaded.host = master.rstrip("/")
        return loaded
    if not path:
        try:
            return in_cluster_config(env, sa_dir)
        except RuntimeError as exc:
            raise RuntimeError(
                f"cannot load Kubernetes client config from the in-cluster service account "
                f"(and neither --kubeconfig nor KUBECONFIG is set): {exc}"
            ) from None
    try:
        simple = simple_kubeconfig(path, context_name)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(f"cannot load Kubernetes client config from {path!r}: {exc}") from None
    if simple is not None:
        return simple
    from kubernetes_asyncio import config as kconfig
    from kubernetes_asyncio.client import Configuration

    cfg = Configuration()
    try:
        await kconfig.load_kube_config(
            config_file=path,
            client_configuration=cfg,
            persist_config=False,
            context=context_name or None,
        )
    except Exception as exc:  # the loader raises several unrelated types
        raise RuntimeError(f"cannot load Kubernetes client config from {path!r}: {exc}") from None
    return _from_configuration(cfg)
