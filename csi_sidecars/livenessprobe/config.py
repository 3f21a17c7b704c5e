"""livenessprobe flags resolved into one validated configuration, and the /healthz answers.

Pure code: :func:`build_config` applies the Go sidecar's flag rules (``--health-port`` and
``--metrics-address`` are deprecated and conflict with ``--http-endpoint``; without
``--http-endpoint`` the health server listens on ``0.0.0.0:<health-port>`` and no metrics are
served unless ``--metrics-address`` is given), and :func:`probe_answer` turns the outcome of one
probe into the exact status and body the Go livenessprobe returns.
"""

from __future__ import annotations

from typing import NamedTuple

from csi_sidecars.csi.lean.address import parse_target
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.options import HttpOptions

__all__ = ["Answer", "Config", "ConfigError", "build_config", "probe_answer"]

DEFAULT_HEALTH_PORT = "9808"
DEFAULT_MAX_CONCURRENT_PROBES = 8

OK_BODY = "ok"
NOT_READY_BODY = "driver responded but is not ready"
TOO_MANY_BODY = "too many concurrent probes"
DEADLINE_BODY = "context deadline exceeded"


class Config(NamedTuple):
    """What the livenessprobe does, derived from its flags."""

    csi_address: str
    probe_timeout: float
    #: host:port of the server that answers /healthz.
    health_address: str
    #: Whether metrics are served on the health server too (only with --http-endpoint).
    metrics_on_health: bool
    #: host:port of a separate metrics server (deprecated --metrics-address), or "".
    metrics_address: str
    metrics_path: str
    #: Probes running at once; 0 means no limit.
    max_concurrent_probes: int


def build_config(
    *,
    csi_address: str,
    probe_timeout: float,
    health_port: str,
    http_endpoint: str,
    metrics_address: str,
    metrics_path: str,
    max_concurrent_probes: int = DEFAULT_MAX_CONCURRENT_PROBES,
) -> Config:
    """Validate the flags and derive the configuration.

    Raises:
        ConfigError: with the Go message when flags conflict, or for a bad value.
    """
    if health_port != DEFAULT_HEALTH_PORT and http_endpoint:
        raise ConfigError("Only one of `--health-port` and `--http-endpoint` can be explicitly set")
    HttpOptions(http_endpoint, metrics_address, metrics_path).validate(
        "Only one of `--metrics-address` and `--http-endpoint` can be explicitly set"
    )
    try:
        parse_target(csi_address)
    except ConfigError as err:
        raise ConfigError(f"--csi-address: {err}") from None
    if probe_timeout <= 0:
        raise ConfigError(f"--probe-timeout must be positive, got {probe_timeout}s")
    if max_concurrent_probes < 0:
        raise ConfigError("--max-concurrent-probes must be 0 (no limit) or positive")
    if http_endpoint:
        health_address = http_endpoint
    else:
        port = health_port.strip()
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"invalid --health-port {health_port!r}")
        health_address = f"0.0.0.0:{port}"
    return Config(
        csi_address=csi_address,
        probe_timeout=probe_timeout,
        health_address=health_address,
        metrics_on_health=bool(http_endpoint),
        metrics_address=metrics_address,
        metrics_path=metrics_path,
        max_concurrent_probes=max_concurrent_probes,
    )


class Answer(NamedTuple):
    """An HTTP status and body for /healthz."""

    status: int
    body: str


def probe_answer(*, ready: bool | None = None, error: str | None = None) -> Answer:
    """The Go livenessprobe's answer for one probe.

    Args:
        ready: ``Probe``'s ``ready`` field (None when absent, which means ready).
        error: the Go-formatted error text when connecting or ``Probe`` failed.

    Returns:
        200 ``ok``; or 500 with the error text, or ``driver responded but is not ready``.
    """
    if error is not None:
        return Answer(500, error)
    if ready is False:
        return Answer(500, NOT_READY_BODY)
    return Answer(200, OK_BODY)


def overloaded_answer() -> Answer:
    """The answer when --max-concurrent-probes probes are already running."""
    return Answer(503, TOO_MANY_BODY)
