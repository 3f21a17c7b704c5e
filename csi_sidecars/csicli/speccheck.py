"""Checks of driver replies against the rules of the CSI v1.12 spec.

A driver that answers ``OK`` with an empty ``volume_id``, a zero capacity where the request asked
for at least 5Gi, or a group snapshot whose members name another group breaks the CO in ways that
are hard to trace back. :func:`check_reply` inspects one reply (with its request) and returns a
:class:`SpecWarning` per broken rule, each naming the spec section and quoting the rule; the
command prints them and goes on (``--strict`` turns them into exit code 4).
:class:`~csi_sidecars.csicli.streamcheck.StreamCheck` does the same across the messages of a
SnapshotMetadata stream. Only rules a reply can be seen
to break are checked: proto3 cannot tell a REQUIRED ``false`` from an unset one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REQUIRED = "This field is REQUIRED."
REQUIRED_LIST = "A repeated or map field listed as REQUIRED MUST contain at least 1 element."
NOT_NEGATIVE = "The value of this field MUST NOT be negative."
AT_LEAST = "CapacityRange.required_bytes: Volume MUST be at least this big."
AT_MOST = "CapacityRange.limit_bytes: Volume MUST not be bigger than this."
STRING_LIMIT = "Unless otherwise specified, fields SHALL NOT exceed the limits (string: 128 bytes)."
MAP_LIMIT = "Unless otherwise specified, fields SHALL NOT exceed the limits (map: 4 KiB)."
MAX_ENTRIES = "If specified (non-zero value), the Plugin MUST NOT return more entries than this."
NAME_RULE = (
    "The name MUST follow domain name notation format ... It MUST be 63 characters or less, "
    "beginning and ending with an alphanumeric character"
)
TOPOLOGY_CAP = (
    "A plugin that returns this field MUST also set the VOLUME_ACCESSIBILITY_CONSTRAINTS "
    "plugin capability."
)
GROUP_ID_RULE = (
    "If this message is inside a VolumeGroupSnapshot message, the value MUST be the same as the "
    "group_snapshot_id in that message."
)
GROUP_READY_RULE = (
    "If any snapshot in the list of snapshots in this message have ready_to_use set to false, "
    "the SP MUST set this field to false."
)
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class SpecWarning:
    """One broken spec rule in a reply."""

    method: str
    field: str
    problem: str
    section: str
    rule: str

    def __str__(self) -> str:
        """``CreateVolume reply: volume.volume_id is empty (CSI spec, Volume: "...")``."""
        where = f"{self.field} " if self.field else ""
        return (
            f"{self.method} reply: {where}{self.problem} "
            f'(CSI spec v1.12, {self.section}: "{self.rule}")'
        )


class Checker:
    """Collects the warnings of one reply; the helpers check one kind of field each."""

    def __init__(self, method: str, plugin_caps: set[str] | None) -> None:
        self.method = method
        self.plugin_caps = plugin_caps
        self.out: list[SpecWarning] = []

    def warn(self, field: str, problem: str, section: str, rule: str) -> None:
        self.out.append(SpecWarning(self.method, field, problem, section, rule))

    def present(self, msg: Any, name: str, path: str, section: str) -> bool:
        if msg.HasField(name):
            return True
        self.warn(path, "is missing", section, REQUIRED)
        return False

    def ident(self, value: str, path: str, section: str, limit: int = 128) -> None:
        if not value:
            self.warn(path, "is empty", section, REQUIRED)
        elif len(value.encode()) > limit:
            rule = (
                STRING_LIMIT
                if limit == 128
                else f"The size of this field SHALL NOT exceed {limit} bytes."
            )
            self.warn(path, f"is {len(value.encode())} bytes long", section, rule)

    def map_size(self, value: Any, path: str, section: str) -> None:
        size = sum(len(k.encode()) + len(v.encode()) for k, v in value.items())
        if size > 4096:
            self.warn(path, f"holds {size} bytes", section, MAP_LIMIT)

    def not_negative(self, value: int, path: str, section: str) -> None:
        if value < 0:
            self.warn(path, f"is negative ({value})", section, NOT_NEGATIVE)

    def capacity(self, capacity: int, request: Any, path: str, section: str) -> None:
        self.not_negative(capacity, path, section)
        if request is None or not request.HasField("capacity_range"):
            return
        want = request.capacity_range
        if want.required_bytes > 0 and capacity < want.required_bytes:
            self.warn(
                path,
                f"is {capacity}, below the requested required_bytes {want.required_bytes}",
                "CapacityRange",
                AT_LEAST,
            )
        if want.limit_bytes > 0 and capacity > want.limit_bytes:
            self.warn(
                path,
                f"is {capacity}, above the requested limit_bytes {want.limit_bytes}",
                "CapacityRange",
                AT_MOST,
            )

    def _unadvertised_topology(self, has_topology: bool) -> bool:
        caps = self.plugin_caps
        return has_topology and caps is not None and "VOLUME_ACCESSIBILITY_CONSTRAINTS" not in caps

    def volume(self, vol: Any, path: str, request: Any = None) -> None:
        self.ident(vol.volume_id, f"{path}.volume_id", "Volume")
        self.capacity(vol.capacity_bytes, request, f"{path}.capacity_bytes", "Volume")
        self.map_size(vol.volume_context, f"{path}.volume_context", "Volume")
        if self._unadvertised_topology(len(vol.accessible_topology) > 0):
            self.warn(f"{path}.accessible_topology", "is set", "Volume", TOPOLOGY_CAP)

    def snapshot(self, snap: Any, path: str, source: str = "", group: str | None = None) -> None:
        self.ident(snap.snapshot_id, f"{path}.snapshot_id", "Snapshot")
        if not snap.source_volume_id:
            self.warn(f"{path}.source_volume_id", "is empty", "Snapshot", REQUIRED)
        elif source and snap.source_volume_id != source:
            self.warn(
                f"{path}.source_volume_id",
                f"is {snap.source_volume_id!r}, not the requested {source!r}",
                "Snapshot",
                "Identity information for the source volume. ... This field is REQUIRED.",
            )
        if not snap.HasField("creation_time"):
            self.warn(f"{path}.creation_time", "is missing", "Snapshot", REQUIRED)
        self.not_negative(snap.size_bytes, f"{path}.size_bytes", "Snapshot")
        if group is not None and snap.group_snapshot_id != group:
            self.warn(
                f"{path}.group_snapshot_id",
                f"is {snap.group_snapshot_id!r}, not the group's {group!r}",
                "Snapshot",
                GROUP_ID_RULE,
            )

    def group(self, group: Any, path: str, request: Any = None) -> None:
        section = "VolumeGroupSnapshot"
        self.ident(group.group_snapshot_id, f"{path}.group_snapshot_id", section)
        if not len(group.snapshots):
            self.warn(f"{path}.snapshots", "is empty", section, REQUIRED_LIST)
        if not group.HasField("creation_time"):
            self.warn(f"{path}.creation_time", "is missing", section, REQUIRED)
        for i, snap in enumerate(group.snapshots):
            self.snapshot(snap, f"{path}.snapshots[{i}]", group=group.group_snapshot_id)
        if group.ready_to_use and any(not s.ready_to_use for s in group.snapshots):
            self.warn(
                f"{path}.ready_to_use", "is true with a member not ready", section, GROUP_READY_RULE
            )
        wanted = set(getattr(request, "source_volume_ids", []) or [])
        got = {s.source_volume_id for s in group.snapshots}
        if wanted and len(group.snapshots) and wanted != got:
            self.warn(
                f"{path}.snapshots",
                f"cover volumes {sorted(got)}, the request named {sorted(wanted)}",
                "CreateVolumeGroupSnapshot",
                "source_volume_ids: volume IDs of the source volumes to be snapshotted together.",
            )

    def page(self, request: Any, reply: Any) -> None:
        limit = getattr(request, "max_entries", 0)
        if limit > 0 and len(reply.entries) > limit:
            self.warn(
                "entries",
                f"has {len(reply.entries)} entries for max_entries {limit}",
                self.method,
                MAX_ENTRIES,
            )


def _plugin_info(c: Checker, req: Any, resp: Any) -> None:
    if not resp.name:
        c.warn("name", "is empty", "GetPluginInfo", REQUIRED)
    elif not _NAME.match(resp.name):
        c.warn("name", f"{resp.name!r} is not a valid name", "GetPluginInfo", NAME_RULE)
    if not resp.vendor_version:
        c.warn("vendor_version", "is empty", "GetPluginInfo", REQUIRED)


def _create_volume(c: Checker, req: Any, resp: Any) -> None:
    if c.present(resp, "volume", "volume", "CreateVolume"):
        c.volume(resp.volume, "volume", req)


def _list_volumes(c: Checker, req: Any, resp: Any) -> None:
    c.page(req, resp)
    for i, entry in enumerate(resp.entries):
        if c.present(entry, "volume", f"entries[{i}].volume", "ListVolumes"):
            c.volume(entry.volume, f"entries[{i}].volume")


def _get_volume(c: Checker, req: Any, resp: Any) -> None:
    if c.present(resp, "volume", "volume", "ControllerGetVolume"):
        c.volume(resp.volume, "volume")
        if req.volume_id and resp.volume.volume_id and resp.volume.volume_id != req.volume_id:
            c.warn(
                "volume.volume_id",
                f"is {resp.volume.volume_id!r}, not the requested {req.volume_id!r}",
                "ControllerGetVolume",
                "The ID of the volume to fetch current volume information for.",
            )
    c.present(resp, "status", "status", "ControllerGetVolume")


def _validate(c: Checker, req: Any, resp: Any) -> None:
    if resp.HasField("confirmed") and not len(resp.confirmed.volume_capabilities):
        c.warn(
            "confirmed.volume_capabilities", "is empty", "ValidateVolumeCapabilities", REQUIRED_LIST
        )


def _publish(c: Checker, req: Any, resp: Any) -> None:
    c.map_size(resp.publish_context, "publish_context", "ControllerPublishVolume")


def _capacity(c: Checker, req: Any, resp: Any) -> None:
    c.not_negative(resp.available_capacity, "available_capacity", "GetCapacity")
    for name in ("maximum_volume_size", "minimum_volume_size"):
        if resp.HasField(name):
            c.not_negative(getattr(resp, name).value, name, "GetCapacity")


def _create_snapshot(c: Checker, req: Any, resp: Any) -> None:
    if c.present(resp, "snapshot", "snapshot", "CreateSnapshot"):
        c.snapshot(resp.snapshot, "snapshot", source=req.source_volume_id)


def _get_snapshot(c: Checker, req: Any, resp: Any) -> None:
    if c.present(resp, "snapshot", "snapshot", "GetSnapshot"):
        c.snapshot(resp.snapshot, "snapshot")


def _list_snapshots(c: Checker, req: Any, resp: Any) -> None:
    c.page(req, resp)
    for i, entry in enumerate(resp.entries):
        if c.present(entry, "snapshot", f"entries[{i}].snapshot", "ListSnapshots"):
            c.snapshot(entry.snapshot, f"entries[{i}].snapshot", source=req.source_volume_id)


def _controller_expand(c: Checker, req: Any, resp: Any) -> None:
    if resp.capacity_bytes == 0:
        c.warn(
            "capacity_bytes",
            "is 0",
            "ControllerExpandVolume",
            "Capacity of volume after expansion. This field is REQUIRED.",
        )
    else:
        c.capacity(resp.capacity_bytes, req, "capacity_bytes", "ControllerExpandVolume")


def _node_expand(c: Checker, req: Any, resp: Any) -> None:
    if resp.capacity_bytes:
        c.capacity(resp.capacity_bytes, req, "capacity_bytes", "NodeExpandVolume")


def _node_info(c: Checker, req: Any, resp: Any) -> None:
    c.ident(resp.node_id, "node_id", "NodeGetInfo", limit=256)
    if resp.max_volumes_per_node < 0:
        c.warn(
            "max_volumes_per_node",
            f"is negative ({resp.max_volumes_per_node})",
            "NodeGetInfo",
            "The plugin MUST NOT set negative values here.",
        )
    if c._unadvertised_topology(resp.HasField("accessible_topology")):
        c.warn("accessible_topology", "is set", "NodeGetInfo", TOPOLOGY_CAP)


def _stats(c: Checker, req: Any, resp: Any) -> None:
    for i, usage in enumerate(resp.usage):
        if usage.unit == 0:
            c.warn(
                f"usage[{i}].unit",
                "is UNKNOWN",
                "VolumeUsage",
                "Units by which values are measured. This field is REQUIRED.",
            )
        for name in ("available", "total", "used"):
            c.not_negative(getattr(usage, name), f"usage[{i}].{name}", "VolumeUsage")


def _group(c: Checker, req: Any, resp: Any) -> None:
    section = c.method.removeprefix("Create").removeprefix("Get")
    if c.present(resp, "group_snapshot", "group_snapshot", section):
        c.group(
            resp.group_snapshot,
            "group_snapshot",
            req if c.method == "CreateVolumeGroupSnapshot" else None,
        )


_CHECKS: dict[str, Callable[[Checker, Any, Any], None]] = {
    "GetPluginInfo": _plugin_info,
    "CreateVolume": _create_volume,
    "ListVolumes": _list_volumes,
    "ControllerGetVolume": _get_volume,
    "ValidateVolumeCapabilities": _validate,
    "ControllerPublishVolume": _publish,
    "GetCapacity": _capacity,
    "CreateSnapshot": _create_snapshot,
    "GetSnapshot": _get_snapshot,
    "ListSnapshots": _list_snapshots,
    "ControllerExpandVolume": _controller_expand,
    "NodeExpandVolume": _node_expand,
    "NodeGetInfo": _node_info,
    "NodeGetVolumeStats": _stats,
    "CreateVolumeGroupSnapshot": _group,
    "GetVolumeGroupSnapshot": _group,
}


def check_reply(
    method: str, request: Any, reply: Any, plugin_caps: set[str] | None = None
) -> list[SpecWarning]:
    """The spec rules ``reply`` (to ``request`` of ``method``) breaks.

    Args:
        method: the RPC name, e.g. ``CreateVolume``.
        request: the request message that was sent.
        reply: the reply message.
        plugin_caps: the plugin's ``PluginCapability.Service`` names when known, to check
            that topology is only reported by plugins that advertise it.
    """
    checker = Checker(method, plugin_caps)
    fn = _CHECKS.get(method)
    if fn is not None:
        fn(checker, request, reply)
    return checker.out
