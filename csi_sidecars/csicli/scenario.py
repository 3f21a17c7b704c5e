"""The scenario of ``csi-sidecars csi check``: one volume's life, each step twice.

Identity (info, capabilities, probe), capabilities and NodeGetInfo, then, as far as the driver's
capabilities allow: CreateVolume, ValidateVolumeCapabilities, ControllerGetVolume, ListVolumes
(read only), ControllerPublishVolume, NodeStageVolume, NodePublishVolume, NodeGetVolumeStats,
NodeUnpublishVolume, NodeUnstageVolume, ControllerUnpublishVolume, CreateSnapshot,
ListSnapshots, DeleteSnapshot and DeleteVolume. Every state-changing call is repeated to check
idempotency (the same volume and snapshot IDs, the same publish context, OK on a second undo).
Objects get names unique to the run (``csi-check-<random>``); staging and target paths live in
a work directory the check creates and removes without ever deleting anything recursively.
"""

from __future__ import annotations

import contextlib
import os
import secrets as random
import tempfile
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csicli.lifecycle import MAYBE_DONE, PASS, WARN, Abort, Steps
from csi_sidecars.csicli.scenario_steps import node_steps, snapshot_steps

pb: Any = csi_pb2  # generated classes are dynamic; keep mypy out of them

LIST_PAGE = 100
LIST_PAGES = 50


@dataclass
class CheckOptions:
    """What ``check`` creates and with what."""

    size: int = 1 << 30
    capabilities: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] | None = None
    workdir: str | None = None
    node_id: str | None = None
    snapshots: bool = True
    name: str = ""

    def volume_name(self) -> str:
        """The name of the check's volume (random unless given)."""
        if not self.name:
            self.name = f"csi-check-{random.token_hex(4)}"
        return self.name


def _caps(opts: CheckOptions) -> list[Any]:
    return [json_format.ParseDict(c, pb.VolumeCapability()) for c in opts.capabilities]


def _names(values: Any, enum: Any) -> set[str]:
    return {enum.Name(v) for v in values}


