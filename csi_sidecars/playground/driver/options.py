"""Options of the playground CSI driver and its command line.

The flags are those of the Go hostpath driver (``hostpathplugin``), parsed the way Go's ``flag``
package accepts them (``-endpoint=x``, ``--enable-attach``, ``--enable-topology=false``), plus a
few test-only ones: ``--offline-expansion``, ``--faults-file``, ``--request-log``,
``--known-node``, ``--add-capability`` / ``--remove-capability``, ``--snapshot-ready-delay``,
``--node-capacity`` (the capacity of one node, when one driver stands in for several:
``--capacity`` then applies per node) and the ``--controller-service`` / ``--node-service``
modes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field

from csi_sidecars import __version__
from csi_sidecars.kube.quantity import QuantityError, quantity_to_bytes
from csi_sidecars.runtime.flags import parse_go_bool

DEFAULT_DRIVER_NAME = "hostpath.csi.k8s.io"
TOPOLOGY_KEY = "topology.hostpath.csi/node"
TIB = 1 << 40


def parse_quantity(text: str) -> int:
    """Parse a Kubernetes resource quantity such as ``1Gi``, ``100M`` or ``1024`` into bytes.

    Raises:
        ValueError: for anything else.
    """
    try:
        value = quantity_to_bytes(text)
    except QuantityError:
        raise ValueError(f"invalid quantity {text!r}") from None
    if value < 0:
        raise ValueError(f"invalid quantity {text!r}: negative")
    return value


@dataclass
class DriverOptions:
    """How the driver behaves. Defaults match hostpathplugin where it has the same setting.

    Capability names for ``add_capabilities`` / ``remove_capabilities`` are enum value names,
    optionally qualified with the service: ``plugin:CONTROLLER_SERVICE``,
    ``controller:PUBLISH_UNPUBLISH_VOLUME``, ``node:STAGE_UNSTAGE_VOLUME``,
    ``group:CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT``. An unqualified name applies to every
    service that has it. Removing a capability also makes its RPCs answer UNIMPLEMENTED.
    """

    endpoint: str = "unix:///tmp/csi.sock"
    node_id: str = ""
    driver_name: str = DEFAULT_DRIVER_NAME
    vendor_version: str = __version__
    statedir: str | None = "/csi-data-dir"
    enable_attach: bool = False
    enable_topology: bool = True
    capacity: dict[str, int] = field(default_factory=dict)
    #: per node and kind, overriding ``capacity`` (one driver standing in for several nodes)
    node_capacity: dict[str, dict[str, int]] = field(default_factory=dict)
    max_volumes_per_node: int = 0
    attach_limit: int = 0
    max_volume_size: int = TIB
    max_volume_size_node: int = 0
    enable_volume_expansion: bool = True
    disable_controller_expansion: bool = False
    disable_node_expansion: bool = False
    enable_controller_modify_volume: bool = False
    accepted_mutable_parameter_names: list[str] = field(default_factory=list)
    offline_expansion: bool = False
    check_volume_lifecycle: bool = False
    controller_service: bool = True
    node_service: bool = True
    group_controller_service: bool = True
    known_nodes: list[str] = field(default_factory=list)
    add_capabilities: list[str] = field(default_factory=list)
    remove_capabilities: list[str] = field(default_factory=list)
    snapshot_ready_delay: float = 0.0
    faults_file: str | None = None
    request_log: str | None = None
    mount_volumes: bool = False
    call_log: str | None = None
    manifest: dict[str, str] = field(default_factory=dict)
    v: int = 0

    def socket_path(self) -> str:
        """The filesystem path of the unix socket named by ``endpoint``.

        Raises:
            ValueError: when the endpoint is not a unix socket.
        """
        return socket_path(self.endpoint)

    def effective_attach_limit(self) -> int:
        """The per-node attach limit: ``attach_limit`` when set, else ``max_volumes_per_node``."""
        return self.attach_limit if self.attach_limit > 0 else self.max_volumes_per_node

    def node_expand_limit(self) -> int:
        """The largest size NodeExpandVolume accepts."""
        return self.max_volume_size_node or self.max_volume_size


def socket_path(endpoint: str) -> str:
    """The path of a ``unix://`` endpoint (or a bare path).

    Raises:
        ValueError: for ``tcp://`` and other schemes; the driver listens on unix sockets only.
    """
    if endpoint.startswith("unix://"):
        path = endpoint[len("unix://") :]
    elif "://" in endpoint:
        raise ValueError(f"unsupported endpoint {endpoint!r}: only unix sockets are served")
    else:
        path = endpoint
    if not path:
        raise ValueError("empty endpoint")
    return path


def _bool(text: str) -> bool:
    try:
        return parse_go_bool(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _capacity(text: str) -> tuple[str, int]:
    kind, sep, qty = text.partition("=")
    if not sep or not kind:
        raise argparse.ArgumentTypeError(f"capacity must be <kind>=<quantity>, got {text!r}")
    try:
        return kind, parse_quantity(qty)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _node_capacity(text: str) -> tuple[str, str, int]:
    node, sep, rest = text.partition(":")
    if not sep or not node:
        raise argparse.ArgumentTypeError(
            f"node capacity must be <node>:<kind>=<quantity>, got {text!r}"
        )
    kind, qty = _capacity(rest)
    return node, kind, qty


def _size(text: str) -> int:
    try:
        return parse_quantity(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m csi_sidecars.playground.driver",
        description="A hostpath-like CSI driver for tests (bookkeeping, or real mounts with "
        "--mount-volumes).",
    )
    d = DriverOptions()

    def flag(name: str, default: bool, help_text: str) -> None:
        p.add_argument(
            name, type=_bool, nargs="?", const=True, default=default, metavar="BOOL", help=help_text
        )

    p.add_argument("--endpoint", default=d.endpoint, help="CSI endpoint (unix socket)")
    p.add_argument("--nodeid", dest="node_id", default="", help="node ID (required)")
    p.add_argument("--drivername", dest="driver_name", default=d.driver_name)
    p.add_argument("--vendor-version", default=d.vendor_version)
    p.add_argument("--statedir", default=d.statedir, help="directory for state.json and volumes")
    flag("--enable-attach", False, "advertise and serve PUBLISH_UNPUBLISH_VOLUME")
    flag("--enable-topology", True, f"report the {TOPOLOGY_KEY} topology segment")
    p.add_argument("--capacity", type=_capacity, action="append", default=[], metavar="KIND=Q")
    p.add_argument(
        "--node-capacity",
        type=_node_capacity,
        action="append",
        default=[],
        metavar="NODE:KIND=Q",
        help="capacity of one kind on one node (a known node or this one); overrides --capacity",
    )
    p.add_argument("--maxvolumespernode", dest="max_volumes_per_node", type=int, default=0)
    p.add_argument("--attach-limit", type=int, default=0)
    p.add_argument("--max-volume-size", type=_size, default=d.max_volume_size)
    p.add_argument("--max-volume-size-node", type=_size, default=0)
    flag("--enable-volume-expansion", True, "advertise volume expansion")
    flag("--node-expand-required", True, "deprecated alias of --enable-volume-expansion")
    flag("--disable-controller-expansion", False, "no controller EXPAND_VOLUME")
    flag("--disable-node-expansion", False, "no node EXPAND_VOLUME")
    flag("--enable-controller-modify-volume", False, "advertise MODIFY_VOLUME")
    flag(
        "--offline-expansion",
        False,
        "advertise OFFLINE volume expansion: ControllerExpandVolume of a volume in use (published "
        "or staged) fails with FAILED_PRECONDITION",
    )
    p.add_argument("--accepted-mutable-parameter-names", default="")
    flag("--check-volume-lifecycle", False, "refuse to delete or detach volumes in use")
    flag("--controller-service", None, "serve the Controller service")  # type: ignore[arg-type]
    flag("--node-service", None, "serve the Node service")  # type: ignore[arg-type]
    flag("--group-controller-service", True, "serve the GroupController service")
    p.add_argument(
        "--known-node",
        dest="known_nodes",
        action="append",
        default=[],
        help="another node ID this driver accepts in ControllerPublish and topology; * for any",
    )
    p.add_argument("--add-capability", dest="add_capabilities", action="append", default=[])
    p.add_argument("--remove-capability", dest="remove_capabilities", action="append", default=[])
    p.add_argument("--snapshot-ready-delay", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--faults-file", default=None, help="JSON fault rules, re-read on change")
    p.add_argument(
        "--request-log", default=None, help="append every call (JSON lines, wall times) to FILE"
    )
    flag(
        "--mount-volumes",
        False,
        "mount for real on a kubelet node: bind mounts of the volume's directory (loop devices "
        "for block volumes) at the staging and target paths; needs root",
    )
    p.add_argument(
        "--call-log", default=None, help="append every CSI call and its outcome to this file"
    )
    p.add_argument("--v", "-v", dest="v", type=int, default=0)
    for ignored in ("--enable-list-snapshots", "--automaxprocs", "--logtostderr"):
        flag(ignored, True, argparse.SUPPRESS)
    return p


def _by_node(entries: list[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for node, kind, qty in entries:
        out.setdefault(node, {})[kind] = qty
    return out


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Turn Go-style single-dash long flags (``-nodeid=x``) into ``--nodeid=x``."""
    out: list[str] = []
    for arg in argv:
        single = arg.startswith("-") and not arg.startswith("--")
        out.append("-" + arg if single and len(arg.split("=")[0]) > 2 else arg)
    return out


