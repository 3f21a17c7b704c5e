"""Which roles ``csi-sidecars run`` can bundle, of which kind, and the interface they implement.

A *kind* is a family of roles that can share one process because they share their plumbing: the
node roles (driver socket, kubelet, HTTP probes; no TLS, no Kubernetes client) and, later, the
controller roles (one CSI connection, one Kubernetes client and its informers). Each kind has a
runner, ``async (roles, stop) -> exit code``, that builds the shared parts and runs the roles
under :func:`~csi_sidecars.run.supervise.supervise`. A role takes part through an adapter that
implements :class:`BundledRole`; adapters live in ``run/`` so roles never import each other or
know about bundles.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple, Protocol

import click

NODE = "node"
CONTROLLER = "controller"


class BundledRole(Protocol):
    """What a role offers the bundle.

    The node kind's adapters also have ``csi_address(config)``, ``routes(config)`` and
    ``run(config, stop, link=..., http=...)``; see :mod:`csi_sidecars.run.node`.
    """

    name: str

    def params(self) -> list[click.Parameter]:
        """The role's own flags, unprefixed, exactly as its subcommand declares them."""
        ...

    def configure(self, values: dict[str, Any]) -> Any:
        """The role's configuration from its flag values (keyed by parameter name).

        Raises:
            csi_sidecars.runtime.errors.ConfigError: for bad or conflicting flags.
            SystemExit: where the role's own subcommand exits before it starts.
        """
        ...


class Kind(NamedTuple):
    """A family of roles that can share a process."""

    name: str
    #: ``module:attr`` of ``async (list[(adapter, config)], stop) -> int``; None: not yet.
    runner: str | None
    #: Whether the kind's roles need ``ssl`` (the node roles do not: the process gives it up).
    tls: bool


class Entry(NamedTuple):
    """A role ``run`` knows."""

    name: str
    kind: str
    #: ``module:attr`` of the role's :class:`BundledRole` adapter; None: not bundleable yet.
    target: str | None


KINDS: dict[str, Kind] = {
    NODE: Kind(NODE, "csi_sidecars.run.node:run_node_bundle", tls=False),
    CONTROLLER: Kind(CONTROLLER, "csi_sidecars.run.controller:run_controller_bundle", tls=True),
}

REGISTRY: dict[str, Entry] = {
    "livenessprobe": Entry("livenessprobe", NODE, "csi_sidecars.run.node:LIVENESSPROBE"),
    "node-driver-registrar": Entry(
        "node-driver-registrar", NODE, "csi_sidecars.run.node:NODE_DRIVER_REGISTRAR"
    ),
    "provisioner": Entry("provisioner", CONTROLLER, "csi_sidecars.run.controller:PROVISIONER"),
    "attacher": Entry("attacher", CONTROLLER, "csi_sidecars.run.controller:ATTACHER"),
    "snapshotter": Entry("snapshotter", CONTROLLER, "csi_sidecars.run.controller:SNAPSHOTTER"),
    "resizer": Entry("resizer", CONTROLLER, "csi_sidecars.run.controller:RESIZER"),
    "cluster-driver-registrar": Entry(
        "cluster-driver-registrar",
        CONTROLLER,
        "csi_sidecars.run.controller:CLUSTER_DRIVER_REGISTRAR",
    ),
}


#: Roles that may join a bundle of another kind: the livenessprobe shares nothing but the driver
#: socket and HTTP servers, so it runs next to the controller roles too (a controller Deployment
#: usually carries one).
ANY_KIND = frozenset({"livenessprobe"})


def load(target: str) -> Any:
    """Import ``module:attr``."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def resolve(spec: str) -> tuple[Kind, list[Entry]]:
    """The kind and entries for a ``--roles`` value (comma separated, order kept, no repeats).

    Raises:
        click.UsageError: for an empty list, an unknown or repeated role, roles of different
            kinds, or a kind ``run`` cannot run yet.
    """
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise click.UsageError(
            "--roles needs at least one role, e.g. --roles node-driver-registrar,livenessprobe"
        )
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        known = ", ".join(sorted(REGISTRY))
        raise click.UsageError(f"unknown role {unknown[0]!r} for --roles (known: {known})")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise click.UsageError(f"role {repeated[0]!r} is listed twice in --roles")
    entries = [REGISTRY[name] for name in names]
    kinds = {entry.kind for entry in entries if entry.name not in ANY_KIND} or {entries[0].kind}
    if len(kinds) > 1:
        by_kind = "; ".join(
            f"{kind}: {', '.join(e.name for e in entries if e.kind == kind)}"
            for kind in sorted(kinds)
        )
        raise click.UsageError(
            f"--roles mixes roles that cannot share a process ({by_kind}); run one bundle each"
        )
    kind = KINDS[kinds.pop()]
    missing = [entry.name for entry in entries if entry.target is None]
    if kind.runner is None or missing:
        waiting = ", ".join(missing or [entry.name for entry in entries])
        raise click.UsageError(
            f"the {kind.name} bundle is not yet available in `run` ({waiting}); "
            "run each role as its own subcommand, e.g. `csi-sidecars "
            f"{(missing or [entries[0].name])[0]} ...`"
        )
    return kind, entries