class Scenario:
    """One run of the check (see the module docstring)."""

    def __init__(self, steps: Steps, opts: CheckOptions) -> None:
        """Run with ``steps`` (connections, results, undo stack) and ``opts``."""
        self.s = steps
        self.opts = opts
        self.secrets = dict(opts.secrets or {})
        self.created_workdir = False
        self.workdir = ""
        self.ctrl_caps: set[str] = set()
        self.node_caps: set[str] = set()

    async def run(self) -> None:
        """The whole check; clean-up and work directory removal always run."""
        try:
            await self._identity()
            node_id, topology = await self._node_info()
            if "CREATE_DELETE_VOLUME" not in self.ctrl_caps:
                self.s.skip("create volume", "CreateVolume", "no CREATE_DELETE_VOLUME capability")
                return
            self._make_workdir()
            await self._volume(node_id, topology)
        except Abort:
            pass
        finally:
            await self.s.cleanup()
            self._remove_workdir()

    async def _identity(self) -> None:
        s = self.s
        await s.run("plugin info", "identity", "GetPluginInfo", pb.GetPluginInfoRequest())
        caps = await s.run(
            "plugin capabilities",
            "identity",
            "GetPluginCapabilities",
            pb.GetPluginCapabilitiesRequest(),
        )
        s.plugin_caps = {
            pb.PluginCapability.Service.Type.Name(c.service.type)
            for c in caps.capabilities
            if c.HasField("service")
        }

        def ready(reply: Any) -> str | None:
            if reply.HasField("ready") and not reply.ready.value:
                return "the driver is not ready"
            return None

        await s.run("probe", "identity", "Probe", pb.ProbeRequest(), verify=ready)
        if "CONTROLLER_SERVICE" in s.plugin_caps:
            reply = await s.run(
                "controller capabilities",
                "controller",
                "ControllerGetCapabilities",
                pb.ControllerGetCapabilitiesRequest(),
            )
            rpc = pb.ControllerServiceCapability.RPC.Type
            self.ctrl_caps = _names((c.rpc.type for c in reply.capabilities), rpc)
        else:
            s.skip(
                "controller capabilities",
                "ControllerGetCapabilities",
                "no CONTROLLER_SERVICE plugin capability",
            )
        reply = await s.run(
            "node capabilities", "node", "NodeGetCapabilities", pb.NodeGetCapabilitiesRequest()
        )
        self.node_caps = _names(
            (c.rpc.type for c in reply.capabilities), pb.NodeServiceCapability.RPC.Type
        )

    async def _node_info(self) -> tuple[str, dict[str, str]]:
        reply = await self.s.run("node info", "node", "NodeGetInfo", pb.NodeGetInfoRequest())
        topology = dict(reply.accessible_topology.segments)
        return self.opts.node_id or reply.node_id, topology

    def _make_workdir(self) -> None:
        if self.opts.workdir:
            self.workdir = os.path.abspath(self.opts.workdir)
            os.makedirs(self.workdir, exist_ok=True)
        else:
            self.workdir = tempfile.mkdtemp(prefix="csi-check-")
            self.created_workdir = True

    def _remove_workdir(self) -> None:
        if not self.workdir:
            return
        left = []
        for name in ("target", "staging"):
            path = os.path.join(self.workdir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.rmdir(path)  # never recursive: a mount may still be there
            if os.path.lexists(path):
                left.append(path)
        if self.created_workdir:
            with contextlib.suppress(OSError):
                os.rmdir(self.workdir)
        if left:
            self.s.record("remove work directory", "-", WARN, detail=f"left {', '.join(left)}")

    async def _volume(self, node_id: str, topology: dict[str, str]) -> None:
        s, opts = self.s, self.opts
        caps = _caps(opts)
        req = pb.CreateVolumeRequest(
            name=opts.volume_name(),
            capacity_range=pb.CapacityRange(required_bytes=opts.size),
            volume_capabilities=caps,
            parameters=opts.parameters,
            secrets=self.secrets,
        )
        if topology and "VOLUME_ACCESSIBILITY_CONSTRAINTS" in (s.plugin_caps or set()):
            req.accessibility_requirements.requisite.add().segments.update(topology)
            req.accessibility_requirements.preferred.add().segments.update(topology)
        try:
            vol = (await s.run("create volume", "controller", "CreateVolume", req)).volume
        except Abort as abort:
            if abort.code in MAYBE_DONE:
                s.push_undo(
                    "volume",
                    "delete volume (created by a failed call?)",
                    "DeleteVolume",
                    lambda: self._recover_volume(req),
                )
            raise
        s.undo_request(
            "volume",
            "delete volume",
            "controller",
            "DeleteVolume",
            pb.DeleteVolumeRequest(volume_id=vol.volume_id, secrets=self.secrets),
        )

        def same_volume(reply: Any) -> str | None:
            if reply.volume.volume_id != vol.volume_id:
                return (
                    f"idempotency: volume_id {reply.volume.volume_id!r} differs from the "
                    f"first reply's {vol.volume_id!r}"
                )
            return None

        await s.run("create volume again", "controller", "CreateVolume", req, same_volume)
        ctx = dict(vol.volume_context)
        await self._inspect(vol, caps, ctx)
        publish_context = await self._controller_publish(vol.volume_id, node_id, caps[0], ctx)
        await node_steps(
            s,
            self.workdir,
            self.node_caps,
            vol.volume_id,
            caps[0],
            ctx,
            publish_context,
            self.secrets,
        )
        if "PUBLISH_UNPUBLISH_VOLUME" in self.ctrl_caps:
            for again in ("", " again"):
                await s.run(
                    f"controller unpublish{again}",
                    "controller",
                    "ControllerUnpublishVolume",
                    pb.ControllerUnpublishVolumeRequest(
                        volume_id=vol.volume_id, node_id=node_id, secrets=self.secrets
                    ),
                )
                s.done("controller-publish")
        if self.opts.snapshots:
            await snapshot_steps(s, opts.volume_name(), self.ctrl_caps, vol.volume_id, self.secrets)
        else:
            s.skip("create snapshot", "CreateSnapshot", "--no-snapshots")
        for again in ("", " again"):
            await s.run(
                f"delete volume{again}",
                "controller",
                "DeleteVolume",
                pb.DeleteVolumeRequest(volume_id=vol.volume_id, secrets=self.secrets),
            )
            s.done("volume")

    async def _recover_volume(self, req: Any) -> None:
        """After a create that may have happened: ask again by name, then delete what exists."""
        reply = await self.s.call("controller", "CreateVolume", req)
        await self.s.call(
            "controller",
            "DeleteVolume",
            pb.DeleteVolumeRequest(volume_id=reply.volume.volume_id, secrets=self.secrets),
        )

    async def _inspect(self, vol: Any, caps: list[Any], ctx: dict[str, str]) -> None:
        s = self.s

        def confirmed(reply: Any) -> str | None:
            return None if reply.HasField("confirmed") else f"not confirmed: {reply.message!r}"

        await s.run(
            "validate capabilities",
            "controller",
            "ValidateVolumeCapabilities",
            pb.ValidateVolumeCapabilitiesRequest(
                volume_id=vol.volume_id,
                volume_capabilities=caps,
                volume_context=ctx,
                parameters=self.opts.parameters,
                secrets=self.secrets,
            ),
            confirmed,
            fatal=False,
        )
        if "GET_VOLUME" in self.ctrl_caps:
            await s.run(
                "get volume",
                "controller",
                "ControllerGetVolume",
                pb.ControllerGetVolumeRequest(volume_id=vol.volume_id),
                fatal=False,
            )
        else:
            s.skip("get volume", "ControllerGetVolume", "no GET_VOLUME capability")
        if "LIST_VOLUMES" in self.ctrl_caps:
            await self._find_in_list(vol.volume_id)
        else:
            s.skip("list volumes", "ListVolumes", "no LIST_VOLUMES capability")

    async def _find_in_list(self, volume_id: str) -> None:
        """Page through ListVolumes (read only) until the created volume shows up."""
        token = ""
        for _ in range(LIST_PAGES):
            req = pb.ListVolumesRequest(max_entries=LIST_PAGE, starting_token=token)

            def listed(reply: Any) -> str | None:
                if reply.next_token or volume_id in {e.volume.volume_id for e in reply.entries}:
                    return None
                return f"the created volume {volume_id!r} is not listed"

            reply = await self.s.run(
                "list volumes", "controller", "ListVolumes", req, listed, fatal=False
            )
            if reply is None or not reply.next_token:
                return
            if volume_id in {e.volume.volume_id for e in reply.entries}:
                return
            if self.s.results[-1].result == PASS:
                self.s.results.pop()  # one row for the whole search
            token = reply.next_token
        self.s.record(
            "list volumes",
            "ListVolumes",
            WARN,
            detail=f"not in the first {LIST_PAGES * LIST_PAGE} entries; stopped looking",
        )

    async def _controller_publish(
        self, volume_id: str, node_id: str, cap: Any, ctx: dict[str, str]
    ) -> dict[str, str]:
        s = self.s
        if "PUBLISH_UNPUBLISH_VOLUME" not in self.ctrl_caps:
            s.skip(
                "controller publish",
                "ControllerPublishVolume",
                "no PUBLISH_UNPUBLISH_VOLUME capability",
            )
            return {}
        req = pb.ControllerPublishVolumeRequest(
            volume_id=volume_id,
            node_id=node_id,
            volume_capability=cap,
            volume_context=ctx,
            secrets=self.secrets,
        )
        first = await s.run("controller publish", "controller", "ControllerPublishVolume", req)
        s.undo_request(
            "controller-publish",
            "controller unpublish",
            "controller",
            "ControllerUnpublishVolume",
            pb.ControllerUnpublishVolumeRequest(
                volume_id=volume_id, node_id=node_id, secrets=self.secrets
            ),
        )

        def same_context(reply: Any) -> str | None:
            if dict(reply.publish_context) != dict(first.publish_context):
                return "idempotency: publish_context differs from the first reply's"
            return None

        await s.run(
            "controller publish again", "controller", "ControllerPublishVolume", req, same_context
        )
        return dict(first.publish_context)
