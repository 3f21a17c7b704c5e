"""A lean unary gRPC client for the node roles: plain asyncio sockets and our HTTP/2 framing.

:func:`dial` connects the way csi-lib-utils' blocking ``Connect`` does: it retries refused or
missing sockets with back-off (0.1 s growing to 1 s), logs ``Still connecting`` every 10 s and
gives up after ``timeout`` seconds (``None`` or ``0``: never) with :class:`DialTimeoutError`.
:meth:`LeanConnection.call` runs one unary call with the same generated protobuf messages the
grpcio stack uses, logs it at ``-v=5`` with secrets stripped (``GRPC call`` / ``GRPC response``),
records it in :class:`~csi_sidecars.csi.lean.metrics.OperationMetrics`, and turns every failure
into :class:`~csi_sidecars.csi.lean.status.RpcError` carrying the status a grpc-go client reports:

* the server's status and message as sent;
* a deadline that ran out on our side: ``DeadlineExceeded`` / ``context deadline exceeded``;
* a connection that closed or failed during the call: ``Unavailable``.

The HTTP/2 side is :mod:`csi_sidecars.csi.lean.wire`. A connection is not watched in the
background: node roles either open one per check (livenessprobe, as Go) or use it at start-up
only; after a failed call it is dialled again, once, by the next call.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from csi_sidecars import __version__
from csi_sidecars.csi.lean.address import Target, parse_target
from csi_sidecars.csi.lean.metrics import OperationMetrics
from csi_sidecars.csi.lean.status import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    GO_DEADLINE,
    OK,
    UNAVAILABLE,
    RpcError,
    go_name,
)
from csi_sidecars.csi.lean.wire import INTERNAL, Http2Connection
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("connection")

R = TypeVar("R", bound=Message)

USER_AGENT = f"csi-sidecars/{__version__} (lean grpc)"
CLOSING = "grpc: the client connection is closing"

DEFAULT_TIMEOUT = 30.0
STILL_CONNECTING_INTERVAL = 10.0
INITIAL_BACKOFF = 0.1
MAX_BACKOFF = 1.0
BACKOFF_FACTOR = 1.6


class DialTimeoutError(TimeoutError):
    """The address did not accept a connection within the timeout."""


def _cap(text: str, max_length: int) -> str:
    if max_length <= 0 or len(text) <= max_length:
        return text
    return text[:max_length] + f" [response body too large, log capped to {max_length} chars]"


def _dial_error(err: OSError) -> RpcError:
    reason = err.strerror or str(err) or type(err).__name__
    return RpcError(
        UNAVAILABLE, f'connection error: desc = "transport: Error while dialing: {reason}"'
    )


async def _open(target: Target) -> Http2Connection:
    """Open a socket to ``target`` (raises OSError)."""
    if target.path is not None:
        reader, writer = await asyncio.open_unix_connection(target.path)
        authority = "localhost"  # what grpc-go sends for unix sockets
    else:
        reader, writer = await asyncio.open_connection(target.host, target.port)
        authority = str(target)
    return Http2Connection(reader, writer, authority=authority, user_agent=USER_AGENT)


class _Socket:
    """The connection's current HTTP/2 connection, dialled again after it broke."""

    def __init__(self, target: Target, conn: Http2Connection) -> None:
        self.target = target
        self.conn = conn
        self.closed = False

    async def get(self) -> Http2Connection:
        if self.closed:
            raise RpcError(CANCELLED, CLOSING)
        if self.conn.closed:
            try:
                self.conn = await _open(self.target)
            except OSError as err:
                raise _dial_error(err) from None
        return self.conn

    def close(self) -> None:
        self.closed = True
        self.conn.close()


