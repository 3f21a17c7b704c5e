"""The owner of the CSIStorageCapacity objects (``--capacity-ownerref-level``), as Go finds it.

Starting from this pod (``POD_NAME`` in ``NAMESPACE``), level 0 is the pod itself, level 1 its
controlling owner (a ReplicaSet, StatefulSet or DaemonSet), level 2 that one's controlling owner
(a Deployment), and so on: every level but the last is read by GET (the Go RBAC grants ``get``
on pods and replicasets in the provisioner's namespace). The objects are then garbage-collected
with the provisioner's workload.
"""

from __future__ import annotations

from csi_sidecars.kube.objects import JsonDict
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import PODS, ApiError, Resource
from csi_sidecars.provisioner.decide.capacity import controller_of, owner_reference
from csi_sidecars.provisioner.decide.strings import api_message


class OwnerError(Exception):
    """The owner cannot be determined; the message says why (start-up fails, as in Go)."""


def resource_of(api_version: str, kind: str) -> Resource:
    """The namespaced resource of an owner reference (``apps/v1`` ``ReplicaSet`` ->
    ``replicasets``; plural by Kubernetes' rule for these kinds)."""
    group, _, version = api_version.rpartition("/")
    plural = kind.lower() + ("es" if kind.lower().endswith("s") else "s")
    return Resource(group, version, plural, True, kind)


async def lookup_owner(port: KubePort, namespace: str, pod_name: str, levels: int) -> JsonDict:
    """The owner reference ``levels`` steps up from the pod.

    Raises:
        OwnerError: an object cannot be read, or has no controlling owner before the level.
    """
    resource, obj_name, api_version, kind = PODS, pod_name, "v1", "Pod"
    while True:
        try:
            obj = await port.get(resource, obj_name, namespace)
        except ApiError as exc:
            raise OwnerError(f"look up owner(s) of pod: get object: {api_message(exc)}") from None
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind)
        if levels == 0:
            return owner_reference(obj)
        ref = controller_of(obj)
        if ref is None:
            raise OwnerError(
                f"look up owner(s) of pod: {api_version}/{kind} {obj_name!r} in namespace "
                f"{namespace!r} has no controlling owner, cannot unwind the ownership further"
            )
        if levels == 1:
            return ref
        api_version, kind, obj_name = ref["apiVersion"], ref["kind"], ref["name"]
        resource = resource_of(api_version, kind)
        levels -= 1
