"""Which capabilities the playground driver advertises, from its options.

The defaults follow hostpathplugin; on top of that the driver advertises
LIST_VOLUMES_PUBLISHED_NODES when attach is enabled (it really tracks publications), and tests
can add or remove any capability by name (see :class:`DriverOptions`). Values are the CSI enum
numbers, so this module needs no protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass

from csi_sidecars.playground.driver.options import DriverOptions

PLUGIN = {
    "CONTROLLER_SERVICE": 1,
    "VOLUME_ACCESSIBILITY_CONSTRAINTS": 2,
    "GROUP_CONTROLLER_SERVICE": 3,
    "SNAPSHOT_METADATA_SERVICE": 4,
}
EXPANSION = {"ONLINE": 1, "OFFLINE": 2}
CONTROLLER = {
    "CREATE_DELETE_VOLUME": 1,
    "PUBLISH_UNPUBLISH_VOLUME": 2,
    "LIST_VOLUMES": 3,
    "GET_CAPACITY": 4,
    "CREATE_DELETE_SNAPSHOT": 5,
    "LIST_SNAPSHOTS": 6,
    "CLONE_VOLUME": 7,
    "PUBLISH_READONLY": 8,
    "EXPAND_VOLUME": 9,
    "LIST_VOLUMES_PUBLISHED_NODES": 10,
    "VOLUME_CONDITION": 11,
    "GET_VOLUME": 12,
    "SINGLE_NODE_MULTI_WRITER": 13,
    "MODIFY_VOLUME": 14,
    "GET_SNAPSHOT": 15,
}
NODE = {
    "STAGE_UNSTAGE_VOLUME": 1,
    "GET_VOLUME_STATS": 2,
    "EXPAND_VOLUME": 3,
    "VOLUME_CONDITION": 4,
    "SINGLE_NODE_MULTI_WRITER": 5,
    "VOLUME_MOUNT_GROUP": 6,
}
GROUP = {"CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT": 1}

_TABLES = {
    "plugin": PLUGIN,
    "expansion": EXPANSION,
    "controller": CONTROLLER,
    "node": NODE,
    "group": GROUP,
}


@dataclass(frozen=True)
class Capabilities:
    """The advertised capability names of each service (sorted tuples of enum names)."""

    plugin: tuple[str, ...]
    expansion: tuple[str, ...]
    controller: tuple[str, ...]
    node: tuple[str, ...]
    group: tuple[str, ...]

    def has_controller(self, name: str) -> bool:
        """Whether the Controller service advertises ``name``."""
        return name in self.controller

    def has_node(self, name: str) -> bool:
        """Whether the Node service advertises ``name``."""
        return name in self.node

    def values(self, service: str) -> list[int]:
        """The enum numbers of ``service`` (``plugin``, ``controller``, ...), in order."""
        table = _TABLES[service]
        return [table[n] for n in getattr(self, service)]


def _apply(sets: dict[str, set[str]], spec: str, add: bool) -> None:
    service, sep, name = spec.partition(":")
    if not sep:
        service, name = "", spec
    matched = False
    for svc, table in _TABLES.items():
        if service and service != svc:
            continue
        if name in table:
            matched = True
            (sets[svc].add if add else sets[svc].discard)(name)
    if not matched:
        raise ValueError(f"unknown capability {spec!r}")


def compute(opts: DriverOptions) -> Capabilities:
    """The capabilities a driver with ``opts`` advertises.

    Raises:
        ValueError: when an added or removed capability name is unknown.
    """
    plugin: set[str] = set()
    controller: set[str] = set()
    group: set[str] = set()
    if opts.controller_service:
        plugin.add("CONTROLLER_SERVICE")
        controller |= {
            "CREATE_DELETE_VOLUME",
            "GET_VOLUME",
            "GET_CAPACITY",
            "CREATE_DELETE_SNAPSHOT",
            "LIST_SNAPSHOTS",
            "GET_SNAPSHOT",
            "LIST_VOLUMES",
            "CLONE_VOLUME",
            "VOLUME_CONDITION",
            "SINGLE_NODE_MULTI_WRITER",
        }
        if opts.enable_volume_expansion and not opts.disable_controller_expansion:
            controller.add("EXPAND_VOLUME")
        if opts.enable_attach:
            controller |= {"PUBLISH_UNPUBLISH_VOLUME", "LIST_VOLUMES_PUBLISHED_NODES"}
        if opts.enable_controller_modify_volume:
            controller.add("MODIFY_VOLUME")
        if opts.group_controller_service:
            plugin.add("GROUP_CONTROLLER_SERVICE")
            group.add("CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT")
    if opts.enable_topology:
        plugin.add("VOLUME_ACCESSIBILITY_CONSTRAINTS")
    node: set[str] = set()
    if opts.node_service:
        node |= {"STAGE_UNSTAGE_VOLUME", "VOLUME_CONDITION", "GET_VOLUME_STATS"}
        node.add("SINGLE_NODE_MULTI_WRITER")
        if opts.enable_volume_expansion and not opts.disable_node_expansion:
            node.add("EXPAND_VOLUME")
    # hostpathplugin advertises no VolumeExpansion type; --offline-expansion advertises OFFLINE.
    expansion: set[str] = {"OFFLINE"} if opts.offline_expansion else set()
    sets = {
        "plugin": plugin,
        "expansion": expansion,
        "controller": controller,
        "node": node,
        "group": group,
    }
    for spec in opts.add_capabilities:
        _apply(sets, spec, add=True)
    for spec in opts.remove_capabilities:
        _apply(sets, spec, add=False)

    def ordered(svc: str) -> tuple[str, ...]:
        table = _TABLES[svc]
        return tuple(sorted(sets[svc], key=lambda n: table[n]))

    return Capabilities(
        plugin=ordered("plugin"),
        expansion=ordered("expansion"),
        controller=ordered("controller"),
        node=ordered("node"),
        group=ordered("group"),
    )
