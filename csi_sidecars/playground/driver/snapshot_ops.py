"""Snapshot and group-snapshot operations of the playground driver's state machine.

Snapshots are bookkeeping (an empty marker file each); ``snapshot_ready_delay`` makes new
snapshots report ``ready_to_use=false`` for a while so readiness polling can be tested.
"""

from __future__ import annotations

import grpc

from csi_sidecars.playground.driver.core import StateCore, page
from csi_sidecars.playground.driver.model import CsiError, GroupSnapshot, Snapshot

Code = grpc.StatusCode


class SnapshotOps(StateCore):
    """CreateSnapshot, DeleteSnapshot, ListSnapshots, GetSnapshot and the group variants."""

    def _new_snapshot(
        self, name: str, volume_id: str, parameters: dict[str, str], now: float, group: str = ""
    ) -> Snapshot:
        vol = self._volume(volume_id)
        snap = Snapshot(
            snapshot_id=self._new_id(),
            name=name,
            source_volume_id=volume_id,
            size_bytes=vol.capacity_bytes,
            creation_time=now,
            ready_at=now + self.opts.snapshot_ready_delay,
            group_snapshot_id=group,
            parameters=dict(parameters),
        )
        if self.store is not None:
            self.store.create_snapshot(snap.snapshot_id, volume_id)
        self.data.snapshots[snap.snapshot_id] = snap
        return snap

    def create_snapshot(
        self, name: str, source_volume_id: str, parameters: dict[str, str] | None = None
    ) -> Snapshot:
        """CreateSnapshot; the same name and source returns the existing snapshot.

        Raises:
            CsiError: INVALID_ARGUMENT, ALREADY_EXISTS (same name, other source), NOT_FOUND
                (source volume), UNIMPLEMENTED.
        """
        self._require_controller("CREATE_DELETE_SNAPSHOT")
        if not name:
            raise CsiError(Code.INVALID_ARGUMENT, "Name missing in request")
        if not source_volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "SourceVolumeId missing in request")
        existing = next((s for s in self.data.snapshots.values() if s.name == name), None)
        if existing is not None:
            if existing.source_volume_id == source_volume_id:
                return existing
            raise CsiError(
                Code.ALREADY_EXISTS,
                f"snapshot with the same name: {name} but with different SourceVolumeId "
                "already exist",
            )
        snap = self._new_snapshot(name, source_volume_id, parameters or {}, self.clock())
        self._commit()
        return snap

    def delete_snapshot(self, snapshot_id: str) -> None:
        """DeleteSnapshot; deleting an unknown snapshot succeeds.

        Raises:
            CsiError: INVALID_ARGUMENT (also for a member of a group snapshot), UNIMPLEMENTED.
        """
        if not snapshot_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Snapshot ID missing in request")
        self._require_controller("CREATE_DELETE_SNAPSHOT")
        snap = self.data.snapshots.get(snapshot_id)
        if snap is None:
            return
        if snap.group_snapshot_id:
            raise CsiError(
                Code.INVALID_ARGUMENT,
                f"Snapshot with ID {snapshot_id} is part of groupsnapshot {snap.group_snapshot_id}",
            )
        self._drop_snapshots([snapshot_id])

    def _drop_snapshots(self, snapshot_ids: list[str]) -> None:
        for sid in snapshot_ids:
            self.data.snapshots.pop(sid, None)
        self._commit()  # forget them first: a crash now leaves stray files, not ghosts
        if self.store is not None:
            for sid in snapshot_ids:
                self.store.delete_snapshot(sid)

    def list_snapshots(
        self,
        max_entries: int = 0,
        starting_token: str = "",
        source_volume_id: str = "",
        snapshot_id: str = "",
    ) -> tuple[list[Snapshot], str]:
        """ListSnapshots, sorted by snapshot ID and filtered by ID or source volume.

        Raises:
            CsiError: ABORTED for an invalid token, INVALID_ARGUMENT, UNIMPLEMENTED.
        """
        self._require_controller("LIST_SNAPSHOTS")
        snaps = self.data.snapshots
        if snapshot_id:
            keys = [snapshot_id] if snapshot_id in snaps else []
        else:
            keys = sorted(
                k
                for k, s in snaps.items()
                if not source_volume_id or s.source_volume_id == source_volume_id
            )
        ids, token = page(keys, max_entries, starting_token)
        return [snaps[i] for i in ids], token

    def get_snapshot(self, snapshot_id: str) -> Snapshot:
        """GetSnapshot.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED.
        """
        self._require_controller("GET_SNAPSHOT")
        if not snapshot_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Snapshot ID missing in request")
        snap = self.data.snapshots.get(snapshot_id)
        if snap is None:
            raise CsiError(Code.NOT_FOUND, f"Snapshot with ID {snapshot_id!r} not found")
        return snap

    def set_snapshot_ready(self, snapshot_id: str, ready: bool = True) -> None:
        """Test helper: make a snapshot ready now (or not ready until further notice).

        Raises:
            CsiError: NOT_FOUND for an unknown snapshot.
        """
        snap = self.data.snapshots.get(snapshot_id)
        if snap is None:
            raise CsiError(Code.NOT_FOUND, f"Snapshot with ID {snapshot_id!r} not found")
        snap.ready_at = self.clock() if ready else float("inf")
        self._commit()

    # -- group snapshots -----------------------------------------------------------------------

    def _require_group(self) -> None:
        if "CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT" not in self.caps.group:
            raise CsiError(Code.UNIMPLEMENTED, "group snapshots are not supported")

    def group_ready(self, group: GroupSnapshot) -> bool:
        """Whether every snapshot of ``group`` is ready to use."""
        now = self.clock()
        return all(s.ready(now) for i in group.snapshot_ids if (s := self.data.snapshots.get(i)))

    def create_group_snapshot(
        self, name: str, source_volume_ids: list[str], parameters: dict[str, str] | None = None
    ) -> GroupSnapshot:
        """CreateVolumeGroupSnapshot; the same name and sources return the existing group.

        Raises:
            CsiError: INVALID_ARGUMENT, ALREADY_EXISTS, NOT_FOUND (a source volume),
                UNIMPLEMENTED.
        """
        self._require_group()
        if not name:
            raise CsiError(Code.INVALID_ARGUMENT, "Name missing in request")
        if not source_volume_ids:
            raise CsiError(Code.INVALID_ARGUMENT, "SourceVolumeIds missing in request")
        existing = next((g for g in self.data.group_snapshots.values() if g.name == name), None)
        if existing is not None:
            if sorted(existing.source_volume_ids) == sorted(source_volume_ids):
                return existing
            raise CsiError(
                Code.ALREADY_EXISTS,
                f"group snapshot with the same name: {name} but with different "
                "SourceVolumeIds already exist",
            )
        for vid in source_volume_ids:
            self._volume(vid)
        now = self.clock()
        group = GroupSnapshot(
            group_snapshot_id=self._new_id(),
            name=name,
            source_volume_ids=list(source_volume_ids),
            snapshot_ids=[],
            creation_time=now,
        )
        for vid in source_volume_ids:
            snap = self._new_snapshot(
                f"{name}-{vid}", vid, parameters or {}, now, group.group_snapshot_id
            )
            group.snapshot_ids.append(snap.snapshot_id)
        self.data.group_snapshots[group.group_snapshot_id] = group
        self._commit()
        return group

    def _check_members(self, group: GroupSnapshot, snapshot_ids: list[str]) -> None:
        if snapshot_ids and sorted(snapshot_ids) != sorted(group.snapshot_ids):
            raise CsiError(Code.INVALID_ARGUMENT, "Snapshot IDs do not match the GroupSnapshot IDs")

    def delete_group_snapshot(self, group_snapshot_id: str, snapshot_ids: list[str]) -> None:
        """DeleteVolumeGroupSnapshot with all its snapshots; unknown IDs succeed.

        Raises:
            CsiError: INVALID_ARGUMENT, UNIMPLEMENTED.
        """
        self._require_group()
        if not group_snapshot_id:
            raise CsiError(Code.INVALID_ARGUMENT, "GroupSnapshot ID missing in request")
        group = self.data.group_snapshots.get(group_snapshot_id)
        if group is None:
            return
        self._check_members(group, snapshot_ids)
        del self.data.group_snapshots[group_snapshot_id]
        self._drop_snapshots(group.snapshot_ids)

    def get_group_snapshot(self, group_snapshot_id: str, snapshot_ids: list[str]) -> GroupSnapshot:
        """GetVolumeGroupSnapshot.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED.
        """
        self._require_group()
        if not group_snapshot_id:
            raise CsiError(Code.INVALID_ARGUMENT, "GroupSnapshot ID missing in request")
        group = self.data.group_snapshots.get(group_snapshot_id)
        if group is None:
            raise CsiError(Code.NOT_FOUND, f"group snapshot {group_snapshot_id} does not exist")
        self._check_members(group, snapshot_ids)
        return group
