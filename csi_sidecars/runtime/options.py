"""The flags several roles share, each declared once, composed by the roles.

One declaration style: a flag group is a decorator that adds its click options and hands the
command one typed value for the group (``csi=CsiOptions``, ``http=HttpOptions``,
``retry=RetryOptions``, ``gates=FeatureGates``); the Kubernetes and leader-election group is
:func:`csi_sidecars.kube.options.kube_options` (``kube=KubeOptions``); ``-v`` /
``--logging-format`` / ``--version`` are :func:`csi_sidecars.runtime.app.common_options`.
Defaults that differ per role (``--timeout``: 1s registrar, 10s provisioner and resizer, 15s
attacher, 1m snapshotter; ``--worker-threads``) are arguments of the group, not copies of it.

Only flags with one meaning everywhere live here; a role's own flags stay in the role.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.flags import DURATION

if TYPE_CHECKING:
    # Imported by feature_gates() itself: roles without gates (the node roles) skip the module.
    from csi_sidecars.runtime.featuregates import FeatureGates, GateSpec

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[Any], Any]

DEFAULT_CSI_ADDRESS = "/run/csi/socket"

#: The Go sidecars' message for ``--metrics-address`` together with ``--http-endpoint``.
HTTP_EXCLUSIVE = "Only one of `--metrics-address` and `--http-endpoint` can be set"


def compose(*decorators: Decorator) -> Callable[[F], F]:
    """Apply ``decorators`` so that the first one listed is the outermost (as if stacked)."""

    def apply(func: F) -> F:
        out: Any = func
        for deco in reversed(decorators):
            out = deco(out)
        return out  # type: ignore[no-any-return]

    return apply


def _group(name: str, build: Callable[[dict[str, Any]], Any], *options: Decorator) -> Decorator:
    """A flag group: ``options`` are declared, and ``build(kwargs)`` pops them into one value."""

    def decorator(func: Any) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs[name] = build(kwargs)
            return func(*args, **kwargs)

        return compose(*options)(wrapper)

    return decorator


def params_of(func: Callable[..., Any]) -> list[click.Parameter]:
    """The click parameters declared on ``func`` by option decorators, in declaration order.

    A role declares its flags once, on a function that turns them into its configuration; its
    command takes them from here (``click.command(params=params_of(configure))``), and so can
    the node bundle (``csi-sidecars run``), which prefixes them with the role's name.
    """
    return list(reversed(getattr(func, "__click_params__", [])))


@dataclass(frozen=True, slots=True)
class CsiOptions:
    """``--csi-address`` and the role's ``--timeout`` (0 when the role has none)."""

    address: str = DEFAULT_CSI_ADDRESS
    timeout: float = 0.0


def csi_options(
    *, timeout: str | None, timeout_help: str = "Timeout of each CSI call."
) -> Decorator:
    """``--csi-address`` and, unless ``timeout`` is None, ``--timeout`` with that default."""
    options: list[Decorator] = [
        click.option(
            "--csi-address",
            default=DEFAULT_CSI_ADDRESS,
            show_default=True,
            help="Address of the CSI driver socket.",
        )
    ]
    if timeout is not None:
        options.append(
            click.option(
                "--timeout", type=DURATION, default=timeout, show_default=True, help=timeout_help
            )
        )

    def build(kwargs: dict[str, Any]) -> CsiOptions:
        return CsiOptions(kwargs.pop("csi_address"), kwargs.pop("timeout", 0.0))

    return _group("csi", build, *options)


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """``--http-endpoint``, the deprecated ``--metrics-address`` and ``--metrics-path``."""

    endpoint: str = ""
    metrics_address: str = ""
    metrics_path: str = "/metrics"

    @property
    def address(self) -> str:
        """Where the HTTP server listens: ``--metrics-address`` if set, else ``--http-endpoint``."""
        return self.metrics_address or self.endpoint

    def validate(self, message: str = HTTP_EXCLUSIVE) -> None:
        """Refuse both addresses at once (the Go sidecars exit 1), and a relative path.

        Raises:
            ConfigError: with ``message`` for both addresses; for a path without ``/``.
        """
        if self.metrics_address and self.endpoint:
            raise ConfigError(message)
        if not self.metrics_path.startswith("/"):
            raise ConfigError(f"--metrics-path must start with '/', got {self.metrics_path!r}")


