"""What a chaos run knows: the objects it made and what it expects of them, and the end state.

:class:`Tracked` is the workload's ledger entry for one object (claim, pod, snapshot): when it
was created, when its deletion was acknowledged, and what it should look like at the end.
:class:`World` is everything read back after the settle window (API objects, the driver's
volumes and snapshots, its request log, the processes). The invariants are pure functions of
the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.playground.driver.requestlog import LoggedCall

PVC = "pvc"
POD = "pod"
SNAPSHOT = "snapshot"

CORE = "/api/v1"
STORAGE = "/apis/storage.k8s.io/v1"
SNAP = "/apis/snapshot.storage.k8s.io/v1"
PV_PATH = f"{CORE}/persistentvolumes"
VA_PATH = f"{STORAGE}/volumeattachments"
SC_PATH = f"{STORAGE}/storageclasses"
VAC_PATH = f"{STORAGE}/volumeattributesclasses"
VSC_PATH = f"{SNAP}/volumesnapshotcontents"
VSCLASS_PATH = f"{SNAP}/volumesnapshotclasses"

#: The plural of each tracked kind in its API group.
COLLECTIONS = {
    PVC: f"{CORE}/namespaces/{{ns}}/persistentvolumeclaims",
    POD: f"{CORE}/namespaces/{{ns}}/pods",
    SNAPSHOT: f"{SNAP}/namespaces/{{ns}}/volumesnapshots",
}


def collection(kind: str, namespace: str) -> str:
    """The collection path of ``kind`` objects in ``namespace``."""
    return COLLECTIONS[kind].format(ns=namespace)


def path_of(kind: str, namespace: str, name: str) -> str:
    """The path of one tracked object."""
    return f"{collection(kind, namespace)}/{name}"


@dataclass
class Tracked:
    """One object the workload made, and what it should look like at the end.

    Attributes:
        kind: ``pvc``, ``pod`` or ``snapshot``.
        namespace, name, uid: which object.
        created_at: wall time its create was acknowledged.
        deleted_at: wall time its delete was acknowledged (None: it should still exist).
        want: what is expected of a live object: ``bound`` (claims), ``size`` (bytes, an
            expansion), ``vac`` (a VolumeAttributesClass), ``attached`` (pods: scheduled and
            every volume attached), ``ready`` (snapshots), ``source`` (a restore's snapshot).
        claims: for pods, the claims they use.
        note: how it came to be (``early-delete``, ``restore``, ...), for reports.
    """

    kind: str
    namespace: str
    name: str
    uid: str = ""
    created_at: float = 0.0
    deleted_at: float | None = None
    want: dict[str, Any] = field(default_factory=dict)
    claims: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def key(self) -> str:
        """``kind namespace/name``."""
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass
class Process:
    """One sidecar replica (or the driver) at the end of the run."""

    name: str
    role: str
    impl: str
    running: bool
    healthy: bool
    detail: str = ""
    restarts: int = 0
    exits: list[int] = field(default_factory=list)


@dataclass
class World:
    """The state read back after the settle window.

    Attributes:
        driver: the CSI driver name.
        pvcs, pods, snapshots: the workload's namespaced objects (every namespace it uses).
        pvs, vas, contents: cluster objects of the driver.
        events: Warning events of the workload's namespaces and ``default``.
        volumes: the driver's volumes, ID -> name.
        driver_snapshots: the driver's snapshots, ID -> name.
        publications: the driver's controller publications as (volume ID, node ID).
        calls: the driver's request log.
        processes: every replica and the driver.
        secret_hits: log files in which a secret value was found (file -> count).
    """

    driver: str
    pvcs: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    pvs: list[dict[str, Any]] = field(default_factory=list)
    vas: list[dict[str, Any]] = field(default_factory=list)
    contents: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    volumes: dict[str, str] = field(default_factory=dict)
    driver_snapshots: dict[str, str] = field(default_factory=dict)
    publications: set[tuple[str, str]] = field(default_factory=set)
    calls: list[LoggedCall] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)
    secret_hits: dict[str, int] = field(default_factory=dict)


@dataclass
class Result:
    """The outcome of one invariant.

    Attributes:
        held: whether it held.
        checked: how many things were checked.
        violations: how many broke it.
        examples: a few of those, precisely (names, IDs, times).
        note: one line of context (counts, tolerances).
    """

    held: bool
    checked: int = 0
    violations: int = 0
    examples: list[str] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """``{"held": ..., "detail": {...}}`` as the ``--json`` line has it."""
        return {
            "held": self.held,
            "detail": {
                "checked": self.checked,
                "violations": self.violations,
                "examples": self.examples,
                "note": self.note,
            },
        }


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` (empty when absent)."""
    out: dict[str, Any] = obj.get("metadata") or {}
    return out


def status(obj: dict[str, Any]) -> dict[str, Any]:
    """``status`` (empty when absent)."""
    out: dict[str, Any] = obj.get("status") or {}
    return out


def spec(obj: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (empty when absent)."""
    out: dict[str, Any] = obj.get("spec") or {}
    return out
