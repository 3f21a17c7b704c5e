"""The lean stack's status names and address parsing agree with grpcio and csi-lib-utils."""

from __future__ import annotations

import grpc
import pytest

from csi_sidecars.csi import codes
from csi_sidecars.csi.lean import status
from csi_sidecars.csi.lean.address import Target, parse_target
from csi_sidecars.runtime.errors import ConfigError


def test_go_names_match_the_grpcio_table_for_every_code() -> None:
    for code in grpc.StatusCode:
        assert status.go_name(code.value[0]) == codes.go_code_name(code)
    assert status.go_name(99) == "Code(99)"


def test_rpc_error_renders_as_go() -> None:
    err = status.RpcError(status.DEADLINE_EXCEEDED, status.GO_DEADLINE)
    assert str(err) == "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    assert err.code_name == "DeadlineExceeded"
    assert str(status.RpcError(5, "no such volume")) == (
        "rpc error: code = NotFound desc = no such volume"
    )


@pytest.mark.parametrize(
    ("address", "target", "shown"),
    [
        ("/csi/csi.sock", Target(path="/csi/csi.sock"), "unix:///csi/csi.sock"),
        ("unix:///csi/csi.sock", Target(path="/csi/csi.sock"), "unix:///csi/csi.sock"),
        ("unix:/csi/csi.sock", Target(path="/csi/csi.sock"), "unix:///csi/csi.sock"),
        ("unix:csi.sock", Target(path="csi.sock"), "unix://csi.sock"),
        ("localhost:10000", Target(host="localhost", port=10000), "localhost:10000"),
        ("dns:///driver.ns:50051", Target(host="driver.ns", port=50051), "driver.ns:50051"),
        ("[::1]:9000", Target(host="::1", port=9000), "[::1]:9000"),
    ],
)
def test_parse_target(address: str, target: Target, shown: str) -> None:
    assert parse_target(address) == target
    assert str(target) == shown


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("", "empty"),
        ("unix://", "no socket path"),
        ("tcp://x:1", "unsupported address 'tcp://x:1'"),
        ("localhost", "invalid address 'localhost'"),
        ("host:0", "invalid address"),
        ("host:http", "invalid address"),
    ],
)
def test_bad_targets_are_refused_with_the_value(address: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_target(address)