class LeanConnection:
    """An open connection to a gRPC server; create it with :func:`dial`.

    Attributes:
        address: the address as given.
        target: the parsed address.
    """

    def __init__(
        self,
        address: str,
        target: Target,
        socket: _Socket,
        *,
        metrics: OperationMetrics | None,
        max_log_length: int,
    ) -> None:
        """Wrap a connected socket; use :func:`dial` instead."""
        self.address = address
        self.target = target
        self._socket = socket
        self._metrics = metrics
        self._max_log_length = max_log_length

    async def call(
        self, method: str, request: Message, reply_type: type[R], *, timeout: float | None
    ) -> R:
        """Run the unary call ``method`` (``/csi.v1.Identity/Probe``) with ``request``.

        Args:
            method: the full method name.
            request: the request message.
            reply_type: the generated class of the reply.
            timeout: the call's deadline in seconds from now; None for none.

        Raises:
            RpcError: the status of a failed call (see the module docstring).
        """
        verbose = rlog.v(5)
        if verbose:
            from csi_sidecars.csi.sanitize import strip_secrets

            log.info("GRPC call", method=method, request=strip_secrets(request))
        start = time.monotonic()
        reply: R | None = None
        error: RpcError | None = None
        code = OK
        try:
            async with asyncio.timeout(timeout):
                conn = await self._socket.get()
            remaining = None if timeout is None else max(timeout - (time.monotonic() - start), 0)
            data = await conn.unary(method, request.SerializeToString(), remaining)
            reply = reply_type.FromString(data)
        except RpcError as exc:
            error = exc
        except TimeoutError:
            error = RpcError(DEADLINE_EXCEEDED, GO_DEADLINE)
        except DecodeError as exc:
            error = RpcError(INTERNAL, f"grpc: failed to unmarshal the received message: {exc}")
        except asyncio.CancelledError:
            code = CANCELLED
            raise
        finally:
            if error is not None:
                code = error.code
            if self._metrics is not None:
                self._metrics.record(method, go_name(code), time.monotonic() - start)
        if verbose:
            from csi_sidecars.csi.sanitize import strip_secrets

            shown = "" if reply is None else strip_secrets(reply)
            log.info(
                "GRPC response",
                response=_cap(shown, self._max_log_length),
                err=None if error is None else str(error),
            )
        if error is not None:
            raise error
        assert reply is not None
        return reply

    def with_metrics(self, metrics: OperationMetrics | None) -> LeanConnection:
        """The same connection, recording its calls in ``metrics`` instead (for shared links)."""
        return LeanConnection(
            self.address,
            self.target,
            self._socket,
            metrics=metrics,
            max_log_length=self._max_log_length,
        )

    def close(self) -> None:
        """Close the connection (also for every :meth:`with_metrics` view). Safe to call twice."""
        self._socket.close()

    async def __aenter__(self) -> LeanConnection:
        """Use as ``async with await dial(...) as conn``."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close on leaving the block."""
        self.close()


async def dial(
    address: str,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    metrics: OperationMetrics | None = None,
    max_log_length: int = -1,
) -> LeanConnection:
    """Connect to the gRPC server at ``address``, retrying until it accepts.

    Args:
        address: a socket path, ``unix:///path``, ``dns:///host:port`` or ``host:port``.
        timeout: seconds to keep trying; None or ``<= 0`` tries forever.
        metrics: where calls on the connection are recorded; None records nothing.
        max_log_length: cap on responses logged at ``-v=5``; ``<= 0`` means no cap.

    Raises:
        DialTimeoutError: when ``timeout`` passes first.
        csi_sidecars.runtime.errors.ConfigError: for an address that cannot be parsed.
    """
    target = parse_target(address)
    loop = asyncio.get_running_loop()
    limit = timeout if timeout is not None and timeout > 0 else None
    deadline = None if limit is None else loop.time() + limit
    next_note = loop.time() + STILL_CONNECTING_INTERVAL
    delay = INITIAL_BACKOFF
    if rlog.v(5):
        log.info("Connecting", address=str(target))
    while True:
        try:
            remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
            conn = await asyncio.wait_for(_open(target), remaining)
        except OSError as exc:  # TimeoutError included: ours (wait_for) or the kernel's
            now = loop.time()
            if deadline is not None and (now >= deadline or isinstance(exc, TimeoutError)):
                raise DialTimeoutError(
                    f"{GO_DEADLINE}: {address} accepted no connection within {limit:g}s"
                ) from None
            if now >= next_note:
                log.info("Still connecting", address=str(target))
                next_note = now + STILL_CONNECTING_INTERVAL
            await asyncio.sleep(delay if deadline is None else min(delay, deadline - now))
            delay = min(delay * BACKOFF_FACTOR, MAX_BACKOFF)
            continue
        if rlog.v(4):
            log.info("Connected", address=str(target))
        return LeanConnection(
            address, target, _Socket(target, conn), metrics=metrics, max_log_length=max_log_length
        )
