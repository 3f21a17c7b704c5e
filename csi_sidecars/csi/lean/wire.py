"""HTTP/2 for unary gRPC calls, client side: exactly what the node roles' calls need.

A node role's client calls are few and tiny (``Probe``, ``GetPluginInfo``, kubelet's
``GetInfo``), and the livenessprobe opens a connection for every ``/healthz`` request, as Go does.
A general HTTP/2 stack (h2 under grpclib) spends most of such a call in Python bookkeeping:
frame objects, stream state machines, Huffman-coding eight headers, one write per frame. This
module sends the whole request (preface, SETTINGS, HEADERS, DATA) in one write, with the headers
as HPACK literals that need no state, reads frames straight off the socket and decodes the
response headers with ``hpack`` (which keeps the server's dynamic table). It speaks the protocol
a grpc-go client speaks for a unary call:

* headers ``:method POST``, ``:scheme http``, ``:path``, ``:authority`` (``localhost`` for unix
  sockets), ``content-type: application/grpc``, ``te: trailers``, ``user-agent`` and
  ``grpc-timeout`` (the smallest unit that fits eight digits, rounded up);
* the server's SETTINGS and PINGs are acknowledged, DATA is given back as WINDOW_UPDATEs (these
  control frames share one write: at the call's end, or 20 ms after the first if it still runs),
  GOAWAY and RST_STREAM end the call with grpc-go's codes; unknown frame types are ignored;
* statuses: ``grpc-status`` / ``grpc-message`` (percent-decoded) from trailers or a trailers-only
  reply; a non-200 ``:status`` maps as grpc-go maps it (404 Unimplemented, 503 Unavailable...).

Calls on one connection run one at a time. A call that fails at the transport or runs out of
time closes the connection (its frames may be half read); the next call dials again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from urllib.parse import unquote

from hpack import Decoder
from hpack.exceptions import HPACKError

from csi_sidecars.csi.lean.status import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    GO_DEADLINE,
    GO_EOF,
    OK,
    UNAVAILABLE,
    RpcError,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 3, 4, 5, 6, 7, 8, 9,
)  # fmt: skip
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY = 0x20
#: The largest frame a peer may send before we raise SETTINGS_MAX_FRAME_SIZE (we never do).
MAX_FRAME = 16384
#: Our SETTINGS: SETTINGS_ENABLE_PUSH (0x2) = 0; everything else at the protocol's defaults.
NO_PUSH = b"\x00\x02\x00\x00\x00\x00"
#: Received bytes after which a WINDOW_UPDATE gives them back (a quarter of the 65535 window).
WINDOW_UPDATE_AT = 65535 // 4
#: Longest a control frame waits to share a write with the next one (see ``_reply``).
REPLY_DELAY = 0.02
INTERNAL = 13
UNKNOWN = 2

#: grpc-go's codes for an HTTP :status that is not 200.
_HTTP_TO_GRPC = {400: INTERNAL, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}
#: grpc-go's codes for RST_STREAM error codes (others: Internal).
_RST_TO_GRPC = {0x7: UNAVAILABLE, 0x8: CANCELLED, 0xB: 8, 0xC: 7}


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream.to_bytes(4, "big")
        + (payload)
    )


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode("ascii")
    return _hpack_int(len(raw), 7, 0) + raw


def literal(name: str | int, value: str) -> bytes:
    """An HPACK "literal header field without indexing" (no Huffman, no table state).

    Args:
        name: a static table index for the name, or the name itself.
        value: the header value.
    """
    if isinstance(name, int):
        return _hpack_int(name, 4, 0) + _string(value)
    return b"\x00" + _string(name) + _string(value)


def grpc_timeout(seconds: float) -> str:
    """The ``grpc-timeout`` value: the finest unit whose count fits eight digits, rounded up."""
    nanos = max(math.ceil(seconds * 1e9), 0)
    if nanos == 0:
        return "0n"
    for unit, size in (("n", 1), ("u", 10**3), ("m", 10**6), ("S", 10**9), ("M", 6 * 10**10)):
        count = -(-nanos // size)
        if count < 10**8:
            return f"{count}{unit}"
    return f"{-(-nanos // (36 * 10**11))}H"


def request_headers(path: str, authority: str, user_agent: str, timeout: float | None) -> bytes:
    """The HPACK block of a unary call's request headers."""
    block = (
        b"\x83\x86"  # :method POST, :scheme http (static table 3 and 6)
        + literal(4, path)
        + literal(1, authority)
        + literal(31, "application/grpc")
        + literal("te", "trailers")
        + literal(58, user_agent)
    )
    if timeout is not None:
        block += literal("grpc-timeout", grpc_timeout(timeout))
    return block


