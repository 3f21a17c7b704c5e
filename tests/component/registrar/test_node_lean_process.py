"""The node-driver-registrar process stays lean: no TLS library, no grpcio."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.support.fake_driver import FakeDriver
from tests.support.poll import poll
from tests.support.role import Role


async def test_a_registered_registrar_maps_no_tls_and_no_grpcio(tmp_path: Path) -> None:
    registry = Path(tempfile.mkdtemp(prefix="reg-"))
    driver = await FakeDriver(str(tmp_path / "csi.sock")).start()
    role = await Role(
        [
            "node-driver-registrar",
            f"--csi-address={tmp_path / 'csi.sock'}",
            "--kubelet-registration-path=/var/lib/kubelet/plugins/fake/csi.sock",
            f"--plugin-registration-path={registry}",
        ],
        tmp_path / "reg.log",
    ).start()
    try:
        sock = registry / f"{driver.identity.name}-reg.sock"
        await poll(sock.exists, 20, "the registration socket")
        assert role.proc is not None
        maps = Path(f"/proc/{role.proc.pid}/maps").read_text()
        for library in ("libssl", "libcrypto", "cygrpc", "_hashlib"):
            assert library not in maps, library
    finally:
        await role.close()
        await driver.stop()
        shutil.rmtree(registry, ignore_errors=True)
