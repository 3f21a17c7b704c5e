"""The registration socket: paths, stale clean-up, publish, and the Registration service."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import grpc
import pytest

from csi_sidecars.csi.lean.server import UnaryServer
from csi_sidecars.csi.messages import pluginregistration_pb2 as pr
from csi_sidecars.csi.messages import pluginregistration_pb2_grpc as pr_grpc
from csi_sidecars.registrar.node_health import (
    NO_SOCKET_BODY,
    check_registration_socket,
    registration_status,
)
from csi_sidecars.registrar.node_service import RegistrationServicer, RegistrationState
from csi_sidecars.registrar.node_socket import (
    SocketFileError,
    hidden_path,
    publish,
    registration_socket_path,
    remove_stale_socket,
    socket_exists,
)


def make_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # leaves the file behind, as a killed process does


def test_paths() -> None:
    assert (
        registration_socket_path("/registration", "hostpath.csi.k8s.io")
        == "/registration/hostpath.csi.k8s.io-reg.sock"
    )
    assert hidden_path("/registration/x-reg.sock") == "/registration/.x-reg.sock"
    # At the socket path limit the hidden name must not be the one that no longer fits.
    long_dir = "/" + "d" * 90
    final = f"{long_dir}/{'n' * (107 - len(long_dir) - 10)}-reg.sock"
    assert len(final) == 107
    hidden = hidden_path(final)
    assert os.path.dirname(hidden) == long_dir
    assert os.path.basename(hidden).startswith(".")
    assert len(hidden) <= 107


def test_stale_socket_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "d-reg.sock"
    assert remove_stale_socket(str(path)) is False
    make_socket(path)
    assert socket_exists(str(path))
    assert remove_stale_socket(str(path)) is True
    assert not path.exists()


def test_regular_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d-reg.sock"
    path.write_text("not a socket")
    with pytest.raises(SocketFileError, match="but it's not a socket"):
        remove_stale_socket(str(path))
    assert path.read_text() == "not a socket"


def test_state_plugin_info_and_notifications() -> None:
    state = RegistrationState("d.example.com", "/var/lib/kubelet/plugins/d/csi.sock")
    info = state.plugin_info()
    assert info.type == "CSIPlugin"
    assert info.name == "d.example.com"
    assert info.endpoint == "/var/lib/kubelet/plugins/d/csi.sock"
    assert list(info.supported_versions) == ["1.0.0"]
    assert registration_status(state).status == 503
    state.record(True, "")
    assert registration_status(state).status == 200
    assert not state.failed.is_set()
    state.record(False, "RegisterPlugin error -- boom")
    assert state.failed.is_set()
    assert registration_status(state).status == 503


async def test_publish_serves_with_mode_0700_and_no_hidden_leftover(tmp_path: Path) -> None:
    path = str(tmp_path / "d.example.com-reg.sock")
    state = RegistrationState("d.example.com", "/host/csi.sock")
    server = UnaryServer(RegistrationServicer(state).service())
    await publish(server, path)
    try:
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o700
        assert os.listdir(tmp_path) == ["d.example.com-reg.sock"]
        # kubelet's side is grpc-go; grpcio's C core stands in for it against our grpclib server.
        async with grpc.aio.insecure_channel("unix://" + path) as channel:
            stub = pr_grpc.RegistrationStub(channel)
            info = await stub.GetInfo(pr.InfoRequest(), timeout=5)
            assert info.name == "d.example.com"
            await stub.NotifyRegistrationStatus(
                pr.RegistrationStatus(plugin_registered=True), timeout=5
            )
        assert state.registered is True
        assert (await check_registration_socket(path, "d.example.com", 2)).status == 200
        wrong = await check_registration_socket(path, "other", 2)
        assert (wrong.status, wrong.body) == (500, "invalid driver name d.example.com")
    finally:
        await server.stop()


async def test_check_missing_and_dead_sockets(tmp_path: Path) -> None:
    path = tmp_path / "d-reg.sock"
    missing = await check_registration_socket(str(path), "d", 0.3)
    assert (missing.status, missing.body) == (404, NO_SOCKET_BODY)
    make_socket(path)  # a socket file nobody listens on
    dead = await check_registration_socket(str(path), "d", 0.3)
    assert dead.status == 500
    assert dead.body == (
        f"error connecting to node-registrar socket {path}: context deadline exceeded"
    )
    path.unlink()
    path.write_text("x")
    bad = await check_registration_socket(str(path), "d", 0.3)
    assert bad.status == 500
    assert "not a socket" in bad.body
