"""The attacher's start-up: the ``setup`` given to :func:`csi_sidecars.controller.run_controller`.

It builds the :class:`~csi_sidecars.attacher.config.AttacherConfig` from ``ctx.driver`` and the
flags, logs which handler the driver's capabilities select, declares the
:class:`~csi_sidecars.attacher.controller.AttacherController` and, for the CSI handler, asks the
API server (SelfSubjectAccessReview, while the caches sync) whether the attacher may create
events and list pods: with only the Go attacher's RBAC it records no events (or none on pods)
instead of failing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from csi_sidecars.attacher.config import AttacherConfig
from csi_sidecars.attacher.controller import AttacherController
from csi_sidecars.attacher.flags import AttacherFlags
from csi_sidecars.controller import ControllerContext, Lead
from csi_sidecars.kube.resources import Resource
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("attacher")

SELF_SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", False, "SelfSubjectAccessReview"
)


async def allowed(port: Any, verb: str, resource: str, namespace: str = "") -> bool:
    """Whether we may ``verb`` ``resource`` (core group); True when the review itself fails."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}
        },
    }
    try:
        answer = await port.create(SELF_SUBJECT_ACCESS_REVIEWS, review)
    except Exception as exc:
        if rlog.v(4):
            log.info("Access review failed", verb=verb, resource=resource, error=repr(exc))
        return True
    return bool((answer.get("status") or {}).get("allowed", True))


async def check_event_permissions(port: Any, controller: AttacherController) -> None:
    """With only the Go attacher's RBAC: no events, and no pod lists for them."""
    events_ok, pods_ok = await asyncio.gather(
        allowed(port, "create", "events", "default"), allowed(port, "list", "pods")
    )
    if not events_ok:
        log.info("Not allowed to create events: attach/detach events are not recorded")
        controller.performer.recorder = None
    elif not pods_ok:
        log.info("Not allowed to list pods: events go on VolumeAttachments only")
    if not (events_ok and pods_ok):
        controller.cfg = dataclasses.replace(controller.cfg, pod_events=False)


def make_setup(flags: AttacherFlags) -> Any:
    """The ``setup`` for :func:`~csi_sidecars.controller.run_controller` from parsed flags."""

    async def setup(ctx: ControllerContext) -> Lead:
        cfg = AttacherConfig.create(
            ctx.driver, default_fstype=flags.default_fstype, feature_gates=flags.gates
        )
        if cfg.trivial:
            log.info("Driver cannot ControllerPublish: using the trivial handler")
        else:
            log.info(
                "Using the CSI handler",
                publish_readonly=cfg.publish_readonly,
                single_node_multi_writer=cfg.single_node_multi_writer,
                list_volumes_published_nodes=cfg.list_published_nodes,
            )
        controller = AttacherController(ctx, cfg, flags)
        if not cfg.trivial:
            # Asked while the caches sync (both reviews at once); the workers start after.
            controller.before_workers = asyncio.ensure_future(
                check_event_permissions(ctx.events_port, controller)
            )
        return controller.run

    return setup