def grpc_message(payload: bytes) -> bytes:
    """A length-prefixed, uncompressed gRPC message."""
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class _Reply:
    """What arrived for the call's stream."""

    def __init__(self) -> None:
        self.headers: dict[str, str] | None = None
        self.trailers: dict[str, str] | None = None
        self.data = bytearray()
        self.ended = False


def _status_of(reply: _Reply) -> RpcError | None:
    """The call's outcome from its headers and trailers: None for OK."""
    headers = reply.headers or {}
    status_text = headers.get(":status", "")
    if status_text != "200":
        code = _HTTP_TO_GRPC.get(int(status_text) if status_text.isdigit() else 0, UNKNOWN)
        return RpcError(code, f"unexpected HTTP status code received from server: {status_text}")
    if not headers.get("content-type", "").startswith("application/grpc"):
        content_type = headers.get("content-type", "")
        return RpcError(UNKNOWN, f"unexpected HTTP content-type received: {content_type!r}")
    final = reply.trailers if reply.trailers is not None else headers
    status = final.get("grpc-status")
    if status is None:
        return RpcError(INTERNAL, "server closed the stream without sending trailers")
    if not status.isdigit():
        return RpcError(INTERNAL, f"transport: malformed grpc-status: {status!r}")
    if int(status) == OK:
        return None
    return RpcError(int(status), unquote(final.get("grpc-message", "")))


def _one_message(data: bytes) -> bytes:
    if len(data) < 5:
        raise RpcError(INTERNAL, "cardinality violation: expected one response message, got 0")
    if data[0] != 0:
        raise RpcError(INTERNAL, "grpc: compressed message without negotiated grpc-encoding")
    length = int.from_bytes(data[1:5], "big")
    if len(data) != 5 + length:
        raise RpcError(INTERNAL, "cardinality violation: expected one response message")
    return data[5:]


