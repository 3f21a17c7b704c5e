"""Table layouts of CSI replies for ``-o table``, from the plain data of a reply.

Each function takes the reply data (proto field names, populated fields only, see
:mod:`csi_sidecars.csicli.convert`) and returns tables; fields a reply leaves out show as ``-``
or their proto3 default (``false``, ``0``), so a table always has the same columns. Sizes are
shown in the largest exact binary unit (``5Gi``), falling back to bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from csi_sidecars.csicli.arguments import format_size
from csi_sidecars.csicli.output import Table

NONE = "-"


def _map(value: Mapping[str, Any] | None) -> str:
    if not value:
        return NONE
    return ",".join(f"{k}={v}" for k, v in sorted(value.items()))


def _size(value: Any) -> str:
    return format_size(int(value)) if value is not None else "0"


def _bool(value: Any) -> str:
    return "true" if value else "false"


def _topologies(items: Sequence[Mapping[str, Any]] | None) -> str:
    if not items:
        return NONE
    return " ".join(_map(t.get("segments")) for t in items)


def _flatten(prefix: str, value: Any, rows: list[Sequence[str]]) -> None:
    if isinstance(value, dict):
        if not value:
            rows.append((prefix, "{}"))
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, rows)
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            rows.append((prefix, ",".join(str(v) for v in value) or "[]"))
        else:
            for i, sub in enumerate(value):
                _flatten(f"{prefix}[{i}]", sub, rows)
    else:
        rows.append((prefix, _bool(value) if isinstance(value, bool) else str(value)))


def fields(data: Mapping[str, Any]) -> list[Table]:
    """Any reply as FIELD / VALUE rows (nested fields as dotted paths); ``OK`` when empty."""
    if not data:
        return [Table(headers=(), title="OK")]
    rows: list[Sequence[str]] = []
    _flatten("", dict(data), rows)
    return [Table(headers=("FIELD", "VALUE"), rows=rows)]


def probe(data: Mapping[str, Any]) -> list[Table]:
    """Probe replies: an unset ``ready`` means ready, as the spec says."""
    if "ready" not in data:
        return [Table((), title="ready: true (the driver left ready unset)")]
    return [Table((), title=f"ready: {_bool(data['ready'])}")]


def capabilities(data: Mapping[str, Any]) -> list[Table]:
    """Capability lists of any service: kind (``service``, ``rpc``, ...) and type name."""
    rows: list[Sequence[str]] = []
    for cap in data.get("capabilities", []):
        for kind, value in cap.items():
            rows.append((kind, str(value.get("type", "UNKNOWN"))))
    if not rows:
        return [Table(headers=(), title="no capabilities")]
    return [Table(headers=("KIND", "CAPABILITY"), rows=rows)]


_VOLUME_COLUMNS = ("VOLUME ID", "CAPACITY", "CONTEXT", "TOPOLOGY", "SOURCE")
_STATUS_COLUMNS = ("PUBLISHED NODES", "CONDITION")


def _source(volume: Mapping[str, Any]) -> str:
    source = volume.get("content_source") or {}
    if "snapshot" in source:
        return "snapshot:" + str(source["snapshot"].get("snapshot_id", ""))
    if "volume" in source:
        return "volume:" + str(source["volume"].get("volume_id", ""))
    return NONE


def _condition(status: Mapping[str, Any]) -> str:
    cond = status.get("volume_condition")
    if cond is None:
        return NONE
    if cond.get("abnormal"):
        return "abnormal: " + str(cond.get("message", ""))
    return "ok" + (": " + str(cond["message"]) if cond.get("message") else "")


def _volume_row(volume: Mapping[str, Any]) -> list[str]:
    return [
        str(volume.get("volume_id", "")) or '""',
        _size(volume.get("capacity_bytes")),
        _map(volume.get("volume_context")),
        _topologies(volume.get("accessible_topology")),
        _source(volume),
    ]


def _status_cells(status: Mapping[str, Any]) -> list[str]:
    nodes = status.get("published_node_ids") or []
    return [",".join(nodes) or NONE, _condition(status)]


def volume(data: Mapping[str, Any]) -> list[Table]:
    """CreateVolume and ControllerGetVolume replies."""
    row = _volume_row(data.get("volume", {}))
    if "status" in data:
        return [Table(_VOLUME_COLUMNS + _STATUS_COLUMNS, [row + _status_cells(data["status"])])]
    return [Table(_VOLUME_COLUMNS, [row])]


def volumes(data: Mapping[str, Any]) -> list[Table]:
    """ListVolumes replies (one row per entry, then the next token if any)."""
    rows = [
        _volume_row(e.get("volume", {})) + _status_cells(e.get("status", {}))
        for e in data.get("entries", [])
    ]
    tables = [Table(_VOLUME_COLUMNS + _STATUS_COLUMNS, rows, "" if rows else "no volumes")]
    if data.get("next_token"):
        tables.append(Table((), title=f"next token: {data['next_token']} (use --all for all)"))
    return tables


_SNAPSHOT_COLUMNS = ("SNAPSHOT ID", "SOURCE VOLUME", "SIZE", "CREATED", "READY", "GROUP")


def _snapshot_row(snap: Mapping[str, Any]) -> list[str]:
    return [
        str(snap.get("snapshot_id", "")) or '""',
        str(snap.get("source_volume_id", "")) or NONE,
        _size(snap.get("size_bytes")),
        str(snap.get("creation_time", NONE)),
        _bool(snap.get("ready_to_use")),
        str(snap.get("group_snapshot_id", "")) or NONE,
    ]


def snapshot(data: Mapping[str, Any]) -> list[Table]:
    """CreateSnapshot and GetSnapshot replies."""
    return [Table(_SNAPSHOT_COLUMNS, [_snapshot_row(data.get("snapshot", {}))])]


def snapshots(data: Mapping[str, Any]) -> list[Table]:
    """ListSnapshots replies."""
    rows = [_snapshot_row(e.get("snapshot", {})) for e in data.get("entries", [])]
    tables = [Table(_SNAPSHOT_COLUMNS, rows, "" if rows else "no snapshots")]
    if data.get("next_token"):
        tables.append(Table((), title=f"next token: {data['next_token']} (use --all for all)"))
    return tables


def group_snapshot(data: Mapping[str, Any]) -> list[Table]:
    """CreateVolumeGroupSnapshot and GetVolumeGroupSnapshot replies."""
    group = data.get("group_snapshot", {})
    head = Table(
        ("GROUP SNAPSHOT ID", "CREATED", "READY", "SNAPSHOTS"),
        [
            (
                str(group.get("group_snapshot_id", "")) or '""',
                str(group.get("creation_time", NONE)),
                _bool(group.get("ready_to_use")),
                str(len(group.get("snapshots", []))),
            )
        ],
    )
    members = Table(_SNAPSHOT_COLUMNS, [_snapshot_row(s) for s in group.get("snapshots", [])])
    return [head, members]


def capacity(data: Mapping[str, Any]) -> list[Table]:
    """GetCapacity replies."""
    return [
        Table(
            ("AVAILABLE", "MAXIMUM VOLUME SIZE", "MINIMUM VOLUME SIZE"),
            [
                (
                    _size(data.get("available_capacity")),
                    _size(data["maximum_volume_size"]) if "maximum_volume_size" in data else NONE,
                    _size(data["minimum_volume_size"]) if "minimum_volume_size" in data else NONE,
                )
            ],
        )
    ]


def stats(data: Mapping[str, Any]) -> list[Table]:
    """NodeGetVolumeStats replies: usage per unit, then the volume condition."""
    rows: list[Sequence[str]] = []
    for usage in data.get("usage", []):
        unit = str(usage.get("unit", "UNKNOWN"))
        fmt = _size if unit == "BYTES" else (lambda v: str(v if v is not None else 0))
        rows.append(
            (unit, fmt(usage.get("total")), fmt(usage.get("used")), fmt(usage.get("available")))
        )
    tables = [Table(("UNIT", "TOTAL", "USED", "AVAILABLE"), rows, "" if rows else "no usage")]
    if "volume_condition" in data:
        tables.append(Table((), title="condition: " + _condition(data)))
    return tables


def node_info(data: Mapping[str, Any]) -> list[Table]:
    """NodeGetInfo replies."""
    topology = data.get("accessible_topology")
    return [
        Table(
            ("NODE ID", "MAX VOLUMES", "TOPOLOGY"),
            [
                (
                    str(data.get("node_id", "")) or '""',
                    str(data.get("max_volumes_per_node", 0)),
                    _map(topology.get("segments")) if topology else NONE,
                )
            ],
        )
    ]


def expand(data: Mapping[str, Any]) -> list[Table]:
    """ControllerExpandVolume replies."""
    return [
        Table(
            ("CAPACITY", "NODE EXPANSION REQUIRED"),
            [(_size(data.get("capacity_bytes")), _bool(data.get("node_expansion_required")))],
        )
    ]


def node_expand(data: Mapping[str, Any]) -> list[Table]:
    """NodeExpandVolume replies (capacity is optional there)."""
    return [Table(("CAPACITY",), [[_size(data.get("capacity_bytes"))]])]


def validate(data: Mapping[str, Any]) -> list[Table]:
    """ValidateVolumeCapabilities replies: confirmed or not, with the driver's message."""
    confirmed = data.get("confirmed")
    if confirmed is None:
        message = str(data.get("message", "")) or "no message"
        return [Table((), title=f"not confirmed: {message}")]
    rows = fields(confirmed)[0].rows if confirmed else []
    return [Table(("CONFIRMED FIELD", "VALUE"), rows, "confirmed")]


def block_header(data: Mapping[str, Any]) -> str:
    """The preface of a SnapshotMetadata stream table, from its first message."""
    return (
        f"type: {data.get('block_metadata_type', 'UNKNOWN')}  "
        f"volume capacity: {_size(data.get('volume_capacity_bytes'))}"
    )


BLOCK_COLUMNS = ("BYTE OFFSET", "SIZE")


def block_rows(data: Mapping[str, Any]) -> list[Sequence[str]]:
    """The rows of one SnapshotMetadata stream message."""
    return [
        (str(b.get("byte_offset", 0)), str(b.get("size_bytes", 0)))
        for b in data.get("block_metadata", [])
    ]
