"""Start-up steps of the provisioner that read the environment and the cluster, as Go's
``main`` does before leading: capacity tracking's namespace, owner and client; the node of a
node deployment.

Each failure is a :class:`~csi_sidecars.controller.StartupError` with Go's message (the role
exits 1, as ``klog.Fatal`` would).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from csi_sidecars.controller import ControllerContext, StartupError
from csi_sidecars.csi.codes import format_error
from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.client import KubeClient, user_agent
from csi_sidecars.kube.port import KubePort
from csi_sidecars.provisioner.decide import capacity as cap
from csi_sidecars.provisioner.execute.capacity import CapacitySettings
from csi_sidecars.provisioner.execute.nodes import NodeSettings
from csi_sidecars.provisioner.execute.owner import OwnerError, lookup_owner
from csi_sidecars.provisioner.flags import ROLE, ProvisionerConfig
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")


@dataclass
class CapacityStart:
    """What capacity tracking needs from start-up: its settings and the client it writes with."""

    settings: CapacitySettings
    port: KubePort


async def capacity_start(
    ctx: ControllerContext,
    config: ProvisionerConfig,
    env: Mapping[str, str],
    *,
    port: KubePort | None = None,
    node: str = "",
    fixed_segment: cap.Segment | None = None,
) -> CapacityStart:
    """Read ``NAMESPACE`` (and ``POD_NAME``), find the owner, make the capacity client.

    Args:
        ctx: the runner's context.
        config: the flags.
        env: the environment.
        port: the client to use instead of a new one (tests, which inject the API).
        node: ``NODE_NAME`` in node deployment (the managed-by value names it).
        fixed_segment: node deployment: the driver's own segment.

    Raises:
        StartupError: no ``NAMESPACE``, no ``POD_NAME`` for an owner level >= 0, or the owner
            cannot be determined.
    """
    namespace = env.get("NAMESPACE", "")
    if not namespace:
        raise StartupError("need NAMESPACE env variable for CSIStorageCapacity objects")
    if port is None:
        client = KubeClient(
            await config.kube.client_config(),
            qps=config.kube_api_capacity_qps,
            burst=config.kube_api_capacity_burst,
            agent=user_agent(ROLE) + " capacity",
        )

        async def close() -> None:
            with contextlib.suppress(Exception):
                await client.close()

        ctx.on_shutdown(close)
        port = client
    owner = None
    if config.capacity_ownerref_level >= 0:
        pod = env.get("POD_NAME", "")
        if not pod:
            raise StartupError("need POD_NAME env variable to determine CSIStorageCapacity owner")
        try:
            owner = await lookup_owner(port, namespace, pod, config.capacity_ownerref_level)
        except OwnerError as err:
            raise StartupError(str(err)) from None
        log.info(
            f"using {owner['apiVersion']}/{owner['kind']} {owner['name']} as owner of "
            "CSIStorageCapacity objects"
        )
    settings = CapacitySettings(
        driver=ctx.driver.name,
        namespace=namespace,
        managed_by=cap.managed_by_id(node),
        owner=owner,
        immediate_binding=config.capacity_for_immediate_binding,
        poll_interval=config.capacity_poll_interval,
        workers=config.capacity_threads,
        fixed_segment=fixed_segment,
    )
    return CapacityStart(settings, port)


async def node_start(
    ctx: ControllerContext, config: ProvisionerConfig, env: Mapping[str, str]
) -> NodeSettings:
    """Node deployment: ``NODE_NAME`` and the driver's ``NodeGetInfo``.

    Raises:
        StartupError: no ``NODE_NAME``, or NodeGetInfo failed.
    """
    node = env.get("NODE_NAME", "")
    if not node:
        raise StartupError(
            "The NODE_NAME environment variable must be set when using --enable-node-deployment."
        )
    try:
        info = await ctx.conn.node.NodeGetInfo(
            csi_pb2.NodeGetInfoRequest(), timeout=config.csi.timeout
        )
    except Exception as exc:
        raise StartupError(
            f"Failed to get node info from CSI driver: {format_error(exc)}"
        ) from None
    segments = (
        dict(info.accessible_topology.segments) if info.HasField("accessible_topology") else None
    )
    log.info("using local topology", node=node, node_id=info.node_id, segments=segments)
    return NodeSettings(
        name=node,
        node_id=info.node_id,
        segments=segments,
        immediate_binding=config.node_deployment_immediate_binding,
        base_delay=config.node_deployment_base_delay,
        max_delay=config.node_deployment_max_delay,
    )
