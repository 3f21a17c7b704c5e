"""The shared core of the driver's state machine: data, options, persistence and small helpers.

:class:`StateCore` is the base of :class:`csi_sidecars.playground.driver.state.DriverState`; the
volume, snapshot and node operations are split over mixins that all build on it. Everything here
is synchronous and free of gRPC messages: errors are :class:`CsiError` with a status code.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from csi_sidecars.playground.driver import caps as capsmod
from csi_sidecars.playground.driver.model import (
    BLOCK,
    MOUNT,
    Condition,
    CsiError,
    StateData,
    Volume,
)
from csi_sidecars.playground.driver.mounter import make_mounter
from csi_sidecars.playground.driver.options import TOPOLOGY_KEY, DriverOptions
from csi_sidecars.playground.driver.store import StateStore

Code = grpc.StatusCode

LIST_TOKEN_PREFIX = "from:"


@dataclass(frozen=True)
class VolumeCap:
    """A VolumeCapability, reduced to what the driver checks.

    ``access_type`` is ``"mount"``, ``"block"`` or ``""`` (neither was set).
    """

    access_type: str = MOUNT
    mode: int = 1
    fs_type: str = ""
    mount_flags: tuple[str, ...] = field(default_factory=tuple)


def access_type_of(volcaps: list[VolumeCap]) -> str:
    """The access type a list of capabilities asks for.

    Raises:
        CsiError: INVALID_ARGUMENT when a capability has no access type or both kinds are asked.
    """
    kinds = {c.access_type for c in volcaps}
    if "" in kinds:
        raise CsiError(Code.INVALID_ARGUMENT, "volume capability has no access type (mount/block)")
    if kinds == {MOUNT, BLOCK}:
        raise CsiError(Code.INVALID_ARGUMENT, "cannot have both block and mount access type")
    return BLOCK if BLOCK in kinds else MOUNT


def page(keys: list[str], max_entries: int, token: str) -> tuple[list[str], str]:
    """One page of sorted ``keys``, and the token of the next page ("" when it is the last).

    Tokens name the first key of the next page, so entries deleted between two calls do not
    shift later pages.

    Raises:
        CsiError: INVALID_ARGUMENT for a negative ``max_entries``, ABORTED for a token this
            driver did not hand out.
    """
    if max_entries < 0:
        raise CsiError(Code.INVALID_ARGUMENT, "max_entries must not be negative")
    start = 0
    if token:
        if not token.startswith(LIST_TOKEN_PREFIX):
            raise CsiError(Code.ABORTED, f"invalid starting_token {token!r}")
        first = token[len(LIST_TOKEN_PREFIX) :]
        start = next((i for i, k in enumerate(keys) if k >= first), len(keys))
    end = len(keys) if max_entries == 0 else min(len(keys), start + max_entries)
    next_token = LIST_TOKEN_PREFIX + keys[end] if end < len(keys) else ""
    return keys[start:end], next_token


class StateCore:
    """Data, configuration and persistence shared by every group of operations."""

    def __init__(
        self,
        opts: DriverOptions,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.opts = opts
        self.caps = capsmod.compute(opts)
        self.store = store
        self.clock = clock
        self.data = store.load() if store is not None else StateData()
        self.mounter = make_mounter(opts.mount_volumes, store)

    # -- helpers -------------------------------------------------------------------------------

    def _commit(self) -> None:
        """Persist the state after a change."""
        if self.store is None:
            return
        try:
            self.store.save(self.data)
        except OSError as err:
            raise CsiError(Code.INTERNAL, f"persisting driver state: {err}") from err

    def _new_id(self) -> str:
        return str(uuid.uuid4())

    def _volume(self, volume_id: str) -> Volume:
        vol = self.data.volumes.get(volume_id)
        if vol is None:
            raise CsiError(Code.NOT_FOUND, f"volume id {volume_id} does not exist")
        return vol

    def _require_controller(self, capability: str) -> None:
        if not self.caps.has_controller(capability):
            raise CsiError(Code.UNIMPLEMENTED, f"capability {capability} is not supported")

    def _require_node(self, capability: str) -> None:
        if not self.caps.has_node(capability):
            raise CsiError(Code.UNIMPLEMENTED, f"capability {capability} is not supported")

    def _check_mutable(self, params: dict[str, str]) -> None:
        accepted = self.opts.accepted_mutable_parameter_names
        if not accepted:
            return
        unsupported = sorted(k for k in params if k not in accepted)
        if unsupported:
            raise CsiError(Code.INVALID_ARGUMENT, f"invalid parameters: {unsupported}")

    def node_known(self, node_id: str) -> bool:
        """Whether ``node_id`` is this driver's node, or one of ``known_nodes`` (``*``: any)."""
        known = self.opts.known_nodes
        return node_id == self.opts.node_id or node_id in known or "*" in known

    def _used(self, kind: str, node: str | None = None) -> int:
        """Bytes of volumes of ``kind`` (on ``node`` when given)."""
        return sum(
            v.capacity_bytes
            for v in self.data.volumes.values()
            if v.kind == kind and (node is None or self.volume_node(v) == node)
        )

    def volume_node(self, vol: Volume) -> str:
        """The node a volume lives on: its topology's node, else this driver's node."""
        for segment in vol.topology:
            if segment.get(TOPOLOGY_KEY):
                return segment[TOPOLOGY_KEY]
        return self.opts.node_id

    def node_total(self, kind: str, node: str) -> int | None:
        """The capacity of ``kind`` on ``node`` (``--node-capacity``, else ``--capacity``);
        None when capacity tracking is off or the kind is unknown there."""
        per_node = self.opts.node_capacity.get(node)
        if per_node is not None and kind in per_node:
            return per_node[kind]
        return self.opts.capacity.get(kind)

    @property
    def tracks_capacity(self) -> bool:
        """Whether ``--capacity`` or ``--node-capacity`` is set."""
        return bool(self.opts.capacity or self.opts.node_capacity)

    def kinds(self, node: str) -> list[str]:
        """The kinds with a capacity on ``node``, in flag order."""
        return list(dict.fromkeys([*self.opts.capacity, *self.opts.node_capacity.get(node, {})]))

    def has_room(self, kind: str, node: str, size: int) -> bool:
        """Whether ``size`` more bytes of ``kind`` fit on ``node``."""
        total = self.node_total(kind, node)
        return total is not None and self._used(kind, node) + size <= total

    # -- inspection helpers for tests -------------------------------------------------------------

    def volume_by_name(self, name: str) -> Volume | None:
        """The volume called ``name``, if any."""
        return next((v for v in self.data.volumes.values() if v.name == name), None)

    def condition(self, vol: Volume) -> Condition:
        """The health of ``vol``: abnormal when its directory vanished or a test said so."""
        if (
            self.store is not None
            and not vol.ephemeral
            and not self.store.volume_exists(vol.volume_id)
        ):
            return Condition(True, f"volume path of {vol.volume_id} does not exist")
        return vol.condition

    def set_condition(self, volume_id: str, abnormal: bool, message: str = "") -> None:
        """Script the VolumeCondition that ListVolumes, ControllerGetVolume and stats report.

        Raises:
            CsiError: NOT_FOUND for an unknown volume.
        """
        self._volume(volume_id).condition = Condition(abnormal, message)
        self._commit()

    def published_nodes(self, vol: Volume) -> list[str]:
        """The nodes ``vol`` is published to: controller attachments, plus this node when the
        volume is staged or published here."""
        nodes = set(vol.attached)
        if vol.staged or vol.published:
            nodes.add(vol.node_id or self.opts.node_id)
        return sorted(nodes)
