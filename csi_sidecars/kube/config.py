"""Where the API server is and how to authenticate: ``--kubeconfig``, ``KUBECONFIG`` or in-cluster.

The order is the flag, then the ``KUBECONFIG`` environment variable, then the in-cluster service
account. kubernetes_asyncio's loaders do the parsing (contexts, inline certificates, exec and
OIDC plugins); in-cluster, its refresh hook re-reads the projected token file about once a
minute, so a rotated token is picked up without a restart. The result is a small
:class:`ClientConfig` that our own HTTP layer uses.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

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


async def load_client_config(
    kubeconfig: str | None = None, environ: Mapping[str, str] | None = None
) -> ClientConfig:
    """Load the API server connection settings.

    Args:
        kubeconfig: the ``--kubeconfig`` flag; empty means "not given".
        environ: the environment (defaults to ``os.environ``); ``KUBECONFIG`` is read from it.

    Returns:
        The connection settings.

    Raises:
        RuntimeError: when no configuration can be loaded; the message names the sources tried.
    """
    from kubernetes_asyncio import config as kconfig
    from kubernetes_asyncio.client import Configuration

    env = os.environ if environ is None else environ
    path = kubeconfig or env.get("KUBECONFIG", "")
    cfg = Configuration()
    try:
        if path:
            await kconfig.load_kube_config(
                config_file=path, client_configuration=cfg, persist_config=False
            )
        else:
            kconfig.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=cfg, try_refresh_token=True
            )
    except Exception as exc:  # the loaders raise several unrelated types
        source = f"kubeconfig {path!r}" if path else "in-cluster service account"
        raise RuntimeError(f"cannot load Kubernetes client config from {source}: {exc}") from None
    return _from_configuration(cfg)
