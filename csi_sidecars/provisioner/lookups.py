"""The lookups between planning and building a CreateVolumeRequest (the executor's I/O half).

:func:`build_request` runs :func:`~.request.plan_provision`, then fetches what the plan asks for
(clone source PVC from the cache and its PV by GET, topology from the CSINode/Node caches or the
pin, the provisioner Secret, the VolumeAttributesClass) and assembles the request. Every failure
is a :class:`~.states.ProvisionError` with Go's text and state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube.objects import SecretError, name, spec, uid
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, VOLUME_ATTRIBUTES_CLASSES, ApiError
from csi_sidecars.provisioner import intent
from csi_sidecars.provisioner.claims import selected_node
from csi_sidecars.provisioner.context import Context
from csi_sidecars.provisioner.kubeio import api_message
from csi_sidecars.provisioner.request import ProvisionPlan, build_create_request, plan_provision
from csi_sidecars.provisioner.sources import clone_content_source, mutable_parameters
from csi_sidecars.provisioner.states import ProvisionError, ProvisioningState
from csi_sidecars.provisioner.topology import TopologyRequirement, accessibility_requirements

NO_CHANGE = ProvisioningState.NO_CHANGE


async def clone_source(
    ctx: Context, plan: ProvisionPlan, pvc: Mapping[str, Any], sc: Mapping[str, Any]
) -> csi_pb2.VolumeContentSource:
    """The content source of a clone (source PVC from the cache, its PV by GET, as Go)."""
    source = plan.data_source
    assert source is not None
    source_pvc = ctx.caches.claim(f"{source.namespace}/{source.name}")
    source_pv = None
    volume_name = str(spec(source_pvc).get("volumeName") or "") if source_pvc else ""
    if volume_name:
        try:
            source_pv = await ctx.io.port.get(PERSISTENT_VOLUMES, volume_name)
        except ApiError as exc:
            if not exc.not_found:
                raise ProvisionError(
                    f"error getting PV {volume_name} from api server: {api_message(exc)}",
                    NO_CHANGE,
                ) from None
    return clone_content_source(plan, pvc, sc, source_pvc, source_pv)


def requirement(
    ctx: Context, pvc: Mapping[str, Any], sc: Mapping[str, Any]
) -> TopologyRequirement | None:
    """The accessibility requirement: the one pinned in the journal record when it may be
    reused, else computed from the caches (and pinned in memory for the retries)."""
    if not ctx.opts.supports_topology:
        return None
    allowed = sc.get("allowedTopologies")
    strict = ctx.settings.strict_topology
    pinned = intent.pinned_requirement(
        ctx.journal.get(uid(pvc)), pvc, allowed_topologies=allowed, strict=strict
    )
    if pinned is not None:
        return pinned
    pvc_uid = uid(pvc)
    result, pin = accessibility_requirements(
        driver=ctx.opts.driver_name,
        pvc_uid=pvc_uid,
        pvc_name=name(pvc),
        allowed_topologies=allowed,
        selected_node=selected_node(pvc),
        strict=strict,
        immediate=ctx.settings.immediate_topology,
        csinodes=ctx.caches.csinode_map,
        nodes=ctx.caches.node_map,
        pin=ctx.pins.get(pvc_uid),
    )
    ctx.pins.put(pvc_uid, pin)
    return result


async def mutable(ctx: Context, vac_name: str) -> dict[str, str]:
    """``mutable_parameters`` from the VolumeAttributesClass ``vac_name`` (GET, as Go)."""
    try:
        vac = await ctx.io.port.get(VOLUME_ATTRIBUTES_CLASSES, vac_name)
    except ApiError as exc:
        raise ProvisionError(api_message(exc), NO_CHANGE) from None
    return mutable_parameters(vac, ctx.opts.driver_name)


async def build_request(
    ctx: Context, pvc: Mapping[str, Any], sc: Mapping[str, Any] | None
) -> tuple[ProvisionPlan, csi_pb2.CreateVolumeRequest]:
    """Plan, look up and build the CreateVolumeRequest of ``pvc``.

    Raises:
        IgnoredError: not ours (external populator).
        ProvisionError: with Go's text and state.
    """
    plan = plan_provision(pvc, sc, ctx.opts)
    assert sc is not None
    content = await clone_source(ctx, plan, pvc, sc) if plan.data_source is not None else None
    topology = requirement(ctx, pvc, sc)
    try:
        secrets_data = await ctx.io.secret_data(plan.provisioner_secret)
    except (LookupError, SecretError) as err:
        raise ProvisionError(str(err), NO_CHANGE) from None
    params = await mutable(ctx, plan.vac_name) if plan.vac_name else None
    request = build_create_request(
        plan,
        secrets_data=secrets_data,
        content_source=content,
        requirement=topology,
        mutable=params,
    )
    return plan, request
