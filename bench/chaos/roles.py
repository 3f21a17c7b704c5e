"""The sidecar roles of a chaos run: pluggable parts, enabled when their implementation exists.

A role takes part in ``--target ours`` when ``csi-sidecars`` has its subcommand
(:data:`csi_sidecars.cli.ROLES`), in ``--target go`` when its Go binary is built. Each role
enables workload features (snapshots need the snapshot-controller and the csi-snapshotter), so
a role that lands in main joins the workload by itself. With ``mixed`` a role ours lacks is
played by the Go sidecar, so features can be tried before every role exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from csi_sidecars import cli
from csi_sidecars.playground import binaries, sidecars

OURS = "ours"
GO = "go"
TARGETS = (OURS, GO)

#: Flags every controller role gets, for both targets (the Go sidecars have them all).
COMMON_FLAGS = (
    "--leader-election",
    "--leader-election-namespace=default",
    "--leader-election-lease-duration=8s",
    "--leader-election-renew-deadline=6s",
    "--leader-election-retry-period=2s",
    "--kube-api-qps=50",
    "--kube-api-burst=100",
    "--retry-interval-start=500ms",
    "--retry-interval-max=5s",
)


@dataclass(frozen=True)
class RolePart:
    """One controller role of the run.

    Attributes:
        name: the key of :data:`csi_sidecars.playground.sidecars.ROLES` and our subcommand.
        flags: its own flags (after :data:`COMMON_FLAGS`).
        features: the workload features it is needed for.
    """

    name: str
    flags: tuple[str, ...]
    features: tuple[str, ...]

    @property
    def go_binary(self) -> str:
        """The Go binary of this role."""
        binary = sidecars.ROLES[self.name].go_binary
        assert binary is not None
        return binary


PARTS: tuple[RolePart, ...] = (
    RolePart("provisioner", ("--timeout=5s", "--worker-threads=20"), ("provision",)),
    RolePart("attacher", ("--timeout=5s", "--worker-threads=20"), ("attach",)),
    RolePart("snapshot-controller", ("--worker-threads=10",), ("snapshot",)),
    RolePart("snapshotter", ("--timeout=5s", "--worker-threads=10"), ("snapshot",)),
    RolePart("resizer", ("--timeout=5s", "--workers=10"), ("expand", "modify")),
)
BY_NAME = {p.name: p for p in PARTS}

#: Workload features and the roles each one needs (all of them).
FEATURES: dict[str, tuple[str, ...]] = {
    "provision": ("provisioner",),
    "attach": ("provisioner", "attacher"),
    "snapshot": ("provisioner", "snapshot-controller", "snapshotter"),
    "restore": ("provisioner", "snapshot-controller", "snapshotter"),
    "expand": ("provisioner", "resizer"),
    "modify": ("provisioner", "resizer"),
}


@dataclass(frozen=True)
class Casting:
    """Who plays each role: ``impl[role]`` is ``ours`` or ``go``."""

    impl: dict[str, str]

    @property
    def roles(self) -> list[str]:
        """The roles that take part, in :data:`PARTS` order."""
        return [p.name for p in PARTS if p.name in self.impl]

    def features(self) -> list[str]:
        """The workload features whose roles all take part."""
        return [f for f, need in FEATURES.items() if all(r in self.impl for r in need)]

    def describe(self) -> str:
        """``provisioner(ours) attacher(ours) snapshotter(go)``."""
        return " ".join(f"{r}({self.impl[r]})" for r in self.roles) or "none"


def ours_has(role: str) -> bool:
    """Whether ``csi-sidecars`` has the subcommand ``role``."""
    return role in cli.ROLES


def go_has(role: str, bin_dir: Path | None = None) -> bool:
    """Whether the Go binary of ``role`` is built."""
    return not binaries.missing([BY_NAME[role].go_binary], bin_dir)


def cast(
    target: str,
    wanted: Sequence[str] | None = None,
    *,
    mixed: bool = False,
    bin_dir: Path | None = None,
) -> Casting:
    """Decide who plays each role for ``target``.

    Args:
        target: ``ours`` or ``go``.
        wanted: the roles to run (None: every role that exists for the target).
        mixed: for ``ours``, let the Go sidecar play the roles ours lacks.
        bin_dir: the testbed binaries.

    Raises:
        ValueError: an unknown target or role, or a wanted role nobody can play.
    """
    if target not in TARGETS:
        raise ValueError(f"--target must be one of {', '.join(TARGETS)}, not {target!r}")
    names: Iterable[str] = wanted if wanted is not None else [p.name for p in PARTS]
    impl: dict[str, str] = {}
    for role in names:
        if role not in BY_NAME:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(BY_NAME)}")
        if target == OURS and ours_has(role):
            impl[role] = OURS
        elif (target == GO or mixed) and go_has(role, bin_dir):
            impl[role] = GO
        elif wanted is not None:
            raise ValueError(f"no implementation of {role} for --target {target}")
    if "provisioner" not in impl:
        raise ValueError("the provisioner must take part (every workload feature needs it)")
    return Casting(impl)


def parse_roles(text: str | None) -> list[str] | None:
    """``--roles``: ``auto`` (None) or a comma-separated list."""
    if text is None or text == "auto":
        return None
    return [r.strip() for r in text.split(",") if r.strip()]
