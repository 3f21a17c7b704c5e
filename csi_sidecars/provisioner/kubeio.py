"""The provisioner's API writes and un-cached reads, with read-your-writes bookkeeping.

* :meth:`KubeIO.update_claim`: a conflict-safe PVC Update (PUT, as the Go RBAC grants ``update``
  and not ``patch``). The first try sends the cached object; on a conflict the PVC is read
  again and the change re-applied.
* Read-your-writes: the objects our writes returned are kept in
  :class:`~csi_sidecars.kube.written.WrittenCache` s (:attr:`KubeIO.claims`,
  :attr:`KubeIO.volumes`) until the informers catch up; a sync that would act on an older
  cached copy waits for the watch event instead (which re-queues the key).
* :meth:`KubeIO.save_volume`: create the PV; ``AlreadyExists`` counts as saved when the existing
  PV was made for the same claim (UID), as Go does (Go does not check the claim).
* :meth:`KubeIO.secret_data`: GET a Secret and decode its data strictly
  (:func:`csi_sidecars.kube.objects.secret_data`; never cached, never logged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from csi_sidecars.kube.objects import name, namespace, secret_data, uid
from csi_sidecars.kube.patch import (
    add_finalizer_patch,
    is_conflict,
    remove_finalizer_patch,
    retry_on_conflict,
)
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import (
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    SECRETS,
    ApiError,
    JsonDict,
    object_key,
)
from csi_sidecars.kube.written import WrittenCache
from csi_sidecars.provisioner.pv import pv_belongs_to_claim
from csi_sidecars.provisioner.secrets import SecretRef

Mutation = Callable[[JsonDict], JsonDict | None]


def api_message(exc: BaseException) -> str:
    """The API server's message of an error (``str(exc)`` for anything else)."""
    if isinstance(exc, ApiError) and exc.message:
        return exc.message
    return str(exc) or type(exc).__name__


class KubeIO:
    """API writes of the provisioner and what the caches must catch up with."""

    def __init__(self, port: KubePort) -> None:
        self.port = port
        #: PVCs our updates returned, by ``namespace/name``, until the PVC cache catches up
        self.claims = WrittenCache()
        #: PVs our creates and patches returned, by name (a new PV before the cache lists it)
        self.volumes = WrittenCache()

    # -- PVCs -------------------------------------------------------------------------------

    async def update_claim(self, pvc: JsonDict, mutate: Mutation, attempts: int = 5) -> JsonDict:
        """Apply ``mutate`` to the PVC and PUT it; re-read and retry on conflicts.

        Args:
            pvc: the PVC as cached (its resourceVersion guards the first PUT).
            mutate: returns the new object, or None when nothing needs to change.
            attempts: PUTs before the conflict is raised.

        Returns:
            The PVC as stored after the update (``pvc`` when nothing changed).

        Raises:
            ApiError: a non-conflict error, NotFound, or conflicts on every attempt.
        """
        current: list[JsonDict] = [pvc]

        async def step() -> JsonDict:
            obj = current[0]
            body = mutate(obj)
            if body is None:
                return obj
            body.setdefault("apiVersion", "v1")
            body.setdefault("kind", "PersistentVolumeClaim")
            try:
                out = await self.port.replace(PERSISTENT_VOLUME_CLAIMS, body, namespace(obj))
            except ApiError as exc:
                if is_conflict(exc):
                    current[0] = await self.port.get(
                        PERSISTENT_VOLUME_CLAIMS, name(obj), namespace(obj)
                    )
                raise
            self.claims.remember(object_key(out), out)
            return out

        return await retry_on_conflict(step, attempts=attempts)

    # -- PVs --------------------------------------------------------------------------------

    async def save_volume(self, pv: JsonDict, pvc: Mapping[str, Any]) -> JsonDict:
        """Create the PV of ``pvc``.

        Raises:
            ApiError: the create failed, or a PV of that name exists for another claim.
        """
        try:
            out = await self.port.create(PERSISTENT_VOLUMES, pv)
        except ApiError as exc:
            if not exc.already_exists:
                raise
            out = await self.port.get(PERSISTENT_VOLUMES, name(pv))
            if not pv_belongs_to_claim(out, pvc):
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'persistentvolumes "{name(pv)}" already exists and is bound to another claim',
                ) from None
        self.volumes.remember(name(pv), out)
        return out

    async def delete_volume_object(self, pv: Mapping[str, Any]) -> JsonDict | None:
        """Delete the PV object (NotFound is fine); returns what the server answered."""
        try:
            return await self.port.delete(PERSISTENT_VOLUMES, name(pv), uid=uid(pv) or None)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    async def set_volume_finalizer(self, pv: JsonDict, finalizer: str, present: bool) -> bool:
        """Add or remove a PV finalizer with a conflict-safe JSON patch (re-read on conflict).

        Removal tests only our entry (``test`` + ``remove`` at its index), so other
        controllers removing their own finalizers meanwhile (kube-controller-manager's
        ``kubernetes.io/pv-protection``) do not make it fail.

        Returns:
            Whether a patch was sent.
        """
        current: list[JsonDict] = [pv]
        sent = [False]

        async def step() -> None:
            obj = current[0]
            ops = (
                add_finalizer_patch(obj, finalizer)
                if present
                else remove_finalizer_patch(obj, finalizer)
            )
            if ops is None:
                return
            try:
                out = await self.port.patch(PERSISTENT_VOLUMES, name(obj), ops, patch_type="json")
                self.volumes.remember(name(out), out)
                sent[0] = True
            except ApiError as exc:
                if exc.not_found:
                    return
                if is_conflict(exc):
                    try:
                        current[0] = await self.port.get(PERSISTENT_VOLUMES, name(obj))
                    except ApiError as get_exc:
                        if get_exc.not_found:
                            return
                        raise
                raise

        await retry_on_conflict(step)
        return sent[0]

    # -- Secrets ----------------------------------------------------------------------------

    async def secret_data(self, ref: SecretRef | None) -> dict[str, str]:
        """The decoded ``data`` of a Secret ({} for no reference).

        Raises:
            LookupError: ``error getting secret <name> in namespace <ns>: <why>`` (Go's text).
            SecretError: a value that is not base64 or not UTF-8; the message names the Secret
                and the key, never a value.
        """
        if ref is None:
            return {}
        try:
            secret = await self.port.get(SECRETS, ref.name, ref.namespace)
        except ApiError as exc:
            raise LookupError(
                f"error getting secret {ref.name} in namespace {ref.namespace}: {api_message(exc)}"
            ) from None
        return secret_data(secret, f"{ref.namespace}/{ref.name}")
