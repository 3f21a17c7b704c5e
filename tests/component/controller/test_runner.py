"""run_controller against the in-process playground driver and the in-memory kube fake."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from csi_sidecars.controller import (
    ControllerContext,
    ControllerOptions,
    DriverInfo,
    StartupError,
    release_on_exit,
    run_controller,
)
from csi_sidecars.csi.connection import LossPolicy, connect
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.options import KubeOptions
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES
from csi_sidecars.playground.driver.server import run_driver
from csi_sidecars.runtime import startup
from csi_sidecars.runtime.http import Response
from tests.support.net import free_port
from tests.support.poll import poll

DRIVER = "runner.csi.test"
PUBLISH = csi_pb2.ControllerServiceCapability.RPC.PUBLISH_UNPUBLISH_VOLUME


def pv(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}}


async def test_informers_sync_before_lead_and_shutdown_drains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trims: list[int] = []
    monkeypatch.setattr(startup, "release_freed", lambda: trims.append(1) or True)
    kube = FakeKube()
    for i in range(3):
        await kube.create(PERSISTENT_VOLUMES, pv(f"pv{i}"))
    stop = asyncio.Event()
    seen: dict[str, Any] = {}
    finished: list[str] = []
    started = asyncio.Event()
    release = asyncio.Event()
    http = f"127.0.0.1:{free_port()}"

    def setup(ctx: ControllerContext) -> Any:
        seen["driver"] = ctx.driver
        inf = ctx.informer(PERSISTENT_VOLUMES, fields=["metadata.name"])
        queue = ctx.queue("test-queue", start=0.01, maximum=0.1)
        inf.add_handlers(on_add=lambda obj: queue.add(obj["metadata"]["name"]))

        async def handle(key: str) -> None:
            if key == "slow":
                started.set()
                await release.wait()  # the in-flight key SIGTERM must wait for
            finished.append(key)

        async def lead() -> None:
            # Every cached object is there when the workers start.
            seen["at_lead"] = len(inf.store)
            # The collector was paused for the initial lists, then what they left was frozen.
            seen["gc"] = (gc.isenabled(), gc.get_freeze_count())
            # ... and the C heap's free pages were handed back once.
            seen["trims"] = len(trims)
            await ctx.conn.identity.Probe(csi_pb2.ProbeRequest(), timeout=5)
            queue.add("slow")
            await queue.run(handle, workers=2)

        return lead

    async with run_driver(tmp_path, driver_name=DRIVER, enable_attach=True) as drv:
        metrics = CSIMetrics()
        conn = await connect(drv.endpoint, on_lost=LossPolicy.RECONNECT, metrics=metrics)
        opts = ControllerOptions(role="test", event_component="test", http_endpoint=http)
        task = asyncio.create_task(
            run_controller(
                opts,
                KubeOptions(),
                stop,
                lock_name=lambda d: d.name,
                setup=setup,
                port=kube,
                conn=conn,
                metrics=metrics,
            )
        )
        await asyncio.wait_for(started.wait(), 10)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://{http}/metrics") as resp:
                text = await resp.text()
            async with s.get(f"http://{http}/healthz") as resp:
                assert resp.status == 200
        assert 'workqueue_adds_total{name="test-queue"}' in text
        assert f'driver_name="{DRIVER}"' in text
        stop.set()
        await asyncio.sleep(0.2)
        assert not task.done()  # waiting for the in-flight key
        assert "slow" not in finished
        release.set()
        assert await asyncio.wait_for(task, 10) == 0
        await conn.close()
    info = seen["driver"]
    assert isinstance(info, DriverInfo) and info.name == DRIVER
    assert info.has_controller_service and info.has_controller(PUBLISH)
    assert seen["at_lead"] == 3
    assert seen["gc"][0] and seen["gc"][1] > 0
    assert seen["trims"] == 1
    assert "slow" in finished  # drained, not cancelled


async def run_once(tmp_path: Path, setup: Any) -> int:
    """Run a role with ``setup`` against the playground driver until it ends by itself."""
    async with run_driver(tmp_path, driver_name=DRIVER) as drv:
        conn = await connect(drv.endpoint)
        try:
            return await run_controller(
                ControllerOptions(role="t", event_component="t"),
                KubeOptions(),
                asyncio.Event(),
                lock_name=lambda d: d.name,
                setup=setup,
                port=FakeKube(),
                conn=conn,
            )
        finally:
            await conn.close()


async def test_setup_error_exits_1(tmp_path: Path) -> None:
    def setup(ctx: ControllerContext) -> Any:
        raise StartupError("bad flags")

    assert await run_once(tmp_path, setup) == 1


async def test_driver_without_controller_service_is_not_asked(tmp_path: Path) -> None:
    got: list[DriverInfo] = []

    async def setup(ctx: ControllerContext) -> Any:
        got.append(ctx.driver)
        return lambda: asyncio.sleep(0)

    async with run_driver(tmp_path, driver_name=DRIVER, controller_service=False) as drv:
        conn = await connect(drv.endpoint)
        metrics = CSIMetrics()
        code = await run_controller(
            ControllerOptions(role="t", event_component="t"),
            KubeOptions(),
            asyncio.Event(),
            lock_name=lambda d: d.name,
            setup=setup,
            port=FakeKube(),
            conn=conn,
            metrics=metrics,
        )
        await conn.close()
        assert "ControllerGetCapabilities" not in drv.methods()
    assert code == 0
    assert not got[0].has_controller_service and not got[0].controller_capabilities


async def test_unreachable_driver_exits_1(tmp_path: Path) -> None:
    opts = ControllerOptions(
        role="t", event_component="t", csi_address=str(tmp_path / "none.sock"), connect_timeout=0.3
    )
    code = await run_controller(
        opts,
        KubeOptions(),
        asyncio.Event(),
        lock_name=str,
        setup=lambda c: None,  # type: ignore[arg-type,return-value]
        port=FakeKube(),
    )
    assert code == 1


async def test_stop_while_connecting_exits_0(tmp_path: Path) -> None:
    stop = asyncio.Event()
    opts = ControllerOptions(
        role="t", event_component="t", csi_address=str(tmp_path / "none.sock"), connect_timeout=None
    )
    task = asyncio.create_task(
        run_controller(
            opts,
            KubeOptions(),
            stop,
            lock_name=str,
            setup=lambda c: None,  # type: ignore[arg-type,return-value]
            port=FakeKube(),
        )
    )
    await asyncio.sleep(0.2)
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0


async def test_loop_role_custom_healthz_and_shutdown_callbacks(tmp_path: Path) -> None:
    """A role without informers: its loop ends at once on stop, then on_shutdown runs."""
    stop = asyncio.Event()
    http = f"127.0.0.1:{free_port()}"
    ticks: list[int] = []
    order: list[str] = []

    def setup(ctx: ControllerContext) -> Any:
        async def health(_: Any) -> Response:
            return Response(text=f"ok ({len(ticks)} ticks)")

        async def loop() -> None:
            try:
                while True:
                    ticks.append(1)
                    await asyncio.sleep(0.01)
            finally:
                await asyncio.sleep(0)  # cleanup that awaits must finish before shutdown
                order.append("loop ended")

        async def on_stop() -> None:
            order.append("shutdown callback")

        ctx.healthz = health
        ctx.on_shutdown(on_stop)
        return lambda: ctx.until_stopping(loop())

    async with run_driver(tmp_path, driver_name=DRIVER) as drv:
        conn = await connect(drv.endpoint)
        # A drain timeout far beyond the wait below: the loop must end on `stopping`, not on it.
        opts = ControllerOptions(
            role="t", event_component="t", http_endpoint=http, drain_timeout=60.0
        )
        task = asyncio.create_task(
            run_controller(
                opts,
                KubeOptions(),
                stop,
                lock_name=lambda d: d.name,
                setup=setup,
                port=FakeKube(),
                conn=conn,
            )
        )
        await poll(lambda: len(ticks) >= 3)
        async with aiohttp.ClientSession() as s, s.get(f"http://{http}/healthz") as resp:
            assert resp.status == 200
            assert "ticks)" in await resp.text()
        assert order == []
        stop.set()
        assert await asyncio.wait_for(task, 5) == 0
        await conn.close()
    assert order == ["loop ended", "shutdown callback"]


async def test_shutdown_callbacks_do_not_run_when_the_role_fails(tmp_path: Path) -> None:
    called: list[bool] = []

    def setup(ctx: ControllerContext) -> Any:
        async def lead() -> None:
            raise RuntimeError("broken")

        async def on_stop() -> None:
            called.append(True)

        ctx.on_shutdown(on_stop)
        return lead

    assert await run_once(tmp_path, setup) == 1
    assert called == []


@pytest.mark.parametrize(
    ("flag", "gate", "want"), [(True, False, True), (False, False, False), (False, True, True)]
)
def test_release_on_exit(flag: bool, gate: bool, want: bool) -> None:
    kube = KubeOptions(release_on_stop=flag)
    release_on_exit(kube, gate)
    assert kube.release_on_stop is want
