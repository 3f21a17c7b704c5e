"""Translation between CSI protobuf messages and the driver's state machine.

:class:`CsiHandlers` has one method per CSI RPC, named exactly like the RPC, taking the request
message and returning the reply message. Errors are raised as :class:`CsiError`; the server in
:mod:`csi_sidecars.playground.driver.server` turns them into gRPC statuses and adds faults and
the call log around every call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.playground.driver.core import VolumeCap
from csi_sidecars.playground.driver.model import CsiError, GroupSnapshot, Snapshot, Volume
from csi_sidecars.playground.driver.options import TOPOLOGY_KEY
from csi_sidecars.playground.driver.state import DriverState

Code = grpc.StatusCode
pb: Any = csi_pb2  # the generated module's classes are dynamic; keep mypy out of them


def volcap(msg: Any) -> VolumeCap:
    """The :class:`VolumeCap` of a ``csi.v1.VolumeCapability``."""
    kind = msg.WhichOneof("access_type") or ""
    flags = tuple(msg.mount.mount_flags) if kind == "mount" else ()
    fs_type = msg.mount.fs_type if kind == "mount" else ""
    return VolumeCap(kind, int(msg.access_mode.mode), fs_type, flags)


def _optional_volcap(msg: Any, field: str) -> VolumeCap | None:
    return volcap(getattr(msg, field)) if msg.HasField(field) else None


def _timestamp(seconds: float) -> Any:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _capacity(msg: Any) -> tuple[int, int]:
    if not msg.HasField("capacity_range"):
        return 0, 0
    return int(msg.capacity_range.required_bytes), int(msg.capacity_range.limit_bytes)


class CsiHandlers:
    """The Identity, Controller, GroupController and Node RPCs over one :class:`DriverState`."""

    def __init__(self, state: DriverState) -> None:
        self.state = state
        self.opts = state.opts

    def implemented(self, service: str) -> dict[str, Callable[[Any], Any]]:
        """The handlers of ``service`` (``Identity``, ``Controller``, ...) by method name."""
        desc = csi_pb2.DESCRIPTOR.services_by_name[service]
        return {m.name: getattr(self, m.name) for m in desc.methods if hasattr(self, m.name)}

    # -- conversions -----------------------------------------------------------------------------

    def volume_msg(self, vol: Volume, with_context: bool = True) -> Any:
        """The ``csi.v1.Volume`` of ``vol``."""
        msg = pb.Volume(volume_id=vol.volume_id, capacity_bytes=vol.capacity_bytes)
        if with_context:
            msg.volume_context.update(vol.parameters)
            for segments in vol.topology:
                msg.accessible_topology.add().segments.update(segments)
            if vol.source_snapshot_id:
                msg.content_source.snapshot.snapshot_id = vol.source_snapshot_id
            elif vol.source_volume_id:
                msg.content_source.volume.volume_id = vol.source_volume_id
        return msg

    def snapshot_msg(self, snap: Snapshot) -> Any:
        """The ``csi.v1.Snapshot`` of ``snap``."""
        return pb.Snapshot(
            snapshot_id=snap.snapshot_id,
            source_volume_id=snap.source_volume_id,
            size_bytes=snap.size_bytes,
            creation_time=_timestamp(snap.creation_time),
            ready_to_use=snap.ready(self.state.clock()),
            group_snapshot_id=snap.group_snapshot_id,
        )

    def group_msg(self, group: GroupSnapshot) -> Any:
        """The ``csi.v1.VolumeGroupSnapshot`` of ``group``."""
        snaps = [self.state.data.snapshots.get(i) for i in group.snapshot_ids]
        return pb.VolumeGroupSnapshot(
            group_snapshot_id=group.group_snapshot_id,
            snapshots=[self.snapshot_msg(s) for s in snaps if s is not None],
            creation_time=_timestamp(group.creation_time),
            ready_to_use=self.state.group_ready(group),
        )

    # -- Identity --------------------------------------------------------------------------------

    def GetPluginInfo(self, req: Any) -> Any:
        """GetPluginInfo: the driver name and version (UNAVAILABLE when either is empty)."""
        if not self.opts.driver_name:
            raise CsiError(Code.UNAVAILABLE, "Driver name not configured")
        if not self.opts.vendor_version:
            raise CsiError(Code.UNAVAILABLE, "Driver is missing version")
        return pb.GetPluginInfoResponse(
            name=self.opts.driver_name,
            vendor_version=self.opts.vendor_version,
            manifest=self.opts.manifest,
        )

    def GetPluginCapabilities(self, req: Any) -> Any:
        """GetPluginCapabilities."""
        out = pb.GetPluginCapabilitiesResponse()
        for value in self.state.caps.values("plugin"):
            out.capabilities.add().service.type = value
        for value in self.state.caps.values("expansion"):
            out.capabilities.add().volume_expansion.type = value
        return out

    def Probe(self, req: Any) -> Any:
        """Probe: always healthy and ready (faults script the rest)."""
        return pb.ProbeResponse()

    # -- Controller ------------------------------------------------------------------------------

    def ControllerGetCapabilities(self, req: Any) -> Any:
        """ControllerGetCapabilities."""
        out = pb.ControllerGetCapabilitiesResponse()
        for value in self.state.caps.values("controller"):
            out.capabilities.add().rpc.type = value
        return out

    def CreateVolume(self, req: Any) -> Any:
        """CreateVolume."""
        source = None
        if req.HasField("volume_content_source"):
            kind = req.volume_content_source.WhichOneof("type") or ""
            if kind == "snapshot":
                source = (kind, req.volume_content_source.snapshot.snapshot_id)
            elif kind == "volume":
                source = (kind, req.volume_content_source.volume.volume_id)
            else:
                raise CsiError(Code.INVALID_ARGUMENT, "volume content source has no type")
        required, limit = _capacity(req)
        reqs = req.accessibility_requirements
        vol = self.state.create_volume(
            req.name,
            [volcap(c) for c in req.volume_capabilities],
            required_bytes=required,
            limit_bytes=limit,
            parameters=dict(req.parameters),
            mutable_parameters=dict(req.mutable_parameters),
            source=source,
            requisite=[dict(t.segments) for t in reqs.requisite],
            preferred=[dict(t.segments) for t in reqs.preferred],
        )
        return pb.CreateVolumeResponse(volume=self.volume_msg(vol))

    def DeleteVolume(self, req: Any) -> Any:
        """DeleteVolume."""
        self.state.delete_volume(req.volume_id)
        return pb.DeleteVolumeResponse()

    def ControllerPublishVolume(self, req: Any) -> Any:
        """ControllerPublishVolume."""
        ctx = self.state.controller_publish(
            req.volume_id, req.node_id, _optional_volcap(req, "volume_capability"), req.readonly
        )
        return pb.ControllerPublishVolumeResponse(publish_context=ctx)

    def ControllerUnpublishVolume(self, req: Any) -> Any:
        """ControllerUnpublishVolume."""
        self.state.controller_unpublish(req.volume_id, req.node_id)
        return pb.ControllerUnpublishVolumeResponse()

    def ValidateVolumeCapabilities(self, req: Any) -> Any:
        """ValidateVolumeCapabilities."""
        ok, message = self.state.validate_volume_capabilities(
            req.volume_id, [volcap(c) for c in req.volume_capabilities]
        )
        if not ok:
            return pb.ValidateVolumeCapabilitiesResponse(message=message)
        confirmed = pb.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=req.volume_context,
            volume_capabilities=req.volume_capabilities,
            parameters=req.parameters,
            mutable_parameters=req.mutable_parameters,
        )
        return pb.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    def _status(self, vol: Volume, status: Any) -> None:
        if self.state.caps.has_controller("LIST_VOLUMES_PUBLISHED_NODES"):
            status.published_node_ids.extend(self.state.published_nodes(vol))
        if self.state.caps.has_controller("VOLUME_CONDITION"):
            cond = self.state.condition(vol)
            status.volume_condition.abnormal = cond.abnormal
            status.volume_condition.message = cond.message

    def ListVolumes(self, req: Any) -> Any:
        """ListVolumes, with published nodes and volume condition when advertised."""
        vols, token = self.state.list_volumes(req.max_entries, req.starting_token)
        out = pb.ListVolumesResponse(next_token=token)
        for vol in vols:
            entry = out.entries.add()
            entry.volume.CopyFrom(self.volume_msg(vol))
            self._status(vol, entry.status)
        return out

    def ControllerGetVolume(self, req: Any) -> Any:
        """ControllerGetVolume."""
        vol = self.state.get_volume(req.volume_id)
        out = pb.ControllerGetVolumeResponse(volume=self.volume_msg(vol))
        self._status(vol, out.status)
        return out

    def GetCapacity(self, req: Any) -> Any:
        """GetCapacity."""
        node = None
        if req.HasField("accessible_topology"):
            node = req.accessible_topology.segments.get(TOPOLOGY_KEY) or None
        available, maximum = self.state.get_capacity(dict(req.parameters), node)
        out = pb.GetCapacityResponse(available_capacity=available)
        out.maximum_volume_size.value = maximum
        out.minimum_volume_size.value = 0
        return out

    def ControllerExpandVolume(self, req: Any) -> Any:
        """ControllerExpandVolume."""
        required, limit = _capacity(req)
        capacity, node = self.state.expand_volume(req.volume_id, required, limit)
        return pb.ControllerExpandVolumeResponse(
            capacity_bytes=capacity, node_expansion_required=node
        )

    def ControllerModifyVolume(self, req: Any) -> Any:
        """ControllerModifyVolume."""
        self.state.modify_volume(req.volume_id, dict(req.mutable_parameters))
        return pb.ControllerModifyVolumeResponse()

    def CreateSnapshot(self, req: Any) -> Any:
        """CreateSnapshot."""
        snap = self.state.create_snapshot(req.name, req.source_volume_id, dict(req.parameters))
        return pb.CreateSnapshotResponse(snapshot=self.snapshot_msg(snap))

    def DeleteSnapshot(self, req: Any) -> Any:
        """DeleteSnapshot."""
        self.state.delete_snapshot(req.snapshot_id)
        return pb.DeleteSnapshotResponse()

    def ListSnapshots(self, req: Any) -> Any:
        """ListSnapshots."""
        snaps, token = self.state.list_snapshots(
            req.max_entries, req.starting_token, req.source_volume_id, req.snapshot_id
        )
        out = pb.ListSnapshotsResponse(next_token=token)
        for snap in snaps:
            out.entries.add().snapshot.CopyFrom(self.snapshot_msg(snap))
        return out

    def GetSnapshot(self, req: Any) -> Any:
        """GetSnapshot."""
        snap = self.state.get_snapshot(req.snapshot_id)
        return pb.GetSnapshotResponse(snapshot=self.snapshot_msg(snap))

    # -- GroupController -------------------------------------------------------------------------

    def GroupControllerGetCapabilities(self, req: Any) -> Any:
        """GroupControllerGetCapabilities."""
        out = pb.GroupControllerGetCapabilitiesResponse()
        for value in self.state.caps.values("group"):
            out.capabilities.add().rpc.type = value
        return out

    def CreateVolumeGroupSnapshot(self, req: Any) -> Any:
        """CreateVolumeGroupSnapshot."""
        group = self.state.create_group_snapshot(
            req.name, list(req.source_volume_ids), dict(req.parameters)
        )
        return pb.CreateVolumeGroupSnapshotResponse(group_snapshot=self.group_msg(group))

    def DeleteVolumeGroupSnapshot(self, req: Any) -> Any:
        """DeleteVolumeGroupSnapshot."""
        self.state.delete_group_snapshot(req.group_snapshot_id, list(req.snapshot_ids))
        return pb.DeleteVolumeGroupSnapshotResponse()

    def GetVolumeGroupSnapshot(self, req: Any) -> Any:
        """GetVolumeGroupSnapshot."""
        group = self.state.get_group_snapshot(req.group_snapshot_id, list(req.snapshot_ids))
        return pb.GetVolumeGroupSnapshotResponse(group_snapshot=self.group_msg(group))

    # -- Node ------------------------------------------------------------------------------------

    def NodeGetCapabilities(self, req: Any) -> Any:
        """NodeGetCapabilities."""
        out = pb.NodeGetCapabilitiesResponse()
        for value in self.state.caps.values("node"):
            out.capabilities.add().rpc.type = value
        return out

    def NodeGetInfo(self, req: Any) -> Any:
        """NodeGetInfo."""
        node_id, max_volumes, segments = self.state.node_info()
        out = pb.NodeGetInfoResponse(node_id=node_id, max_volumes_per_node=max_volumes)
        if segments:
            out.accessible_topology.segments.update(segments)
        return out

    def NodeStageVolume(self, req: Any) -> Any:
        """NodeStageVolume."""
        self.state.node_stage(
            req.volume_id, req.staging_target_path, _optional_volcap(req, "volume_capability")
        )
        return pb.NodeStageVolumeResponse()

    def NodeUnstageVolume(self, req: Any) -> Any:
        """NodeUnstageVolume."""
        self.state.node_unstage(req.volume_id, req.staging_target_path)
        return pb.NodeUnstageVolumeResponse()

    def NodePublishVolume(self, req: Any) -> Any:
        """NodePublishVolume."""
        self.state.node_publish(
            req.volume_id,
            req.target_path,
            _optional_volcap(req, "volume_capability"),
            staging_target_path=req.staging_target_path,
            readonly=req.readonly,
            volume_context=dict(req.volume_context),
        )
        return pb.NodePublishVolumeResponse()

    def NodeUnpublishVolume(self, req: Any) -> Any:
        """NodeUnpublishVolume."""
        self.state.node_unpublish(req.volume_id, req.target_path)
        return pb.NodeUnpublishVolumeResponse()

    def NodeGetVolumeStats(self, req: Any) -> Any:
        """NodeGetVolumeStats: bytes from the bookkeeping, inodes made up, and the condition."""
        vol, used, cond = self.state.node_volume_stats(req.volume_id, req.volume_path)
        total = vol.capacity_bytes
        out = pb.NodeGetVolumeStatsResponse()
        out.usage.add(total=total, used=used, available=total - used, unit=pb.VolumeUsage.BYTES)
        out.usage.add(total=1_000_000, used=1, available=999_999, unit=pb.VolumeUsage.INODES)
        if self.state.caps.has_node("VOLUME_CONDITION"):
            out.volume_condition.abnormal = cond.abnormal
            out.volume_condition.message = cond.message
        return out

    def NodeExpandVolume(self, req: Any) -> Any:
        """NodeExpandVolume."""
        required, limit = _capacity(req)
        capacity = self.state.node_expand(req.volume_id, req.volume_path, required, limit)
        return pb.NodeExpandVolumeResponse(capacity_bytes=capacity)


SERVICES = ("Identity", "Controller", "GroupController", "Node")
