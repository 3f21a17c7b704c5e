"""The playground driver's data model: volumes, snapshots, group snapshots, and CSI errors.

Plain dataclasses that round-trip through JSON, so the driver can persist them in its state
directory and tests can read them back (:func:`csi_sidecars.playground.driver.store.load_state`)
without touching gRPC or protobuf.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import grpc

MOUNT = "mount"
BLOCK = "block"

# VolumeCapability.AccessMode.Mode values that allow only one node at a time.
SINGLE_NODE_MODES = frozenset({1, 2, 6, 7})
# ... and the one that allows only one target path on that node.
SINGLE_NODE_SINGLE_WRITER = 6


class CsiError(Exception):
    """A CSI call failed with a gRPC status code and a human-readable message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass
class Condition:
    """The health of a volume as VolumeCondition reports it."""

    abnormal: bool = False
    message: str = ""


@dataclass
class Volume:
    """One volume and everything known about its use.

    ``attached`` maps node IDs the volume is controller-published to onto the readonly flag.
    ``staged`` and ``published`` are node-side paths (published maps target path -> readonly).
    """

    volume_id: str
    name: str
    capacity_bytes: int
    access_type: str = MOUNT
    access_modes: list[int] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    mutable_parameters: dict[str, str] = field(default_factory=dict)
    kind: str = ""
    source_snapshot_id: str = ""
    source_volume_id: str = ""
    topology: list[dict[str, str]] = field(default_factory=list)
    created_at: float = 0.0
    attached: dict[str, bool] = field(default_factory=dict)
    staged: list[str] = field(default_factory=list)
    published: dict[str, bool] = field(default_factory=dict)
    published_modes: dict[str, int] = field(default_factory=dict)
    node_id: str = ""
    ephemeral: bool = False
    condition: Condition = field(default_factory=Condition)

    def to_json(self) -> dict[str, Any]:
        """This volume as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Volume:
        """Build a volume from :meth:`to_json` output (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["condition"] = Condition(**data.get("condition", {}))
        return cls(**values)


@dataclass
class Snapshot:
    """One snapshot; ``ready_at`` is the time from which it reports ready_to_use."""

    snapshot_id: str
    name: str
    source_volume_id: str
    size_bytes: int
    creation_time: float
    ready_at: float = 0.0
    group_snapshot_id: str = ""
    parameters: dict[str, str] = field(default_factory=dict)

    def ready(self, now: float) -> bool:
        """Whether the snapshot is ready to use at time ``now``."""
        return now >= self.ready_at

    def to_json(self) -> dict[str, Any]:
        """This snapshot as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        """Build a snapshot from :meth:`to_json` output (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class GroupSnapshot:
    """A group snapshot: one snapshot per source volume, in the order they were given."""

    group_snapshot_id: str
    name: str
    source_volume_ids: list[str]
    snapshot_ids: list[str]
    creation_time: float

    def to_json(self) -> dict[str, Any]:
        """This group snapshot as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GroupSnapshot:
        """Build a group snapshot from :meth:`to_json` output (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class StateData:
    """Everything the driver persists: its volumes, snapshots and group snapshots by ID."""

    volumes: dict[str, Volume] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    group_snapshots: dict[str, GroupSnapshot] = field(default_factory=dict)

    def publications(self) -> list[dict[str, Any]]:
        """Every controller publication as ``{"volume_id", "node_id", "readonly"}``, sorted."""
        out = [
            {"volume_id": vol.volume_id, "node_id": node, "readonly": ro}
            for vol in self.volumes.values()
            for node, ro in vol.attached.items()
        ]
        return sorted(out, key=lambda p: (p["volume_id"], p["node_id"]))

    def to_json(self) -> dict[str, Any]:
        """The persisted document: ``version``, ``volumes``, ``snapshots``, ``group_snapshots``."""
        return {
            "version": 1,
            "volumes": [v.to_json() for _, v in sorted(self.volumes.items())],
            "snapshots": [s.to_json() for _, s in sorted(self.snapshots.items())],
            "group_snapshots": [g.to_json() for _, g in sorted(self.group_snapshots.items())],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StateData:
        """Parse the document :meth:`to_json` wrote.

        Raises:
            ValueError: when the document is not a state document of a known version.
        """
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a playground driver state document (version 1)")
        vols = (Volume.from_json(v) for v in data.get("volumes", []))
        snaps = (Snapshot.from_json(s) for s in data.get("snapshots", []))
        groups = (GroupSnapshot.from_json(g) for g in data.get("group_snapshots", []))
        return cls(
            volumes={v.volume_id: v for v in vols},
            snapshots={s.snapshot_id: s for s in snaps},
            group_snapshots={g.group_snapshot_id: g for g in groups},
        )
