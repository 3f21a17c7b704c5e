"""pytest integration of the testbed: one control plane per session, a namespace per test.

Every test under tests/e2e/ is marked ``e2e`` and runs in the session's event loop (the control
plane fixture is session-scoped, and its clients must stay on the loop that made them). When the
testbed binaries are missing the whole tier is skipped with the reason, except under ``CI=true``,
where a missing binary fails the tests instead: CI must never go green by skipping.

Environment:
    CSI_SIDECARS_BIN_DIR / CSI_SIDECARS_CACHE: where the binaries are (see testbed/build.sh).
    CSI_SIDECARS_TESTBED_NODES: number of Nodes (default 1).
    CSI_SIDECARS_KEEP_TESTBED: keep the work directory (logs) after the session.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from csi_sidecars.playground import binaries
from csi_sidecars.playground.apiclient import RawApi
from csi_sidecars.playground.controlplane import ControlPlane, Driver
from csi_sidecars.playground.process import ManagedProcess

E2E_DIR = Path(__file__).parent
_STARTUP = pytest.StashKey[tuple[float, float]]()
_REPORT = pytest.StashKey[pytest.TestReport]()


def in_ci() -> bool:
    """Whether missing testbed parts are failures (CI) rather than skips."""
    return os.environ.get("CI", "").lower() == "true"


def require(*names: str) -> None:
    """Skip the test (fail it under CI=true) unless binaries ``names`` are built."""
    absent = binaries.missing(list(names))
    if absent:
        message = (
            f"testbed binaries missing in {binaries.default_bin_dir()}: {', '.join(absent)} "
            f"(run testbed/build.sh)"
        )
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def require_driver() -> None:
    """Skip (fail under CI=true) when the playground CSI driver is not in the package."""
    if importlib.util.find_spec("csi_sidecars.playground.driver") is None:
        message = "csi_sidecars.playground.driver is not available"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark e2e items, run them on the session loop, skip them when the testbed is absent."""
    absent = binaries.missing(binaries.CONTROL_PLANE_BINARIES)
    skip = None
    if absent and not in_ci():
        skip = pytest.mark.skip(
            reason=f"testbed binaries missing in {binaries.default_bin_dir()}: "
            f"{', '.join(absent)} (run testbed/build.sh)"
        )
    for item in items:
        if E2E_DIR not in item.path.parents:
            continue
        item.add_marker(pytest.mark.e2e)
        # Prepended so it wins over the plain marker asyncio auto mode added.
        item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)
        if skip is not None:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember the call-phase report so fixtures can tell whether the test failed."""
    report = yield
    if report.when == "call":
        item.stash[_REPORT] = report
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the testbed's cold-start time when one was started."""
    timing = config.stash.get(_STARTUP, None)
    if timing is not None:
        terminalreporter.write_line(
            f"testbed cold start: API usable after {timing[0]:.1f}s, "
            f"control plane with nodes ready after {timing[1]:.1f}s"
        )


def _failed(request: pytest.FixtureRequest) -> bool:
    report = request.node.stash.get(_REPORT, None)
    return report is None or report.failed


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def control_plane(pytestconfig: pytest.Config) -> AsyncIterator[ControlPlane]:
    """The session's control plane (etcd, API server, controller-manager, scheduler, Nodes)."""
    require(*binaries.CONTROL_PLANE_BINARIES)
    cp = ControlPlane(
        nodes=int(os.environ.get("CSI_SIDECARS_TESTBED_NODES", "1")),
        keep_work_dir=bool(os.environ.get("CSI_SIDECARS_KEEP_TESTBED")),
    )
    await cp.start()
    pytestconfig.stash[_STARTUP] = (cp.api_ready_seconds, cp.startup_seconds)
    try:
        yield cp
    finally:
        await cp.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api(control_plane: ControlPlane) -> RawApi:
    """Raw API client with the admin identity."""
    return control_plane.admin


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def driver(control_plane: ControlPlane) -> Driver:
    """The playground CSI driver on the first node, registered in CSIDriver and CSINode."""
    require_driver()
    return await control_plane.start_driver()


@pytest_asyncio.fixture(loop_scope="session")
async def namespace(control_plane: ControlPlane) -> AsyncIterator[str]:
    """A fresh namespace for one test (sidecar identities get their namespaced rules there)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    await control_plane.create_namespace(name)
    yield name
    await control_plane.admin.delete(f"/api/v1/namespaces/{name}")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def real_control_plane() -> AsyncIterator[ControlPlane]:
    """A second control plane whose Nodes run a real kubelet and containerd (test_real_node*)."""
    from tests.e2e.real_node_support import require_real_nodes

    require_real_nodes()
    cp = ControlPlane(
        kubelet=True,
        keep_work_dir=bool(os.environ.get("CSI_SIDECARS_KEEP_TESTBED")),
    )
    await cp.start()
    try:
        yield cp
    finally:
        await cp.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def real_namespace(real_control_plane: ControlPlane) -> AsyncIterator[str]:
    """A fresh namespace on the real-node control plane for one test."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    await real_control_plane.create_namespace(name)
    yield name
    await real_control_plane.admin.delete(f"/api/v1/namespaces/{name}")


SidecarFactory = Callable[..., Awaitable[ManagedProcess]]


@pytest_asyncio.fixture(loop_scope="session")
async def sidecar(
    control_plane: ControlPlane, request: pytest.FixtureRequest
) -> AsyncIterator[SidecarFactory]:
    """Start sidecars for one test: ``await sidecar("provisioner", "--timeout=30s", ...)``.

    Keyword arguments go to :meth:`ControlPlane.start_sidecar` (``implementation="go"`` for the
    reference binary, which must be built). All are stopped at the end of the test; the end of
    their logs is printed when the test failed.
    """
    started: list[ManagedProcess] = []

    async def start(role: str, *args: str, **kwargs: Any) -> ManagedProcess:
        if kwargs.get("implementation") == "go":
            from csi_sidecars.playground.sidecars import ROLES

            binary = ROLES[role].go_binary
            if binary is None:
                pytest.skip(f"no Go {role} on this testbed")
            require(binary)
        proc = await control_plane.start_sidecar(role, *args, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        await proc.stop(timeout=10)
    if _failed(request):
        for proc in started:
            print(f"----- {proc.name} ({proc.log_path}) -----\n{proc.log_tail(80)}")
        for drv in control_plane.drivers:
            if drv.process is not None:
                print(f"----- {drv.process.name} -----\n{drv.process.log_tail(40)}")
