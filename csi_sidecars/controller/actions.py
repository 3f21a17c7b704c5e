"""Complete actions: what every controller role's pure decisions return.

A decision is a :data:`Plan`, a sequence of fully built actions: the API write with its body,
the event with its text, the CSI request with its fields. The one executor,
:class:`~csi_sidecars.controller.perform.Performer`, performs them in order and builds nothing.

Where the next step depends on an answer (the reply of a CSI call, the object a write returned,
a Secret that was read), the action carries a pure continuation ``then(answer) -> Plan`` (and
``on_error(error) -> Plan``): still a decision, testable by calling it with a made-up answer,
but made when the answer exists. An action with a continuation ends its plan.

Every plan ends in an outcome for the work queue: :class:`Done` (forget the key), :class:`Retry`
(re-add with back-off), :class:`RetryAfter` (look again in N seconds, no back-off) or
:class:`Redecide` (our copy was stale: the caller re-reads and decides again). A plan that runs
out of actions is :class:`Done`.

Requests carry secrets, so they are kept out of ``repr`` (actions may be logged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from csi_sidecars.kube.objects import Event, JsonDict
from csi_sidecars.kube.resources import ApiError, Resource

PatchType = Literal["merge", "json", "apply"]
Service = Literal["identity", "controller", "group_controller", "node"]


@dataclass(frozen=True, slots=True)
class Done:
    """The key is finished for now (the queue forgets its back-off)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    """Try the key again with per-key exponential back-off; ``reason`` is logged."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Look at the key again after ``seconds`` without counting a failure (a poll)."""

    seconds: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Redecide:
    """What we decided from is stale: re-read the objects and decide again (bounded)."""

    reason: str = ""


Outcome = Done | Retry | RetryAfter | Redecide


@dataclass(frozen=True, slots=True)
class Emit:
    """Record ``event`` on ``target`` (an object of ``resource``)."""

    event: Event
    target: JsonDict = field(repr=False)
    resource: Resource | None = None


@dataclass(frozen=True, slots=True)
class Patch:
    """PATCH one object.

    Attributes:
        resource: what kind of object.
        name: its name.
        namespace: its namespace (None: cluster-scoped).
        body: the patch document (a merge patch, a JSON patch list, or an apply intent).
        type: ``merge``, ``json`` (RFC 6902, usually guarded by ``test``) or ``apply``.
        subresource: ``status`` for status writes.
        missing_ok: a 404 answer counts as success (the plan goes on).
        field_manager: for server-side apply.
        then: continuation with the object the API server returned.
        on_error: continuation for an API error; default: conflict or failed ``test`` ->
            :class:`Redecide`, 404 with ``missing_ok`` -> go on, else :class:`Retry`.
    """

    resource: Resource
    name: str
    body: Any
    namespace: str | None = None
    type: PatchType = "merge"
    subresource: str | None = None
    missing_ok: bool = False
    field_manager: str | None = None
    then: Callable[[JsonDict], Plan] | None = field(default=None, repr=False, compare=False)
    on_error: Callable[[ApiError], Plan] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Create:
    """POST one object; ``exists_ok``: 409 AlreadyExists counts as success."""

    resource: Resource
    body: JsonDict
    namespace: str | None = None
    exists_ok: bool = False
    then: Callable[[JsonDict], Plan] | None = field(default=None, repr=False, compare=False)
    on_error: Callable[[ApiError], Plan] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Replace:
    """PUT one object (an Update: ``body`` is the whole object with its resourceVersion).

    For objects a role may update but not patch (the provisioner's PVCs under the Go RBAC). A
    stale resourceVersion gives 409: by default :class:`Redecide`; ``on_error`` may re-read
    and re-apply instead.
    """

    resource: Resource
    body: JsonDict
    namespace: str | None = None
    then: Callable[[JsonDict], Plan] | None = field(default=None, repr=False, compare=False)
    on_error: Callable[[ApiError], Plan] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Delete:
    """DELETE one object (``uid`` as a precondition when given); 404 counts as success."""

    resource: Resource
    name: str
    namespace: str | None = None
    uid: str | None = None
    on_error: Callable[[ApiError], Plan] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Read:
    """GET one object and continue with it (None when it does not exist)."""

    resource: Resource
    name: str
    namespace: str | None = None
    then: Callable[[JsonDict | None], Plan] = field(default=lambda _: (), repr=False, compare=False)
    on_error: Callable[[ApiError], Plan] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class List:
    """LIST objects (all pages) and continue with the items.

    ``for_events``: a read made only to place events (e.g. the pods an event is about); it goes
    through the performer's events client, whose QPS budget is not the role's writes'.
    """

    resource: Resource
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None
    for_events: bool = False
    then: Callable[[list[JsonDict]], Plan] = field(default=lambda _: (), repr=False, compare=False)
    on_error: Callable[[ApiError], Plan] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    """One CSI call with the role's ``--timeout``, then a decision on the reply or the error.

    Attributes:
        service: which stub of the connection.
        method: the RPC name (``CreateSnapshot``).
        request: the request message (kept out of ``repr``: it may hold secrets).
        then: continuation with the reply.
        on_error: continuation with the error (a ``grpc.aio.AioRpcError``, or ``TimeoutError``
            for a deadline the client enforced).
        timeout: seconds; None: the performer's default (``--timeout``).
    """

    service: Service
    method: str
    request: Any = field(repr=False)
    then: Callable[[Any], Plan] = field(repr=False, compare=False)
    on_error: Callable[[BaseException], Plan] = field(repr=False, compare=False)
    timeout: float | None = None


Action = Emit | Patch | Create | Replace | Delete | Read | List | Call | Outcome
Plan = Sequence[Action]
"""A decision: actions in the order they must happen."""


def done(reason: str = "", *before: Action) -> Plan:
    """``before`` then :class:`Done`."""
    return (*before, Done(reason))


def retry(reason: str = "", *before: Action) -> Plan:
    """``before`` then :class:`Retry`."""
    return (*before, Retry(reason))


__all__ = [
    "Action",
    "Call",
    "Create",
    "Delete",
    "Done",
    "Emit",
    "List",
    "Outcome",
    "Patch",
    "Plan",
    "Read",
    "Redecide",
    "Replace",
    "Retry",
    "RetryAfter",
    "done",
    "retry",
]
