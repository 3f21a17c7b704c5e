"""The playground driver's state machine: what each CSI call does to volumes and snapshots.

:class:`DriverState` holds the volumes, snapshots and publications, applies the CSI rules to
each operation (idempotency, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE, ...)
and persists every change through an optional :class:`StateStore`. It never sees protobuf: the
gRPC servicers translate messages into these calls, so the rules are unit-tested directly.
"""

from __future__ import annotations

import grpc

from csi_sidecars.playground.driver.core import StateCore, VolumeCap, access_type_of, page
from csi_sidecars.playground.driver.model import SINGLE_NODE_MODES, CsiError, Volume
from csi_sidecars.playground.driver.node_ops import NodeOps
from csi_sidecars.playground.driver.options import TOPOLOGY_KEY
from csi_sidecars.playground.driver.snapshot_ops import SnapshotOps

Code = grpc.StatusCode


class DriverState(SnapshotOps, NodeOps, StateCore):
    """All driver state and the rules of every controller, snapshot and node operation."""

    # -- volumes -------------------------------------------------------------------------------

    def create_volume(
        self,
        name: str,
        volcaps: list[VolumeCap],
        *,
        required_bytes: int = 0,
        limit_bytes: int = 0,
        parameters: dict[str, str] | None = None,
        mutable_parameters: dict[str, str] | None = None,
        source: tuple[str, str] | None = None,
        requisite: list[dict[str, str]] | None = None,
        preferred: list[dict[str, str]] | None = None,
    ) -> Volume:
        """CreateVolume. ``source`` is ``("snapshot", id)`` or ``("volume", id)``.

        Like hostpathplugin, a new volume is accessible from this driver's node only, whatever
        the topology requirement says. With ``known_nodes`` set (one driver standing in for
        several nodes), the first preferred, then requisite, known node is picked instead, and
        a requisite naming no known node is RESOURCE_EXHAUSTED.

        Returns the existing volume when one with ``name`` exists and is compatible.

        Raises:
            CsiError: INVALID_ARGUMENT, ALREADY_EXISTS, NOT_FOUND (source), OUT_OF_RANGE,
                RESOURCE_EXHAUSTED (capacity of a kind), UNIMPLEMENTED.
        """
        self._require_controller("CREATE_DELETE_VOLUME")
        params = dict(parameters or {})
        mutable = dict(mutable_parameters or {})
        if mutable:
            if not self.caps.has_controller("MODIFY_VOLUME"):
                raise CsiError(Code.INVALID_ARGUMENT, "mutable parameters are not supported")
            self._check_mutable(mutable)
        if not name:
            raise CsiError(Code.INVALID_ARGUMENT, "Name missing in request")
        if not volcaps:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume Capabilities missing in request")
        access_type = access_type_of(volcaps)
        if required_bytes < 0 or limit_bytes < 0:
            raise CsiError(Code.INVALID_ARGUMENT, "cannot have negative capacity")
        if limit_bytes and required_bytes > limit_bytes:
            raise CsiError(Code.INVALID_ARGUMENT, "capacity cannot exceed limit")
        capacity = required_bytes or limit_bytes
        if source is not None and source[0] not in ("snapshot", "volume"):
            raise CsiError(Code.INVALID_ARGUMENT, f"unsupported volume content source {source[0]}")

        existing = self.volume_by_name(name)
        if existing is not None:
            self._check_compatible(
                existing,
                capacity,
                limit_bytes,
                access_type=access_type,
                params=params,
                source=source,
            )
            return existing

        if capacity > self.opts.max_volume_size:
            raise CsiError(
                Code.OUT_OF_RANGE,
                f"Requested capacity {capacity} exceeds maximum allowed "
                f"{self.opts.max_volume_size}",
            )
        src_snap = src_vol = ""
        if source is not None:
            src_size = self._source_size(*source)
            if src_size > capacity:
                if limit_bytes and src_size > limit_bytes:
                    raise CsiError(
                        Code.OUT_OF_RANGE,
                        f"source {source[1]} of {src_size} bytes exceeds the limit {limit_bytes}",
                    )
                capacity = src_size
            src_snap, src_vol = (source[1], "") if source[0] == "snapshot" else ("", source[1])
        kind = params.get("kind", "")
        topology = self._pick_topology(requisite or [], preferred or [], kind, capacity)
        kind = self._pick_kind(kind, capacity, self._node_of(topology))

        vol = Volume(
            volume_id=self._new_id(),
            name=name,
            capacity_bytes=capacity,
            access_type=access_type,
            access_modes=sorted({c.mode for c in volcaps}),
            parameters=params,
            mutable_parameters=mutable,
            kind=kind,
            source_snapshot_id=src_snap,
            source_volume_id=src_vol,
            topology=topology,
            created_at=self.clock(),
        )
        if self.store is not None:
            self.store.create_volume(vol.volume_id, source)
        self.data.volumes[vol.volume_id] = vol
        self._commit()
        return vol

    def _check_compatible(
        self,
        vol: Volume,
        capacity: int,
        limit: int,
        *,
        access_type: str,
        params: dict[str, str],
        source: tuple[str, str] | None,
    ) -> None:
        def clash(why: str) -> CsiError:
            return CsiError(
                Code.ALREADY_EXISTS, f"Volume with the same name: {vol.name} but with {why}"
            )

        if vol.capacity_bytes < capacity or (limit and vol.capacity_bytes > limit):
            raise clash("different size already exist")
        if vol.access_type != access_type:
            raise clash(f"access type {vol.access_type} already exist")
        if vol.parameters != params:
            raise clash("different parameters already exist")
        if source is not None:
            kind, sid = source
            have = vol.source_snapshot_id if kind == "snapshot" else vol.source_volume_id
            if have != sid:
                raise clash(f"a different source {kind} already exist")

    def _source_size(self, kind: str, source_id: str) -> int:
        if kind == "snapshot":
            snap = self.data.snapshots.get(source_id)
            if snap is None:
                raise CsiError(Code.NOT_FOUND, f"source snapshot {source_id} does not exist")
            if not snap.ready(self.clock()):
                raise CsiError(Code.UNAVAILABLE, f"source snapshot {source_id} is not ready")
            return snap.size_bytes
        vol = self.data.volumes.get(source_id)
        if vol is None:
            raise CsiError(Code.NOT_FOUND, f"source volume {source_id} does not exist")
        return vol.capacity_bytes

    def _node_of(self, topology: list[dict[str, str]]) -> str:
        return next((t[TOPOLOGY_KEY] for t in topology if t.get(TOPOLOGY_KEY)), self.opts.node_id)

    def _pick_topology(
        self,
        requisite: list[dict[str, str]],
        preferred: list[dict[str, str]],
        kind: str = "",
        size: int = 0,
    ) -> list[dict[str, str]]:
        if not self.opts.enable_topology:
            return []
        node = self.opts.node_id
        if self.opts.known_nodes and (requisite or preferred):
            names = [t.get(TOPOLOGY_KEY, "") for t in [*preferred, *requisite]]
            candidates = [n for n in dict.fromkeys(names) if n and self.node_known(n)]
            if not candidates and requisite:
                raise CsiError(
                    Code.RESOURCE_EXHAUSTED,
                    f"no known node in the requisite topology {requisite}",
                )
            if self.tracks_capacity:
                # The first candidate with room, as a driver of many nodes would place it.
                roomy = [n for n in candidates if self._fits(kind, n, size)]
                candidates = roomy or candidates
            node = candidates[0] if candidates else node
        return [{TOPOLOGY_KEY: node}]

    def _fits(self, kind: str, node: str, size: int) -> bool:
        kinds = [kind] if kind else self.kinds(node)
        return any(self.has_room(k, node, size) for k in kinds)

    def _pick_kind(self, kind: str, capacity: int, node: str = "") -> str:
        node = node or self.opts.node_id
        if not self.tracks_capacity:
            if kind:
                raise CsiError(
                    Code.INVALID_ARGUMENT,
                    f'capacity tracking disabled, specifying kind "{kind}" is invalid',
                )
            return ""
        if not kind:
            kind = next((k for k in self.kinds(node) if self.has_room(k, node, capacity)), "")
            if not kind:
                raise CsiError(
                    Code.RESOURCE_EXHAUSTED,
                    f"requested capacity {capacity} exceeds all remaining capacity",
                )
        if not self.has_room(kind, node, capacity):
            raise CsiError(
                Code.RESOURCE_EXHAUSTED,
                f'requested capacity {capacity} exceeds remaining capacity for "{kind}"',
            )
        return kind

    def delete_volume(self, volume_id: str) -> None:
        """DeleteVolume; deleting an unknown volume succeeds.

        Raises:
            CsiError: INVALID_ARGUMENT, or FAILED_PRECONDITION for a volume in use when
                ``check_volume_lifecycle`` is on.
        """
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID missing in request")
        self._require_controller("CREATE_DELETE_VOLUME")
        vol = self.data.volumes.get(volume_id)
        if vol is None:
            return
        if self.opts.check_volume_lifecycle and (vol.attached or vol.staged or vol.published):
            raise CsiError(
                Code.FAILED_PRECONDITION,
                f"Volume '{volume_id}' is still used (attached: {sorted(vol.attached)}, "
                f"staged: {vol.staged}, published: {sorted(vol.published)})",
            )
        del self.data.volumes[volume_id]
        self._commit()  # forget it first: a crash now leaves a stray directory, not a ghost
        if self.store is not None:
            self.store.delete_volume(volume_id)

    def validate_volume_capabilities(
        self, volume_id: str, volcaps: list[VolumeCap]
    ) -> tuple[bool, str]:
        """ValidateVolumeCapabilities: ``(confirmed, message)``.

        Raises:
            CsiError: INVALID_ARGUMENT or NOT_FOUND.
        """
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID cannot be empty")
        if not volcaps:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume capabilities missing in request")
        vol = self._volume(volume_id)
        access_type = access_type_of(volcaps)
        if access_type != vol.access_type:
            return False, f"volume {volume_id} has access type {vol.access_type}"
        return True, ""

    def list_volumes(
        self, max_entries: int = 0, starting_token: str = ""
    ) -> tuple[list[Volume], str]:
        """ListVolumes, sorted by volume ID: ``(volumes, next_token)``.

        Raises:
            CsiError: ABORTED for an invalid token, INVALID_ARGUMENT, UNIMPLEMENTED.
        """
        self._require_controller("LIST_VOLUMES")
        ids, token = page(sorted(self.data.volumes), max_entries, starting_token)
        return [self.data.volumes[i] for i in ids], token

    def get_volume(self, volume_id: str) -> Volume:
        """ControllerGetVolume.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED.
        """
        self._require_controller("GET_VOLUME")
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID missing in request")
        return self._volume(volume_id)

    def get_capacity(
        self, parameters: dict[str, str] | None = None, node: str | None = None
    ) -> tuple[int, int]:
        """GetCapacity: ``(available_capacity, maximum_volume_size)``.

        Without ``--capacity`` the available capacity is the maximum volume size; with it, the
        unused part of the ``kind`` parameter's quantity on ``node`` (the accessible topology's
        node; default this driver's), 0 for an unknown kind or a node this driver does not
        serve.

        Raises:
            CsiError: UNIMPLEMENTED.
        """
        self._require_controller("GET_CAPACITY")
        available = self.opts.max_volume_size
        if self.tracks_capacity:
            where = node or self.opts.node_id
            kind = (parameters or {}).get("kind", "")
            total = self.node_total(kind, where) if self.node_known(where) else None
            available = 0 if total is None else max(0, total - self._used(kind, where))
        return available, min(available, self.opts.max_volume_size)

    def expand_volume(
        self, volume_id: str, required_bytes: int, limit_bytes: int = 0
    ) -> tuple[int, bool]:
        """ControllerExpandVolume: ``(capacity_bytes, node_expansion_required)``; never shrinks.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE, UNIMPLEMENTED;
                FAILED_PRECONDITION for a volume in use under ``offline_expansion``.
        """
        self._require_controller("EXPAND_VOLUME")
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID missing in request")
        if required_bytes <= 0 and limit_bytes <= 0:
            raise CsiError(Code.INVALID_ARGUMENT, "Capacity range not provided")
        if limit_bytes and required_bytes > limit_bytes:
            raise CsiError(Code.INVALID_ARGUMENT, "capacity cannot exceed limit")
        capacity = required_bytes or limit_bytes
        if capacity > self.opts.max_volume_size:
            raise CsiError(
                Code.OUT_OF_RANGE,
                f"Requested capacity {capacity} exceeds maximum allowed "
                f"{self.opts.max_volume_size}",
            )
        vol = self._volume(volume_id)
        if self.opts.offline_expansion and (vol.attached or vol.staged or vol.published):
            raise CsiError(
                Code.FAILED_PRECONDITION,
                f"volume {volume_id} is in use; this driver expands volumes offline only",
            )
        if limit_bytes and vol.capacity_bytes > limit_bytes:
            raise CsiError(Code.OUT_OF_RANGE, "volume is already larger than the limit")
        if vol.capacity_bytes < capacity:
            vol.capacity_bytes = capacity
            self._commit()
        node_required = self.opts.enable_volume_expansion and not self.opts.disable_node_expansion
        return vol.capacity_bytes, node_required

    def modify_volume(self, volume_id: str, mutable_parameters: dict[str, str]) -> None:
        """ControllerModifyVolume: merges the mutable parameters into the volume.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED.
        """
        self._require_controller("MODIFY_VOLUME")
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID cannot be empty")
        if not mutable_parameters:
            raise CsiError(Code.INVALID_ARGUMENT, "Mutable parameters cannot be empty")
        self._check_mutable(mutable_parameters)
        vol = self._volume(volume_id)
        vol.mutable_parameters.update(mutable_parameters)
        self._commit()

    # -- controller publication ----------------------------------------------------------------

    def controller_publish(
        self, volume_id: str, node_id: str, volcap: VolumeCap | None, readonly: bool = False
    ) -> dict[str, str]:
        """ControllerPublishVolume; returns the publish context.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND (volume or node), ALREADY_EXISTS (published
                with another readonly flag), FAILED_PRECONDITION (single-node volume on another
                node), RESOURCE_EXHAUSTED (attach limit), UNIMPLEMENTED.
        """
        self._require_controller("PUBLISH_UNPUBLISH_VOLUME")
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID cannot be empty")
        if not node_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Node ID cannot be empty")
        if volcap is None:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume Capabilities cannot be empty")
        if not self.node_known(node_id):
            raise CsiError(Code.NOT_FOUND, f"node {node_id} does not exist")
        vol = self._volume(volume_id)
        if node_id in vol.attached:
            if vol.attached[node_id] != readonly:
                raise CsiError(
                    Code.ALREADY_EXISTS, "Volume published but has incompatible readonly flag"
                )
            return {}
        others = [n for n in vol.attached if n != node_id]
        if others and volcap.mode in SINGLE_NODE_MODES:
            raise CsiError(
                Code.FAILED_PRECONDITION,
                f"volume {volume_id} is already published to node {others[0]}",
            )
        limit = self.opts.effective_attach_limit()
        if limit > 0:
            count = sum(1 for v in self.data.volumes.values() if node_id in v.attached)
            if count >= limit:
                raise CsiError(
                    Code.RESOURCE_EXHAUSTED,
                    f"Cannot attach any more volumes to this node ('{node_id}')",
                )
        vol.attached[node_id] = readonly
        self._commit()
        return {}

    def controller_unpublish(self, volume_id: str, node_id: str = "") -> None:
        """ControllerUnpublishVolume; succeeds when the volume or publication is gone.

        An empty ``node_id`` unpublishes the volume from every node.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND (unknown node), FAILED_PRECONDITION (still
                staged or published on the node, with ``check_volume_lifecycle``), UNIMPLEMENTED.
        """
        self._require_controller("PUBLISH_UNPUBLISH_VOLUME")
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID cannot be empty")
        if node_id and not self.node_known(node_id):
            raise CsiError(Code.NOT_FOUND, f"node {node_id} does not exist")
        vol = self.data.volumes.get(volume_id)
        if vol is None:
            return
        in_use = vol.staged or vol.published
        if self.opts.check_volume_lifecycle and in_use and node_id in ("", self.opts.node_id):
            raise CsiError(
                Code.FAILED_PRECONDITION,
                f"Volume '{volume_id}' is still staged or published on node {self.opts.node_id}",
            )
        nodes = [node_id] if node_id else list(vol.attached)
        changed = False
        for node in nodes:
            changed |= vol.attached.pop(node, None) is not None
        if changed:
            self._commit()
