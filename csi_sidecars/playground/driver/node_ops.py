"""Node operations of the playground driver's state machine.

Staging and publishing are recorded in the state; what happens on the filesystem is the
mounter's part (:mod:`.mounter`): by default NodePublishVolume only creates the target (a
directory, or a file for block volumes) and NodeUnpublishVolume removes it, as the CSI spec asks
of a plugin; with ``--mount-volumes`` they bind-mount for real, for a real kubelet.
"""

from __future__ import annotations

import os
import random

import grpc

from csi_sidecars.playground.driver.core import StateCore, VolumeCap, access_type_of
from csi_sidecars.playground.driver.model import (
    MOUNT,
    SINGLE_NODE_SINGLE_WRITER,
    Condition,
    CsiError,
    Volume,
)
from csi_sidecars.playground.driver.options import TOPOLOGY_KEY

Code = grpc.StatusCode

EPHEMERAL_KEY = "csi.storage.k8s.io/ephemeral"
EPHEMERAL_SIZE = 100 * 1024 * 1024


class NodeOps(StateCore):
    """NodeStage/Unstage/Publish/Unpublish, NodeGetVolumeStats, NodeExpandVolume, NodeGetInfo."""

    def node_stage(
        self, volume_id: str, staging_target_path: str, volcap: VolumeCap | None
    ) -> None:
        """NodeStageVolume; staging again at the same path succeeds.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION (not attached to this
                node with attach enabled, or staged at another path), UNIMPLEMENTED.
        """
        self._require_node("STAGE_UNSTAGE_VOLUME")
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID missing in request")
        if not staging_target_path:
            raise CsiError(Code.INVALID_ARGUMENT, "Staging target path missing in request")
        if volcap is None:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume Capability missing in request")
        vol = self._volume(volume_id)
        if self.opts.enable_attach and self.opts.node_id not in vol.attached:
            raise CsiError(
                Code.FAILED_PRECONDITION,
                f"ControllerPublishVolume must be called on volume '{volume_id}' before "
                "staging on node",
            )
        if staging_target_path in vol.staged:
            self.mounter.stage(vol, staging_target_path)
            return
        if vol.staged:
            raise CsiError(
                Code.FAILED_PRECONDITION, f"volume {volume_id!r} is already staged at {vol.staged}"
            )
        self.mounter.stage(vol, staging_target_path)
        vol.staged.append(staging_target_path)
        vol.node_id = self.opts.node_id
        self._commit()

    def node_unstage(self, volume_id: str, staging_target_path: str) -> None:
        """NodeUnstageVolume; a volume not staged at the path succeeds.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION (still published).
        """
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID missing in request")
        if not staging_target_path:
            raise CsiError(Code.INVALID_ARGUMENT, "Staging target path missing in request")
        if volume_id not in self.data.volumes and self.mounter.release(staging_target_path):
            return
        vol = self._volume(volume_id)
        if staging_target_path not in vol.staged:
            return
        if vol.published:
            raise CsiError(
                Code.FAILED_PRECONDITION,
                f"volume {volume_id!r} is still published at {sorted(vol.published)}",
            )
        self.mounter.unstage(vol, staging_target_path)
        vol.staged.remove(staging_target_path)
        self._commit()

    def node_publish(
        self,
        volume_id: str,
        target_path: str,
        volcap: VolumeCap | None,
        *,
        staging_target_path: str = "",
        readonly: bool = False,
        volume_context: dict[str, str] | None = None,
    ) -> None:
        """NodePublishVolume: records the publication and creates the target path.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS (published at the target with
                another readonly flag), FAILED_PRECONDITION (not staged, or a
                SINGLE_NODE_SINGLE_WRITER volume published elsewhere).
        """
        if volcap is None:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume capability missing in request")
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID missing in request")
        if not target_path:
            raise CsiError(Code.INVALID_ARGUMENT, "Target path missing in request")
        access_type = access_type_of([volcap])
        ephemeral = (volume_context or {}).get(EPHEMERAL_KEY) == "true"
        if ephemeral and volume_id not in self.data.volumes:
            self._create_ephemeral(volume_id)
        vol = self._volume(volume_id)
        if target_path in vol.published:
            if vol.published[target_path] != readonly:
                raise CsiError(
                    Code.ALREADY_EXISTS,
                    f"volume {volume_id!r} is published at {target_path} with another "
                    "readonly flag",
                )
            self.mounter.publish(vol, staging_target_path, target_path, readonly)
            return
        if volcap.mode == SINGLE_NODE_SINGLE_WRITER and vol.published:
            raise CsiError(
                Code.FAILED_PRECONDITION,
                "volume uses SINGLE_NODE_SINGLE_WRITER access mode and is already mounted at "
                "a different target path",
            )
        if not vol.ephemeral and self.caps.has_node("STAGE_UNSTAGE_VOLUME"):
            if not staging_target_path:
                raise CsiError(Code.FAILED_PRECONDITION, "staging target path missing in request")
            if not vol.staged:
                raise CsiError(
                    Code.FAILED_PRECONDITION,
                    f"volume {volume_id!r} must be staged before publishing",
                )
            if staging_target_path not in vol.staged:
                raise CsiError(
                    Code.INVALID_ARGUMENT,
                    f"volume {volume_id!r} was staged at {vol.staged}, not {staging_target_path!r}",
                )
        if access_type != vol.access_type:
            raise CsiError(
                Code.INVALID_ARGUMENT,
                f"cannot publish a {vol.access_type} volume as a {access_type} volume",
            )
        self.mounter.publish(vol, staging_target_path, target_path, readonly)
        vol.published[target_path] = readonly
        vol.published_modes[target_path] = volcap.mode
        vol.node_id = self.opts.node_id
        self._commit()

    def _create_ephemeral(self, volume_id: str) -> None:
        vol = Volume(
            volume_id=volume_id,
            name=f"ephemeral-{volume_id}",
            capacity_bytes=EPHEMERAL_SIZE,
            access_type=MOUNT,
            ephemeral=True,
            created_at=self.clock(),
        )
        self.data.volumes[volume_id] = vol

    def node_unpublish(self, volume_id: str, target_path: str) -> None:
        """NodeUnpublishVolume: forgets the publication and removes the target path.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND.
        """
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID missing in request")
        if not target_path:
            raise CsiError(Code.INVALID_ARGUMENT, "Target path missing in request")
        if volume_id not in self.data.volumes and self.mounter.release(target_path):
            return
        vol = self._volume(volume_id)
        if target_path not in vol.published:
            return
        self.mounter.unpublish(vol, target_path)
        del vol.published[target_path]
        vol.published_modes.pop(target_path, None)
        if vol.ephemeral:
            del self.data.volumes[volume_id]
            if self.store is not None:
                self.store.delete_volume(volume_id)
        self._commit()

    def node_volume_stats(self, volume_id: str, volume_path: str) -> tuple[Volume, int, Condition]:
        """NodeGetVolumeStats: ``(volume, used_bytes, condition)``.

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND (volume or path).
        """
        self._require_node("GET_VOLUME_STATS")
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID not provided")
        if not volume_path:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume Path not provided")
        vol = self._volume(volume_id)
        if not os.path.exists(volume_path):
            raise CsiError(Code.NOT_FOUND, f"Could not get file information from {volume_path}")
        used = 0
        if self.store is not None:
            root = self.store.volume_path(volume_id)
            used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        return vol, min(used, vol.capacity_bytes), self.condition(vol)

    def node_expand(
        self, volume_id: str, volume_path: str, required_bytes: int = 0, limit_bytes: int = 0
    ) -> int:
        """NodeExpandVolume: validates and returns the volume's capacity (nothing to resize).

        Raises:
            CsiError: INVALID_ARGUMENT, NOT_FOUND (volume or path), OUT_OF_RANGE,
                UNIMPLEMENTED.
        """
        self._require_node("EXPAND_VOLUME")
        if not volume_id:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume ID not provided")
        vol = self._volume(volume_id)
        if not volume_path:
            raise CsiError(Code.INVALID_ARGUMENT, "Volume path not provided")
        capacity = required_bytes or limit_bytes
        if capacity > self.opts.node_expand_limit():
            raise CsiError(
                Code.OUT_OF_RANGE,
                f"Requested capacity {capacity} exceeds maximum allowed "
                f"{self.opts.node_expand_limit()}",
            )
        if not os.path.exists(volume_path):
            raise CsiError(Code.NOT_FOUND, f"Could not get file information from {volume_path}")
        grown = max(capacity, vol.capacity_bytes)
        self.mounter.expand(vol, grown)
        return grown

    def node_info(self) -> tuple[str, int, dict[str, str]]:
        """NodeGetInfo: ``(node_id, max_volumes_per_node, topology segments)``."""
        limit = self.opts.max_volumes_per_node
        if self.opts.attach_limit > 0:
            limit = self.opts.attach_limit
        elif self.opts.attach_limit == -1:
            limit = random.randint(1, 10)
        segments = {TOPOLOGY_KEY: self.opts.node_id} if self.opts.enable_topology else {}
        return self.opts.node_id, limit, segments