def http_options(
    *,
    endpoint_help: str = "host:port of the HTTP server for metrics and health checks; empty "
    "disables it. Cannot be set with --metrics-address.",
) -> Decorator:
    """The HTTP server flags; the command receives ``http: HttpOptions``."""

    def build(kwargs: dict[str, Any]) -> HttpOptions:
        return HttpOptions(
            kwargs.pop("http_endpoint"), kwargs.pop("metrics_address"), kwargs.pop("metrics_path")
        )

    return _group(
        "http",
        build,
        click.option("--http-endpoint", default="", help=endpoint_help),
        click.option(
            "--metrics-address",
            default="",
            help="(deprecated) host:port of the metrics server. Cannot be set with "
            "--http-endpoint.",
        ),
        click.option(
            "--metrics-path",
            default="/metrics",
            show_default=True,
            help="HTTP path of the Prometheus metrics.",
        ),
    )


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """``--retry-interval-start`` / ``--retry-interval-max``: per-key exponential back-off."""

    start: float = 1.0
    maximum: float = 300.0

    def validate(self) -> None:
        """Positive intervals, max not below start.

        Raises:
            ConfigError: otherwise.
        """
        if self.start <= 0 or self.maximum <= 0:
            raise ConfigError("--retry-interval-start and --retry-interval-max must be positive")
        if self.maximum < self.start:
            raise ConfigError(
                "--retry-interval-max must not be shorter than --retry-interval-start"
            )


def retry_options(*, start: str = "1s", maximum: str = "5m") -> Decorator:
    """The retry back-off flags; the command receives ``retry: RetryOptions``."""

    def build(kwargs: dict[str, Any]) -> RetryOptions:
        return RetryOptions(kwargs.pop("retry_interval_start"), kwargs.pop("retry_interval_max"))

    return _group(
        "retry",
        build,
        click.option(
            "--retry-interval-start",
            type=DURATION,
            default=start,
            show_default=True,
            help="First retry delay after a failure; doubles on each further failure.",
        ),
        click.option(
            "--retry-interval-max",
            type=DURATION,
            default=maximum,
            show_default=True,
            help="Longest retry delay.",
        ),
    )


def worker_threads(
    default: int, *, name: str = "--worker-threads", help: str = "Objects processed at once."
) -> Decorator:
    """The role's worker count flag (``--worker-threads``; the resizer calls it ``--workers``)."""
    return click.option(
        name, type=click.IntRange(min=0), default=default, show_default=True, help=help
    )


def feature_gates(
    spec: GateSpec,
    *,
    role: str = "",
    unsupported: Mapping[str, bool] | None = None,
    defer_unknown: bool = False,
) -> Decorator:
    """``--feature-gates`` for the gates in ``spec``; the command receives ``gates``.

    Malformed values and unknown gates raise :class:`ConfigError` when the command runs; with
    ``defer_unknown``, unknown gates wait for ``gates.check_known()`` (see :func:`parse_gates`).
    """

    from csi_sidecars.runtime.featuregates import describe, parse_gates

    def build(kwargs: dict[str, Any]) -> FeatureGates:
        return parse_gates(
            kwargs.pop("feature_gates"),
            spec,
            unsupported=unsupported,
            role=role,
            defer_unknown=defer_unknown,
        )

    return _group(
        "gates",
        build,
        click.option(
            "--feature-gates",
            multiple=True,
            help=f"Key=true|false pairs, comma separated: {describe(spec)}.",
        ),
    )


__all__ = [
    "DEFAULT_CSI_ADDRESS",
    "HTTP_EXCLUSIVE",
    "ConfigError",
    "CsiOptions",
    "HttpOptions",
    "RetryOptions",
    "compose",
    "csi_options",
    "feature_gates",
    "http_options",
    "params_of",
    "retry_options",
    "worker_threads",
]
