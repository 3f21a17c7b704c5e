"""Client interceptors every CSI connection carries: the -v=5 call log and the call histogram.

:class:`LogInterceptor` writes ``GRPC call`` (method and request) and ``GRPC response``
(response and error) at verbosity 5, with secrets stripped and the response optionally capped
(``--max-grpc-log-length``), like csi-lib-utils' ``LogGRPC``. :class:`MetricsInterceptor` observes
every call's duration and status in :class:`~csi_sidecars.csi.metrics.CSIMetrics`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc.aio

from csi_sidecars.csi.codes import format_error
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.csi.sanitize import strip_secrets
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("connection")

Continuation = Callable[[Any, Any], Awaitable[Any]]


def _method_name(details: Any) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


def cap_log(text: str, max_length: int) -> str:
    """Cut ``text`` to ``max_length`` chars with Go's notice; ``max_length <= 0`` = unlimited."""
    if max_length <= 0 or len(text) <= max_length:
        return text
    return text[:max_length] + f" [response body too large, log capped to {max_length} chars]"


class LogInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Log each unary call and its outcome at -v=5, secrets stripped.

    Args:
        max_log_length: cap on the logged response in characters; ``<= 0`` means no cap.
    """

    def __init__(self, max_log_length: int = -1) -> None:
        """Store the response cap."""
        self.max_log_length = max_log_length

    async def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        """Log the call, run it, log the response."""
        if not rlog.v(5):
            return await continuation(client_call_details, request)
        method = _method_name(client_call_details)
        log.info("GRPC call", method=method, request=strip_secrets(request))
        call = await continuation(client_call_details, request)
        response: Any = None
        err: BaseException | None = None
        try:
            response = await call
        except grpc.aio.AioRpcError as exc:
            err = exc
        log.info(
            "GRPC response",
            response=cap_log(strip_secrets(response), self.max_log_length),
            err=None if err is None else format_error(err),
        )
        return call


class MetricsInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Observe every unary call in ``csi_sidecar_operations_seconds``."""

    def __init__(self, metrics: CSIMetrics) -> None:
        """Record into ``metrics``."""
        self.metrics = metrics

    async def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        """Run the call and record its duration and status code."""
        method = _method_name(client_call_details)
        start = time.monotonic()
        err: BaseException | None = None
        try:
            call = await continuation(client_call_details, request)
            await call
        except grpc.aio.AioRpcError as exc:
            # The caller sees the same error when it awaits the returned call.
            err = exc
        except BaseException as exc:
            err = exc
            raise
        finally:
            self.metrics.record(method, err, time.monotonic() - start)
        return call