class Http2Connection:
    """One HTTP/2 connection over which unary calls run one after the other."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        authority: str,
        user_agent: str,
    ) -> None:
        """Use an open stream pair; nothing is sent until the first call."""
        self._reader = reader
        self._writer = writer
        self._authority = authority
        self._user_agent = user_agent
        self._decoder = Decoder()
        self._next_stream = 1
        self._started = False
        self._lock = asyncio.Lock()
        self._unacked = 0
        self._stream_unacked = 0
        self._replies = bytearray()  # acknowledgements not written yet
        self._flush_soon: asyncio.TimerHandle | None = None
        self._draining = False
        self.closed = False

    def close(self) -> None:
        """Close the socket. Safe to call twice."""
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        self.closed = True
        with contextlib.suppress(Exception):
            self._writer.close()

    async def unary(self, path: str, request: bytes, timeout: float | None) -> bytes:
        """Send ``request`` to ``path`` and return the serialized reply.

        Raises:
            RpcError: the call's status; for a deadline ``DeadlineExceeded`` (the connection is
                then closed), for a broken connection ``Unavailable``.
        """
        running = False  # past the lock: a failure from here on leaves frames half read
        try:
            async with asyncio.timeout(timeout), self._lock:
                running = True
                return await self._call(path, request, timeout)
        except RpcError:
            raise  # a status; where the connection cannot go on, the raiser closed it
        except TimeoutError:
            if running:  # a call that timed out waiting for another one leaves it alone
                self.close()
            raise RpcError(DEADLINE_EXCEEDED, GO_DEADLINE) from None
        except (OSError, asyncio.IncompleteReadError, HPACKError, ValueError):
            self.close()
            raise RpcError(UNAVAILABLE, GO_EOF) from None
        except BaseException:
            self.close()
            raise

    async def _call(self, path: str, request: bytes, timeout: float | None) -> bytes:
        if self.closed:
            raise RpcError(UNAVAILABLE, GO_EOF)
        stream = self._next_stream
        self._next_stream += 2
        self._stream_unacked = 0
        out = b""
        if not self._started:
            self._started = True
            out = PREFACE + frame(SETTINGS, 0, 0, NO_PUSH)
        block = request_headers(path, self._authority, self._user_agent, timeout)
        out += frame(HEADERS, END_HEADERS, stream, block)
        out += frame(DATA, END_STREAM, stream, grpc_message(request))
        self._writer.write(out)
        reply = _Reply()
        while not reply.ended:
            await self._read_frame(stream, reply)
        self._flush()
        if self._draining:
            self.close()  # the server takes no new streams: the next call dials again
        failure = _status_of(reply)
        if failure is not None:
            raise failure
        return _one_message(bytes(reply.data))

    async def _read_frame(self, stream: int, reply: _Reply) -> None:
        head = await self._reader.readexactly(9)
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        if length > MAX_FRAME:
            raise self._broken(f"http2: frame too large ({length} bytes)")
        payload = await self._reader.readexactly(length) if length else b""
        if kind == HEADERS:
            await self._headers(sid, flags, payload, stream, reply)
        elif kind == DATA:
            body = _unpad(flags, payload)
            self._credit(length, sid if sid == stream and not flags & END_STREAM else 0)
            if sid == stream:
                reply.data += body
                if flags & END_STREAM:
                    reply.ended = True
        elif kind == SETTINGS:
            if not flags & ACK:
                self._reply(frame(SETTINGS, ACK, 0))
        elif kind == PING:
            if not flags & ACK:
                self._reply(frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM and sid == stream:
            code = int.from_bytes(payload[:4], "big")
            raise RpcError(
                _RST_TO_GRPC.get(code, INTERNAL),
                f"stream terminated by RST_STREAM with error code: {_h2_error(code)}",
            )
        elif kind == GOAWAY:
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            self._draining = True
            if last < stream:
                self.close()
                raise RpcError(UNAVAILABLE, "the connection is draining")
        elif kind == PUSH_PROMISE:
            raise self._broken("http2: server sent PUSH_PROMISE, which we disabled")
        # WINDOW_UPDATE, PRIORITY, CONTINUATION outside a header block and unknown types: ignored.

    def _reply(self, data: bytes) -> None:
        """Queue a control frame (an ACK, a WINDOW_UPDATE) to write with the others.

        The queue is written when the call ends, or :data:`REPLY_DELAY` after the first queued
        frame if the call is still waiting: a short call answers the server's SETTINGS and PING
        in one write instead of two, a long one still acknowledges them at once.
        """
        self._replies += data
        if self._flush_soon is None:
            loop = asyncio.get_running_loop()
            self._flush_soon = loop.call_later(REPLY_DELAY, self._flush)

    def _flush(self) -> None:
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        if self._replies and not self.closed:
            self._writer.write(bytes(self._replies))
        self._replies.clear()

    def _broken(self, message: str) -> RpcError:
        """A protocol violation: the connection cannot go on; close it and fail the call."""
        self.close()
        return RpcError(INTERNAL, message)

    def _credit(self, length: int, stream: int) -> None:
        """Flow control: give received DATA back once a quarter window is used, as grpc-go."""
        self._unacked += length
        if stream:
            self._stream_unacked += length
        updates = b""
        if self._unacked > WINDOW_UPDATE_AT:
            updates += frame(WINDOW_UPDATE, 0, 0, self._unacked.to_bytes(4, "big"))
            self._unacked = 0
        if stream and self._stream_unacked > WINDOW_UPDATE_AT:
            updates += frame(WINDOW_UPDATE, 0, stream, self._stream_unacked.to_bytes(4, "big"))
            self._stream_unacked = 0
        if updates:
            self._reply(updates)

    async def _headers(
        self, sid: int, flags: int, payload: bytes, stream: int, reply: _Reply
    ) -> None:
        block = bytearray(_unpad(flags, payload))
        if flags & PRIORITY:
            del block[:5]
        end_headers = flags & END_HEADERS
        while not end_headers:
            head = await self._reader.readexactly(9)
            length = int.from_bytes(head[:3], "big")
            if head[3] != CONTINUATION or length > MAX_FRAME:
                raise self._broken("http2: header block not continued by CONTINUATION")
            block += await self._reader.readexactly(length)
            end_headers = head[4] & END_HEADERS
        # Decode every block, also of other streams: the server's dynamic table must stay in sync.
        fields = {str(name): str(value) for name, value in self._decoder.decode(bytes(block))}
        if sid != stream:
            return
        if reply.headers is None:
            reply.headers = fields
        else:
            reply.trailers = fields
        if flags & END_STREAM:
            reply.ended = True


def _unpad(flags: int, payload: bytes) -> bytes:
    """The frame's content without its padding (raises ValueError: the connection breaks)."""
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise ValueError("http2: padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


_H2_ERRORS = (
    "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
    "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
    "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
)  # fmt: skip


def _h2_error(code: int) -> str:
    return _H2_ERRORS[code] if code < len(_H2_ERRORS) else f"unknown error code 0x{code:x}"
