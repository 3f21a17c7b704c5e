"""The livenessprobe process stays lean: no TLS library, no grpcio, no prometheus_client."""

from __future__ import annotations

from pathlib import Path

from tests.support.fake_driver import FakeDriver
from tests.support.net import free_port, http_get
from tests.support.poll import poll
from tests.support.role import Role


async def test_a_serving_livenessprobe_maps_no_tls_and_no_grpcio(tmp_path: Path) -> None:
    driver = await FakeDriver(str(tmp_path / "csi.sock")).start()
    port = free_port()
    role = await Role(
        [
            "livenessprobe",
            f"--csi-address={tmp_path / 'csi.sock'}",
            f"--http-endpoint=127.0.0.1:{port}",
        ],
        tmp_path / "probe.log",
    ).start()
    try:
        assert await poll(lambda: http_get(f"http://127.0.0.1:{port}/healthz"), 20) == (200, "ok")
        assert role.proc is not None
        maps = Path(f"/proc/{role.proc.pid}/maps").read_text()
        for library in ("libssl", "libcrypto", "cygrpc", "_hashlib"):
            assert library not in maps, library
        status, metrics = await http_get(f"http://127.0.0.1:{port}/metrics") or (0, "")
        assert status == 200 and "process_start_time_seconds" in metrics
    finally:
        await role.close()
        await driver.stop()
