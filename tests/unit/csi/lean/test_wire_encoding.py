"""The request side of the lean HTTP/2 client: header block, timeouts, frames (pure)."""

from __future__ import annotations

import pytest
from hpack import Decoder

from csi_sidecars.csi.lean import wire


def test_request_headers_decode_to_what_grpc_go_sends() -> None:
    block = wire.request_headers(
        "/csi.v1.Identity/Probe", "localhost", "csi-sidecars/1 (lean grpc)", 2.5
    )
    assert list(Decoder().decode(block)) == [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/csi.v1.Identity/Probe"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", "csi-sidecars/1 (lean grpc)"),
        ("grpc-timeout", "2500000u"),
    ]
    assert "grpc-timeout" not in dict(
        Decoder().decode(wire.request_headers("/a/b", "h:1", "ua", None))
    )


def test_long_values_use_multi_byte_lengths() -> None:
    path = "/" + "x" * 300 + "/Method"
    assert dict(Decoder().decode(wire.request_headers(path, "a", "b", None)))[":path"] == path


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0n"),
        (-1, "0n"),
        (1e-9, "1n"),
        (0.05, "50000000n"),
        (0.1, "100000u"),
        (1, "1000000u"),
        (3, "3000000u"),
        (99.9999, "99999900u"),
        (100, "100000m"),
        (1e5, "100000S"),
        (1e8, "1666667M"),
        (1e11, "27777778H"),
    ],
)
def test_grpc_timeout_uses_the_finest_unit_that_fits(seconds: float, text: str) -> None:
    assert wire.grpc_timeout(seconds) == text


def test_frames_and_messages() -> None:
    assert wire.frame(wire.SETTINGS, wire.ACK, 0) == b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
    assert wire.frame(wire.DATA, 1, 3, b"ab") == b"\x00\x00\x02\x00\x01\x00\x00\x00\x03ab"
    assert wire.grpc_message(b"xyz") == b"\x00\x00\x00\x00\x03xyz"
