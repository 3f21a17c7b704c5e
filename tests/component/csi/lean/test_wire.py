"""The lean HTTP/2 client against a scripted raw HTTP/2 server: every frame rule it relies on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from hpack import Encoder

from csi_sidecars.csi.lean import status, wire
from csi_sidecars.csi.lean.client import dial
from csi_sidecars.csi.messages import csi_pb2
from tests.support.poll import poll

INFO = "/csi.v1.Identity/GetPluginInfo"
REPLY = csi_pb2.GetPluginInfoResponse(name="d.example.com", vendor_version="1")

Script = Callable[["Peer", int], Awaitable[None]]


@dataclass
class Peer:
    """One accepted connection: what the client sent, and a way to answer."""

    writer: asyncio.StreamWriter
    encoder: Encoder = field(default_factory=Encoder)
    frames: list[tuple[int, int, int, bytes]] = field(default_factory=list)

    def send(self, kind: int, flags: int, stream: int, payload: bytes = b"") -> None:
        self.writer.write(wire.frame(kind, flags, stream, payload))

    def headers(self, stream: int, fields: list[tuple[str, str]], flags: int) -> None:
        self.send(wire.HEADERS, flags | wire.END_HEADERS, stream, self.encoder.encode(fields))

    def ok_reply(self, stream: int, message: bytes = REPLY.SerializeToString()) -> None:
        self.headers(stream, [(":status", "200"), ("content-type", "application/grpc")], 0)
        self.send(wire.DATA, 0, stream, wire.grpc_message(message))
        self.headers(stream, [("grpc-status", "0")], wire.END_STREAM)


class Server:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.peers: list[Peer] = []
        self.requests: list[tuple[int, dict[str, str]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from hpack import Decoder

        peer = Peer(writer)
        self.peers.append(peer)
        decoder = Decoder()
        try:
            assert await reader.readexactly(len(wire.PREFACE)) == wire.PREFACE
            pending: dict[int, dict[str, str]] = {}
            while True:
                head = await reader.readexactly(9)
                length = int.from_bytes(head[:3], "big")
                kind, flags = head[3], head[4]
                sid = int.from_bytes(head[5:9], "big")
                payload = await reader.readexactly(length)
                peer.frames.append((kind, flags, sid, payload))
                if kind == wire.HEADERS:
                    pending[sid] = dict(decoder.decode(payload))
                if kind == wire.DATA and flags & wire.END_STREAM:
                    self.requests.append((sid, pending.pop(sid)))
                    await self.script(peer, sid)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve(socket_path: str) -> AsyncIterator[Callable[[Script], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> Server:
        server = Server(script)
        servers.append(await asyncio.start_unix_server(server.handle, socket_path))
        return server

    yield start
    for s in servers:
        s.close()


async def call(socket_path: str, timeout: float = 2) -> csi_pb2.GetPluginInfoResponse:
    async with await dial(socket_path, timeout=5) as conn:
        return await conn.call(
            INFO, csi_pb2.GetPluginInfoRequest(), csi_pb2.GetPluginInfoResponse, timeout=timeout
        )


async def test_settings_and_pings_are_acknowledged_and_padding_removed(
    serve: Callable[[Script], Awaitable[Server]], socket_path: str
) -> None:
    async def script(peer: Peer, sid: int) -> None:
        peer.send(wire.SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00\x64")
        peer.send(wire.PING, 0, 0, b"12345678")
        peer.send(0xFA, 0, 0, b"an unknown frame type is ignored")
        peer.headers(sid, [(":status", "200"), ("content-type", "application/grpc+proto")], 0)
        body = wire.grpc_message(REPLY.SerializeToString())
        peer.send(wire.DATA, wire.PADDED, sid, b"\x03" + body + b"\x00\x00\x00")
        peer.headers(sid, [("grpc-status", "0")], wire.END_STREAM)

    server = await serve(script)
    assert await call(socket_path) == REPLY
    ((sid, headers),) = server.requests
    assert sid == 1
    assert headers[":path"] == INFO and headers[":authority"] == "localhost"
    assert headers["te"] == "trailers" and headers["grpc-timeout"].endswith("u")
    sent = server.peers[0].frames
    assert sent[0] == (wire.SETTINGS, 0, 0, b"\x00\x02\x00\x00\x00\x00")
    await poll(lambda: (wire.SETTINGS, wire.ACK, 0, b"") in sent, 5, "the SETTINGS ack")
    await poll(lambda: (wire.PING, wire.ACK, 0, b"12345678") in sent, 5, "the PING ack")


async def test_a_server_waiting_for_its_ping_ack_gets_it_while_the_call_runs(
    serve: Callable[[Script], Awaitable[Server]], socket_path: str
) -> None:
    async def script(peer: Peer, sid: int) -> None:
        async def answer_after_the_ack() -> None:
            await poll(lambda: (wire.PING, wire.ACK, 0, b"abcdefgh") in peer.frames, 5, "ack")
            peer.ok_reply(sid)

        peer.send(wire.PING, 0, 0, b"abcdefgh")
        tasks.append(asyncio.ensure_future(answer_after_the_ack()))

    tasks: list[asyncio.Future[None]] = []
    await serve(script)
    assert await call(socket_path, timeout=5) == REPLY
    await asyncio.gather(*tasks)


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (
            [("grpc-status", "9"), ("grpc-message", "disk%20gone%3A%20100%25")],
            "rpc error: code = FailedPrecondition desc = disk gone: 100%",
        ),
        ([("grpc-status", "5")], "rpc error: code = NotFound desc = "),
    ],
)
async def test_trailers_only_statuses(
    serve: Callable[[Script], Awaitable[Server]],
    socket_path: str,
    fields: list[tuple[str, str]],
    text: str,
) -> None:
    async def script(peer: Peer, sid: int) -> None:
        base = [(":status", "200"), ("content-type", "application/grpc")]
        peer.headers(sid, base + fields, wire.END_STREAM)

    await serve(script)
    with pytest.raises(status.RpcError) as info:
        await call(socket_path)
    assert str(info.value) == text


async def test_header_blocks_continue_over_continuation_frames(
    serve: Callable[[Script], Awaitable[Server]], socket_path: str
) -> None:
    async def script(peer: Peer, sid: int) -> None:
        block = peer.encoder.encode(
            [(":status", "200"), ("content-type", "application/grpc"), ("x-big", "v" * 500)]
        )
        peer.send(wire.HEADERS, 0, sid, block[:10])
        peer.send(wire.CONTINUATION, 0, sid, block[10:200])
        peer.send(wire.CONTINUATION, wire.END_HEADERS, sid, block[200:])
        peer.send(wire.DATA, 0, sid, wire.grpc_message(REPLY.SerializeToString()))
        peer.headers(sid, [("grpc-status", "0")], wire.END_STREAM)

    await serve(script)
    assert await call(socket_path) == REPLY


@pytest.mark.parametrize(
    ("respond", "code", "text"),
    [
        (
            lambda p, s: p.headers(s, [(":status", "503")], wire.END_STREAM),
            status.UNAVAILABLE,
            "unexpected HTTP status code received from server: 503",
        ),
        (
            lambda p, s: p.headers(s, [(":status", "404")], wire.END_STREAM),
            status.UNIMPLEMENTED,
            "unexpected HTTP status code received from server: 404",
        ),
        (
            lambda p, s: p.send(wire.RST_STREAM, 0, s, (8).to_bytes(4, "big")),
            status.CANCELLED,
            "stream terminated by RST_STREAM with error code: CANCEL",
        ),
        (
            lambda p, s: p.send(wire.GOAWAY, 0, 0, bytes(8)),
            status.UNAVAILABLE,
            "the connection is draining",
        ),
        (
            lambda p, s: p.headers(
                s, [(":status", "200"), ("content-type", "text/html")], wire.END_STREAM
            ),
            status.UNKNOWN,
            "unexpected HTTP content-type received: 'text/html'",
        ),
        (
            lambda p, s: p.headers(
                s, [(":status", "200"), ("content-type", "application/grpc")], wire.END_STREAM
            ),
            wire.INTERNAL,
            "server closed the stream without sending trailers",
        ),
        (
            lambda p, s: p.writer.close(),
            status.UNAVAILABLE,
            status.GO_EOF,
        ),
    ],
)
async def test_failures_map_as_grpc_go_maps_them(
    serve: Callable[[Script], Awaitable[Server]],
    socket_path: str,
    respond: Callable[[Peer, int], None],
    code: int,
    text: str,
) -> None:
    async def script(peer: Peer, sid: int) -> None:
        respond(peer, sid)

    await serve(script)
    with pytest.raises(status.RpcError) as info:
        await call(socket_path)
    assert (info.value.code, info.value.details) == (code, text)


async def test_bad_messages_are_internal(
    serve: Callable[[Script], Awaitable[Server]], socket_path: str
) -> None:
    bodies = iter(
        [
            b"\x01" + wire.grpc_message(b"")[1:],  # compressed flag without grpc-encoding
            wire.grpc_message(b"") * 2,  # two messages for a unary call
            wire.grpc_message(b"\xff\xff"),  # not a GetPluginInfoResponse
        ]
    )

    async def script(peer: Peer, sid: int) -> None:
        peer.headers(sid, [(":status", "200"), ("content-type", "application/grpc")], 0)
        peer.send(wire.DATA, 0, sid, next(bodies))
        peer.headers(sid, [("grpc-status", "0")], wire.END_STREAM)

    await serve(script)
    for expected in ("compressed", "cardinality violation", "failed to unmarshal"):
        with pytest.raises(status.RpcError) as info:
            await call(socket_path)
        assert info.value.code == wire.INTERNAL
        assert expected in info.value.details


async def test_calls_share_a_connection_and_its_header_table(
    serve: Callable[[Script], Awaitable[Server]], socket_path: str
) -> None:
    async def script(peer: Peer, sid: int) -> None:
        peer.ok_reply(sid)  # the encoder indexes the headers: the second reply refers to them

    server = await serve(script)
    async with await dial(socket_path, timeout=5) as conn:
        for _ in range(3):
            reply = await conn.call(
                INFO, csi_pb2.GetPluginInfoRequest(), csi_pb2.GetPluginInfoResponse, timeout=2
            )
            assert reply == REPLY
    assert [sid for sid, _ in server.requests] == [1, 3, 5]
    assert len(server.peers) == 1


async def test_after_a_graceful_goaway_the_call_ends_and_the_next_one_dials_again(
    serve: Callable[[Script], Awaitable[Server]], socket_path: str
) -> None:
    async def script(peer: Peer, sid: int) -> None:
        peer.send(wire.GOAWAY, 0, 0, sid.to_bytes(4, "big") + bytes(4))  # finishes stream sid
        peer.ok_reply(sid)

    server = await serve(script)
    async with await dial(socket_path, timeout=5) as conn:
        for _ in range(2):
            reply = await conn.call(
                INFO, csi_pb2.GetPluginInfoRequest(), csi_pb2.GetPluginInfoResponse, timeout=2
            )
            assert reply == REPLY
    assert len(server.peers) == 2


async def test_a_call_timing_out_behind_another_leaves_the_other_alone(
    serve: Callable[[Script], Awaitable[Server]], socket_path: str
) -> None:
    release = asyncio.Event()

    async def script(peer: Peer, sid: int) -> None:
        async def later() -> None:
            await release.wait()
            peer.ok_reply(sid)

        tasks.append(asyncio.ensure_future(later()))

    tasks: list[asyncio.Future[None]] = []
    await serve(script)
    async with await dial(socket_path, timeout=5) as conn:

        def info(timeout: float) -> Awaitable[csi_pb2.GetPluginInfoResponse]:
            return conn.call(
                INFO, csi_pb2.GetPluginInfoRequest(), csi_pb2.GetPluginInfoResponse, timeout=timeout
            )

        first = asyncio.ensure_future(info(5))
        await poll(lambda: bool(tasks), 5, "the first call to reach the server")
        with pytest.raises(status.RpcError, match="DeadlineExceeded"):
            await info(0.1)  # waits behind the first, then gives up
        release.set()
        assert await first == REPLY


async def test_big_replies_give_flow_control_credit_back(
    serve: Callable[[Script], Awaitable[Server]], socket_path: str
) -> None:
    big = csi_pb2.GetPluginInfoResponse(name="d", manifest={"k": "v" * 40000})

    async def script(peer: Peer, sid: int) -> None:
        peer.headers(sid, [(":status", "200"), ("content-type", "application/grpc")], 0)
        body = wire.grpc_message(big.SerializeToString())
        for i in range(0, len(body), wire.MAX_FRAME):
            peer.send(wire.DATA, 0, sid, body[i : i + wire.MAX_FRAME])
        peer.headers(sid, [("grpc-status", "0")], wire.END_STREAM)

    server = await serve(script)
    assert await call(socket_path) == big

    def updated_streams() -> set[int] | None:
        frames = server.peers[0].frames
        streams = {sid for kind, _, sid, _ in frames if kind == wire.WINDOW_UPDATE}
        return streams if streams == {0, 1} else None

    await poll(updated_streams, 5, "WINDOW_UPDATEs for the connection and the stream")


async def test_a_timed_out_call_closes_and_the_next_call_dials_again(
    serve: Callable[[Script], Awaitable[Server]], socket_path: str
) -> None:
    answers = iter([False, True])

    async def script(peer: Peer, sid: int) -> None:
        if next(answers):
            peer.ok_reply(sid)

    server = await serve(script)
    async with await dial(socket_path, timeout=5) as conn:
        with pytest.raises(status.RpcError) as info:
            await conn.call(
                INFO, csi_pb2.GetPluginInfoRequest(), csi_pb2.GetPluginInfoResponse, timeout=0.2
            )
        assert str(info.value) == (
            "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
        )
        reply = await conn.call(
            INFO, csi_pb2.GetPluginInfoRequest(), csi_pb2.GetPluginInfoResponse, timeout=2
        )
    assert reply == REPLY
    assert len(server.peers) == 2
