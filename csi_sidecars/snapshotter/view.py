"""What the snapshotter's decisions know besides the object: settings, caches, the clock.

:class:`Config` is fixed for the life of the process (flags plus the driver's capabilities,
read once at start-up: Go asks ``ControllerGetCapabilities`` before every status check and
``GetPluginInfo`` before every CreateSnapshot). :class:`View` adds the class caches and a clock,
so a decision is a pure function of (object, view); tests pass a fixed clock.

Readiness is polled on a schedule of its own (:func:`poll_delay`): a fresh snapshot is looked
at again after ``--retry-interval-start``, an older one less often (a tenth of its age), never
less often than every :data:`POLL_MAX` seconds (nor than ``--retry-interval-max``). The
schedule depends only on the snapshot's age, not on failures or informer events, so polling
never stops and never waits minutes behind a back-off (external-snapshotter #953, #225).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]

#: The longest pause between two readiness polls (seconds).
POLL_MAX = 60.0


def _no_class(_: str) -> Obj | None:
    return None


@dataclass(frozen=True, slots=True)
class Config:
    """The process-wide settings of the snapshotter's decisions.

    Attributes:
        driver: the driver name.
        snapshot_name_prefix: ``--snapshot-name-prefix``.
        snapshot_name_uuid_length: ``--snapshot-name-uuid-length``.
        group_name_prefix: ``--groupsnapshot-name-prefix``.
        group_name_uuid_length: ``--groupsnapshot-name-uuid-length``.
        extra_create_metadata: ``--extra-create-metadata``.
        list_snapshots: the driver has ``LIST_SNAPSHOTS``.
        get_snapshot: the driver has ``GET_SNAPSHOT`` (used when it lacks LIST_SNAPSHOTS).
        poll_start: the first readiness poll delay (``--retry-interval-start``).
        poll_max: the longest poll delay.
    """

    driver: str
    snapshot_name_prefix: str = "snapshot"
    snapshot_name_uuid_length: int = -1
    group_name_prefix: str = "groupsnapshot"
    group_name_uuid_length: int = -1
    extra_create_metadata: bool = False
    list_snapshots: bool = True
    get_snapshot: bool = False
    poll_start: float = 1.0
    poll_max: float = POLL_MAX


@dataclass(frozen=True, slots=True)
class View:
    """A decision's inputs beyond the object: config, class caches, clock (epoch seconds)."""

    config: Config
    snapshot_class: Callable[[str], Obj | None] = _no_class
    group_class: Callable[[str], Obj | None] = _no_class
    now: Callable[[], float] = field(default=time.time)


def poll_delay(cfg: Config, age: float) -> float:
    """Seconds until the next readiness poll of a snapshot ``age`` seconds old."""
    return max(cfg.poll_start, min(cfg.poll_max, age / 10.0))
