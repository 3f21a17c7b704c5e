"""A hostpath-like CSI driver in Python, for the testbed and for component tests.

Run it as a process the way csi-driver-host-path's ``hostpathplugin`` runs::

    python -m csi_sidecars.playground.driver --endpoint unix:///tmp/x/csi.sock --nodeid node-1 \\
        --statedir /tmp/x/state [--enable-attach] [--faults-file faults.json] ...
    python -m csi_sidecars.playground.driver state --statedir /tmp/x/state

or in-process from a test with :func:`run_driver`, which yields a :class:`Driver` whose
``state`` (volumes, snapshots, publications), ``faults`` (scripted errors, delays, replies,
not-ready probes) and ``calls`` (what the driver was asked) the test can use. No mounts are made:
node operations are bookkeeping, plus creating and removing target paths.

The gRPC parts are imported lazily so the pure parts (state, store, faults, options) load
without the generated protobuf modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csi_sidecars.playground.driver.faults import FaultRule, Faults, write_faults_file
from csi_sidecars.playground.driver.model import CsiError, StateData
from csi_sidecars.playground.driver.options import DriverOptions, parse_args
from csi_sidecars.playground.driver.store import load_state

if TYPE_CHECKING:
    from csi_sidecars.playground.driver.server import CallRecord, Driver, run_driver

__all__ = [
    "CallRecord",
    "CsiError",
    "Driver",
    "DriverOptions",
    "FaultRule",
    "Faults",
    "StateData",
    "load_state",
    "parse_args",
    "run_driver",
    "write_faults_file",
]


def __getattr__(name: str) -> Any:
    if name in ("CallRecord", "Driver", "run_driver"):
        from csi_sidecars.playground.driver import server

        return getattr(server, name)
    raise AttributeError(name)
