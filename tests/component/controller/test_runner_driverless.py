"""run_controller for a role without a driver (ControllerOptions(needs_driver=False))."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from csi_sidecars.controller import ControllerContext, ControllerOptions, run_controller
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES
from tests.support.net import free_port


async def test_driverless_role_runs_without_dialling_a_socket(tmp_path: Path) -> None:
    kube = FakeKube()
    await kube.create(PERSISTENT_VOLUMES, {"metadata": {"name": "pv1"}})
    stop = asyncio.Event()
    seen: dict[str, Any] = {}
    processed = asyncio.Event()
    http = f"127.0.0.1:{free_port()}"

    def setup(ctx: ControllerContext) -> Any:
        seen["driver"] = ctx.driver.name
        with pytest.raises(RuntimeError, match="no driver connection"):
            _ = ctx.conn
        inf = ctx.informer(PERSISTENT_VOLUMES, fields=["metadata.name"])
        queue = ctx.queue("q", start=0.01, maximum=0.1)
        inf.add_handlers(on_add=lambda obj: queue.add(obj["metadata"]["name"]))

        async def handle(key: str) -> None:
            seen["key"] = key
            processed.set()

        return lambda: queue.run(handle)

    opts = ControllerOptions(
        role="t",
        event_component="t",
        # a socket that does not exist: a role that needs no driver never dials it
        csi_address=str(tmp_path / "absent.sock"),
        connect_timeout=0.1,
        http_endpoint=http,
        needs_driver=False,
    )
    task = asyncio.create_task(
        run_controller(
            opts, KubeOptions(), stop, lock_name=lambda d: "fixed-lease", setup=setup, port=kube
        )
    )
    await asyncio.wait_for(processed.wait(), 10)
    async with aiohttp.ClientSession() as s, s.get(f"http://{http}/healthz") as resp:
        assert resp.status == 200
    stop.set()
    assert await asyncio.wait_for(task, 10) == 0
    assert seen == {"driver": "", "key": "pv1"}
