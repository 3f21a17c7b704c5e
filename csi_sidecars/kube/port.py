"""The narrow async Kubernetes port every role talks through.

Roles never see kubernetes_asyncio. They call :class:`KubePort` with a
:class:`~csi_sidecars.kube.resources.Resource` and plain dicts. Two implementations exist:
:class:`csi_sidecars.kube.client.KubeClient` (the real API server over HTTP) and
:class:`csi_sidecars.kube.fake.FakeKube` (in memory, for component tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from csi_sidecars.kube.resources import JsonDict, Resource

if TYPE_CHECKING:
    from csi_sidecars.kube.decode import PageSplitter

PatchType = Literal["merge", "json", "strategic", "apply"]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"


@dataclass(slots=True)
class WatchEvent:
    """One watch event: ``type`` is ADDED, MODIFIED, DELETED or BOOKMARK."""

    type: str
    object: JsonDict


class Decoder(Protocol):
    """Decodes answers straight into slim objects (see :class:`~.decode.SlimDecoder`)."""

    def page(self, raw: bytes) -> JsonDict:
        """A list answer, its items slim."""
        ...

    def event(self, line: bytes) -> JsonDict:
        """One watch line (``{"type", "object"}``), its object slim."""
        ...

    def splitter(self) -> PageSplitter:
        """A splitter that decodes one list answer object by object as it arrives."""
        ...


class KubePort(Protocol):
    """Raw-dict CRUD, patch, apply and watch on any resource."""

    async def get(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JsonDict:
        """Read one object. Raises ApiError (404 when missing)."""
        ...

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        decoder: Decoder | None = None,
        each: Callable[[Any], None] | None = None,
    ) -> JsonDict:
        """One page of a list: ``{"items": [...], "metadata": {"resourceVersion", "continue"}}``.

        With ``decoder`` the items may hold only the fields the decoder keeps. With ``each``
        the items are handed to it one by one, in order (by the real client while the answer
        arrives), and the page is returned with no items.
        """
        ...

    def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
        decoder: Decoder | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Stream events after ``resource_version``; ends when the server closes the stream.

        An ERROR event is raised as ApiError (410 when the version is too old). With
        ``decoder`` the objects may hold only the fields the decoder keeps.
        """
        ...

    async def create(
        self,
        resource: Resource,
        body: JsonDict,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> JsonDict:
        """Create an object (409 AlreadyExists when the name is taken)."""
        ...

    async def replace(
        self,
        resource: Resource,
        body: JsonDict,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JsonDict:
        """PUT an object; a stale ``metadata.resourceVersion`` gives 409 Conflict."""
        ...

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> JsonDict:
        """Patch an object. A failed JSON-patch ``test`` gives 409 (conflict)."""
        ...

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation_policy: str | None = None,
    ) -> JsonDict | None:
        """Delete an object (preconditions on uid / resourceVersion when given)."""
        ...
