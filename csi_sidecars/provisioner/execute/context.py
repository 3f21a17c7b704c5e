"""What the provisioner's executors share, and the lookups between a plan and its request.

The executors (:mod:`.provision`, :mod:`.cleanup`, :mod:`.volumes`, :mod:`.clone_protection`)
are thin: they read the caches, call the pure side (:mod:`csi_sidecars.provisioner.decide`),
and do what it asks through a :class:`Context`:

* API writes and events are complete actions (:mod:`csi_sidecars.controller.actions`), done by
  the one executor, :attr:`Context.performer`; it also keeps read-your-writes per resource
  (:meth:`Context.written`) until the informers catch up.
* CSI calls of the claim flow go through :meth:`Context.create_volume` /
  :meth:`Context.delete_volume`, each bounded by ``--timeout``; failures come back as a gRPC
  code (None when not a gRPC status) and Go's error text.
* :meth:`Context.build_request` runs :func:`~..decide.request.plan_provision`, then fetches what
  the plan asks for (the clone source PVC from the cache and its PV by GET, the VolumeSnapshot
  and its VolumeSnapshotContent of a restore by GET, topology from the
  CSINode/Node caches or the pin, the provisioner Secret, the VolumeAttributesClass) and builds
  the request; every failure is a :class:`~..decide.states.ProvisionError` with Go's text.

A sync returns the work queue's :data:`~csi_sidecars.kube.workqueue.Result`: :data:`DONE`,
:data:`RETRY` (back-off) or :class:`~csi_sidecars.kube.workqueue.After`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer
from csi_sidecars.csi.codes import GO_DEADLINE, error_code, format_error
from csi_sidecars.csi.messages import csi_pb2, csi_pb2_grpc
from csi_sidecars.kube.objects import Event, JsonDict, SecretError, name, secret_data, spec, uid
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import (
    PERSISTENT_VOLUMES,
    SECRETS,
    VOLUME_ATTRIBUTES_CLASSES,
    ApiError,
    Resource,
)
from csi_sidecars.kube.snapshots import VOLUME_SNAPSHOT_CONTENTS, VOLUME_SNAPSHOTS
from csi_sidecars.kube.workqueue import Result
from csi_sidecars.kube.written import WrittenCache
from csi_sidecars.provisioner.decide.claims import selected_node
from csi_sidecars.provisioner.decide.pv import CLEANUP_ATTEMPTS, build_pv, pv_belongs_to_claim
from csi_sidecars.provisioner.decide.request import (
    ProvisionerOptions,
    ProvisionPlan,
    build_create_request,
    make_volume_name,
    plan_provision,
)
from csi_sidecars.provisioner.decide.secrets import SecretRef
from csi_sidecars.provisioner.decide.snapshots import (
    snapshot_content_name,
    snapshot_content_source,
)
from csi_sidecars.provisioner.decide.sources import (
    clone_content_source,
    mutable_parameters,
    source_error,
)
from csi_sidecars.provisioner.decide.states import (
    ProvisionError,
    ProvisioningState,
    delete_volume_succeeded,
)
from csi_sidecars.provisioner.decide.strings import api_message
from csi_sidecars.provisioner.decide.topology import (
    TopologyPins,
    TopologyRequirement,
    accessibility_requirements,
)
from csi_sidecars.provisioner.execute.caches import Caches
from csi_sidecars.provisioner.journal.intent import pinned_requirement
from csi_sidecars.provisioner.journal.lease import Journal
from csi_sidecars.provisioner.metrics import ProvisionerMetrics

#: The key is finished for now (its back-off is reset).
DONE: Result = True
#: Try the key again with per-key exponential back-off.
RETRY: Result = False

NO_CHANGE = ProvisioningState.NO_CHANGE

R = TypeVar("R")


@dataclass(frozen=True)
class Settings:
    """Flags and start-up facts the executors use (besides :class:`ProvisionerOptions`)."""

    identity: str
    timeout: float = 10.0
    strict_topology: bool = False
    immediate_topology: bool = True
    retry_interval_max: float = 300.0
    controller_publish_readonly: bool = False
    prevent_volume_mode_conversion: bool = True
    additional_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallResult(Generic[R]):
    """The outcome of one CSI call: the response, or the error's code and Go text."""

    response: R | None = None
    code: grpc.StatusCode | None = grpc.StatusCode.OK
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.code == grpc.StatusCode.OK and not self.error


def _failed(exc: BaseException) -> CallResult[Any]:
    return CallResult(None, error_code(exc), format_error(exc))


async def read_secret(port: KubePort, ref: SecretRef | None) -> dict[str, str]:
    """GET a Secret and decode its data strictly ({} for no reference; never cached or logged).

    Raises:
        LookupError: ``error getting secret <name> in namespace <ns>: <why>`` (Go's text).
        SecretError: a value that is not base64 or not UTF-8; the message names the Secret and
            the key, never a value.
    """
    if ref is None:
        return {}
    try:
        secret = await port.get(SECRETS, ref.name, ref.namespace)
    except ApiError as exc:
        raise LookupError(
            f"error getting secret {ref.name} in namespace {ref.namespace}: {api_message(exc)}"
        ) from None
    return secret_data(secret, f"{ref.namespace}/{ref.name}")