def parse_args(argv: Sequence[str]) -> DriverOptions:
    """Parse the driver's command line (without the program name).

    Raises:
        SystemExit: on bad flags or a missing ``--nodeid``, after printing usage.
    """
    parser = _parser()
    ns = parser.parse_args(normalize_argv(argv))
    if not ns.node_id:
        parser.error("no node id provided (--nodeid)")
    try:
        socket_path(ns.endpoint)
    except ValueError as err:
        parser.error(str(err))
    controller, node = ns.controller_service, ns.node_service
    if controller is None and node is None:
        controller = node = True
    mutable = [n for n in ns.accepted_mutable_parameter_names.split(",") if n]
    return DriverOptions(
        endpoint=ns.endpoint,
        node_id=ns.node_id,
        driver_name=ns.driver_name,
        vendor_version=ns.vendor_version,
        statedir=ns.statedir or None,
        enable_attach=ns.enable_attach,
        enable_topology=ns.enable_topology,
        capacity=dict(ns.capacity),
        node_capacity=_by_node(ns.node_capacity),
        max_volumes_per_node=ns.max_volumes_per_node,
        attach_limit=ns.attach_limit,
        max_volume_size=ns.max_volume_size,
        max_volume_size_node=ns.max_volume_size_node,
        enable_volume_expansion=ns.enable_volume_expansion and ns.node_expand_required,
        disable_controller_expansion=ns.disable_controller_expansion,
        disable_node_expansion=ns.disable_node_expansion,
        enable_controller_modify_volume=ns.enable_controller_modify_volume,
        accepted_mutable_parameter_names=mutable,
        offline_expansion=ns.offline_expansion,
        check_volume_lifecycle=ns.check_volume_lifecycle,
        controller_service=bool(controller),
        node_service=bool(node),
        group_controller_service=ns.group_controller_service,
        known_nodes=ns.known_nodes,
        add_capabilities=ns.add_capabilities,
        remove_capabilities=ns.remove_capabilities,
        snapshot_ready_delay=ns.snapshot_ready_delay,
        faults_file=ns.faults_file,
        request_log=ns.request_log,
        mount_volumes=ns.mount_volumes,
        call_log=ns.call_log,
        v=ns.v,
    )