@dataclass
class Context:
    """Everything an executor needs; one per provisioner."""

    performer: Performer
    journal: Journal
    caches: Caches
    csi: csi_pb2_grpc.ControllerAsyncStub
    opts: ProvisionerOptions
    settings: Settings
    metrics: ProvisionerMetrics
    pins: TopologyPins = field(default_factory=TopologyPins)
    monotonic: Callable[[], float] = time.monotonic
    #: capacity tracking: told of each created / deleted PV (or None and the class of a
    #: failed attempt) so the capacity of its segments is refreshed at once
    volume_changed: Callable[[Mapping[str, Any] | None, str], None] | None = None

    def changed(self, pv: Mapping[str, Any] | None, storage_class: str) -> None:
        """Tell capacity tracking (when on) that volumes of a segment or class changed."""
        if self.volume_changed is not None:
            self.volume_changed(pv, storage_class)

    @property
    def port(self) -> KubePort:
        """The Kubernetes API (for the un-cached reads)."""
        return self.performer.port

    @property
    def known_names(self) -> set[str]:
        """The driver name and any additional provisioner names."""
        return {self.opts.driver_name, *self.settings.additional_names}

    def pv_saved(self, pv_name: str, pvc: Mapping[str, Any]) -> bool:
        """Whether the PV ``pv_name`` of ``pvc`` is saved (cache, or our own write)."""
        pv = self.caches.volume(pv_name) or self.written(PERSISTENT_VOLUMES).get(pv_name)
        return pv_belongs_to_claim(pv, pvc)

    def claim_provisioned(self, pvc: Mapping[str, Any]) -> bool:
        """Whether the PV with the deterministic name of ``pvc`` is saved."""
        try:
            pv_name = make_volume_name(
                self.opts.volume_name_prefix, uid(pvc), self.opts.volume_name_uuid_length
            )
        except ProvisionError:
            return False
        return self.pv_saved(pv_name, pvc)

    def written(self, resource: Resource) -> WrittenCache:
        """The objects of ``resource`` our writes returned, until the cache shows them."""
        return self.performer.written[resource.plural]

    def event(self, obj: Mapping[str, Any], resource: Resource, event: Event | None) -> None:
        """Record ``event`` on ``obj`` (no-op for None)."""
        recorder = self.performer.recorder
        if event is not None and recorder is not None:
            recorder.event(dict(obj), event.type, event.reason, event.message, resource=resource)

    async def perform(self, plan: a.Plan, key: str = "") -> a.Outcome:
        """Perform a plan of complete actions; its final outcome."""
        return await self.performer.perform(plan, key)

    def build_pv(
        self,
        plan: ProvisionPlan,
        pvc: Mapping[str, Any],
        sc: Mapping[str, Any],
        volume: csi_pb2.Volume,
        capacity_bytes: int,
    ) -> JsonDict:
        """:func:`~..decide.pv.build_pv` with this provisioner's driver, identity and options."""
        return build_pv(
            plan,
            pvc,
            sc,
            volume,
            capacity_bytes,
            driver=self.opts.driver_name,
            identity=self.settings.identity,
            supports_topology=self.opts.supports_topology,
            controller_publish_readonly=self.settings.controller_publish_readonly,
            vac_gate=self.opts.vac_gate,
        )

    # -- CSI ---------------------------------------------------------------------------------

    async def create_volume(
        self, request: csi_pb2.CreateVolumeRequest
    ) -> CallResult[csi_pb2.CreateVolumeResponse]:
        """CreateVolume with ``--timeout``."""
        try:
            resp = await self.csi.CreateVolume(request, timeout=self.settings.timeout)
        except Exception as exc:
            return _failed(exc)
        return CallResult(resp)

    async def delete_volume(
        self, volume_id: str, secrets: Mapping[str, str], timeout: float | None = None
    ) -> CallResult[csi_pb2.DeleteVolumeResponse]:
        """DeleteVolume with ``--timeout`` (or ``timeout``)."""
        request = csi_pb2.DeleteVolumeRequest(volume_id=volume_id, secrets=dict(secrets))
        try:
            resp = await self.csi.DeleteVolume(
                request, timeout=self.settings.timeout if timeout is None else timeout
            )
        except Exception as exc:
            return _failed(exc)
        return CallResult(resp)

    async def delete_created_volume(self, volume_id: str, secrets: Mapping[str, str]) -> str | None:
        """Delete a volume we cannot use: up to 5 DeleteVolume tries within one ``--timeout``.

        Returns:
            None when deleted (NotFound counts), else the last error text.
        """
        deadline = self.monotonic() + self.settings.timeout
        last = GO_DEADLINE
        for _ in range(CLEANUP_ATTEMPTS):
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                break
            result = await self.delete_volume(volume_id, secrets, remaining)
            if delete_volume_succeeded(result.code):
                return None
            last = result.error
        return last

    # -- lookups -----------------------------------------------------------------------------

    async def secret_data(self, ref: SecretRef | None) -> dict[str, str]:
        """:func:`read_secret` through this provisioner's API client."""
        return await read_secret(self.port, ref)

    async def clone_source(
        self, plan: ProvisionPlan, pvc: Mapping[str, Any], sc: Mapping[str, Any]
    ) -> csi_pb2.VolumeContentSource:
        """The content source of a clone (source PVC from the cache, its PV by GET, as Go)."""
        source = plan.data_source
        assert source is not None
        source_pvc = self.caches.claim(f"{source.namespace}/{source.name}")
        source_pv = None
        volume_name = str(spec(source_pvc).get("volumeName") or "") if source_pvc else ""
        if volume_name:
            try:
                source_pv = await self.port.get(PERSISTENT_VOLUMES, volume_name)
            except ApiError as exc:
                if not exc.not_found:
                    raise ProvisionError(
                        f"error getting PV {volume_name} from api server: {api_message(exc)}",
                        NO_CHANGE,
                    ) from None
        return clone_content_source(plan, pvc, sc, source_pvc, source_pv)

    async def snapshot_source(
        self, plan: ProvisionPlan, pvc: Mapping[str, Any], sc: Mapping[str, Any]
    ) -> csi_pb2.VolumeContentSource:
        """The content source of a restore (the VolumeSnapshot and its content by GET, as Go)."""
        source = plan.data_source
        assert source is not None
        try:
            snapshot = await self.port.get(VOLUME_SNAPSHOTS, source.name, source.namespace)
        except ApiError as exc:
            raise source_error(
                source, f"error getting snapshot {source.name} from api server: {api_message(exc)}"
            ) from None
        content_name = snapshot_content_name(source, snapshot)
        try:
            content = await self.port.get(VOLUME_SNAPSHOT_CONTENTS, content_name)
        except ApiError:
            raise source_error(
                source, f"error getting snapshotcontent {content_name} for snapshot {source.name}"
            ) from None
        return snapshot_content_source(
            plan,
            pvc,
            sc,
            snapshot,
            content,
            prevent_volume_mode_conversion=self.settings.prevent_volume_mode_conversion,
        )

    def requirement(
        self, pvc: Mapping[str, Any], sc: Mapping[str, Any]
    ) -> TopologyRequirement | None:
        """The accessibility requirement: the one pinned in the journal record when it may be
        reused, else computed from the caches (and pinned in memory for the retries)."""
        if not self.opts.supports_topology:
            return None
        allowed = sc.get("allowedTopologies")
        strict = self.settings.strict_topology
        pvc_uid = uid(pvc)
        pinned = pinned_requirement(
            self.journal.get(pvc_uid), pvc, allowed_topologies=allowed, strict=strict
        )
        if pinned is not None:
            return pinned
        result, pin = accessibility_requirements(
            driver=self.opts.driver_name,
            pvc_uid=pvc_uid,
            pvc_name=name(pvc),
            allowed_topologies=allowed,
            selected_node=selected_node(pvc),
            strict=strict,
            immediate=self.settings.immediate_topology,
            csinodes=self.caches.csinode_map,
            nodes=self.caches.node_map,
            pin=self.pins.get(pvc_uid),
        )
        self.pins.put(pvc_uid, pin)
        return result

    async def mutable(self, vac_name: str) -> dict[str, str]:
        """``mutable_parameters`` from the VolumeAttributesClass ``vac_name`` (GET, as Go)."""
        try:
            vac = await self.port.get(VOLUME_ATTRIBUTES_CLASSES, vac_name)
        except ApiError as exc:
            raise ProvisionError(api_message(exc), NO_CHANGE) from None
        return mutable_parameters(vac, self.opts.driver_name)

    async def build_request(
        self, pvc: Mapping[str, Any], sc: Mapping[str, Any] | None
    ) -> tuple[ProvisionPlan, csi_pb2.CreateVolumeRequest]:
        """Plan, look up and build the CreateVolumeRequest of ``pvc``.

        Raises:
            IgnoredError: not ours (external populator).
            ProvisionError: with Go's text and state (a Secret that cannot be read or is
                malformed: NoChange, naming the Secret).
        """
        plan = plan_provision(pvc, sc, self.opts)
        assert sc is not None
        content = None
        if plan.clones:
            content = await self.clone_source(plan, pvc, sc)
        elif plan.restores:
            content = await self.snapshot_source(plan, pvc, sc)
        topology = self.requirement(pvc, sc)
        try:
            secrets_data = await self.secret_data(plan.provisioner_secret)
        except (LookupError, SecretError) as err:
            raise ProvisionError(str(err), NO_CHANGE) from None
        params = await self.mutable(plan.vac_name) if plan.vac_name else None
        request = build_create_request(
            plan,
            secrets_data=secrets_data,
            content_source=content,
            requirement=topology,
            mutable=params,
        )
        return plan, request
