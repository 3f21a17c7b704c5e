"""The one executor of every controller role: performs a :data:`~.actions.Plan` in order.

It builds no patch, event or request and asks no decision function anything; the only
decisions it runs are the continuations the plan itself carries. What it owns:

* the API calls (through the :class:`~csi_sidecars.kube.port.KubePort`), the CSI calls (through
  the :class:`~csi_sidecars.csi.connection.Connection`, with ``--timeout`` by default) and the
  events (through the :class:`~csi_sidecars.kube.events.EventRecorder`);
* read-your-writes: every object a Patch or Create returns is kept in :attr:`Performer.written`
  (one :class:`~csi_sidecars.kube.written.WrittenCache` per resource) until the informers catch
  up, so the next decision about the key sees our write even when the cache does not yet;
* the default error policy: a conflict (409, or 422 from a failed JSON-patch ``test``) means the
  decision was made from a stale copy (:class:`~.actions.Redecide`); 404 on a ``missing_ok``
  write goes on; anything else retries with back-off. An action's ``on_error`` overrides it.

:func:`run_sync` is the loop a role's ``sync(key)`` uses: decide, perform, and on ``Redecide``
read again and decide again, a bounded number of times.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from csi_sidecars.controller import actions as a
from csi_sidecars.csi.connection import Connection
from csi_sidecars.kube.events import EventRecorder
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import ApiError, JsonDict, object_key
from csi_sidecars.kube.workqueue import After, Result
from csi_sidecars.kube.written import WrittenCache
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("controller")

#: Continuations followed in one plan before it is cut off as a runaway (a bug in a role).
MAX_STEPS = 32
#: Decide-again rounds after a stale copy before the key goes back with back-off.
MAX_REDECIDES = 3
#: Items per page of a List action.
LIST_PAGE = 500


def _default_error(exc: ApiError, action: a.Action) -> a.Plan | None:
    """None: go on with the plan; else the plan that replaces the rest.

    The API server answers a failed JSON-patch ``test`` with 422, so a 422 to a JSON patch is
    a stale copy too (a malformed patch would be a bug in a role, and re-deciding is bounded).
    """
    if exc.not_found and getattr(action, "missing_ok", False):
        return None
    json_patch = isinstance(action, a.Patch) and action.type == "json"
    if exc.conflict or (json_patch and exc.invalid):
        return (a.Redecide(exc.message or str(exc)),)
    return (a.Retry(exc.message or str(exc)),)


def to_result(outcome: a.Outcome) -> Result:
    """A plan's outcome as the work queue's handler result."""
    if isinstance(outcome, a.RetryAfter):
        return After(outcome.seconds)
    return isinstance(outcome, a.Done)


class Performer:
    """Performs plans for one role.

    Args:
        port: the Kubernetes API.
        conn: the driver connection (None for roles that make no CSI calls).
        recorder: where events go (None: events are dropped, e.g. without RBAC for them).
        timeout: the default CSI call timeout (``--timeout``).
        role: for log lines.
        events_port: the events client, for :class:`~.actions.List` actions ``for_events``
            (default: ``port``).
    """

    def __init__(
        self,
        port: KubePort,
        conn: Connection | None,
        recorder: EventRecorder | None,
        *,
        timeout: float,
        role: str = "",
        events_port: KubePort | None = None,
    ) -> None:
        self.port = port
        self.events_port = events_port or port
        self.conn = conn
        self.recorder = recorder
        self.timeout = timeout
        self.role = role
        #: objects our writes returned, per resource plural, until the caches catch up
        self.written: defaultdict[str, WrittenCache] = defaultdict(WrittenCache)

    async def perform(self, plan: a.Plan, key: str = "") -> a.Outcome:
        """Perform ``plan`` (and the plans its continuations return); the final outcome."""
        pending = list(plan)
        steps = 0
        while pending:
            action = pending.pop(0)
            if isinstance(action, a.Done | a.Retry | a.RetryAfter | a.Redecide):
                return action
            following, failed = await self._one(action)
            if following is not None:
                steps += 1
                if steps > MAX_STEPS:
                    log.error("Plan did not finish", role=self.role, key=key)
                    return a.Retry("plan did not finish")
                if pending and not failed:
                    # A failure replaces the rest of the plan by design; a continuation with
                    # actions after it is a bug in the role.
                    log.error(
                        "Actions after a continuation were dropped",
                        role=self.role,
                        key=key,
                        dropped=len(pending),
                    )
                pending = list(following)
        return a.Done()

    async def _one(self, action: a.Action) -> tuple[a.Plan | None, bool]:
        """Perform one action: (a plan replacing the rest of the current one or None to go
        on, whether that plan answers a failure)."""
        if isinstance(action, a.Emit):
            if self.recorder is not None:
                ev = action.event
                self.recorder.event(
                    action.target, ev.type, ev.reason, ev.message, resource=action.resource
                )
            return None, False
        if isinstance(action, a.Call):
            # Both of its continuations end the plan: actions after a Call are always a bug.
            return await self._call(action), False
        try:
            return await self._api(action), False
        except ApiError as exc:
            handler: Callable[[ApiError], a.Plan] | None = getattr(action, "on_error", None)
            if handler is not None:
                return handler(exc), True
            return _default_error(exc, action), True

    async def _api(self, action: a.Action) -> a.Plan | None:
        if isinstance(action, a.Patch):
            obj = await self.port.patch(
                action.resource,
                action.name,
                action.body,
                action.namespace,
                patch_type=action.type,
                subresource=action.subresource,
                field_manager=action.field_manager,
                force=True if action.type == "apply" else None,
            )
            self.written[action.resource.plural].remember(object_key(obj), obj)
            return action.then(obj) if action.then is not None else None
        if isinstance(action, a.Create):
            try:
                obj = await self.port.create(action.resource, action.body, action.namespace)
            except ApiError as exc:
                if not (exc.already_exists and action.exists_ok):
                    raise
                obj = await self.port.get(
                    action.resource, str(action.body["metadata"]["name"]), action.namespace
                )
            self.written[action.resource.plural].remember(object_key(obj), obj)
            return action.then(obj) if action.then is not None else None
        if isinstance(action, a.Replace):
            obj = await self.port.replace(action.resource, action.body, action.namespace)
            self.written[action.resource.plural].remember(object_key(obj), obj)
            return action.then(obj) if action.then is not None else None
        if isinstance(action, a.Delete):
            try:
                await self.port.delete(
                    action.resource, action.name, action.namespace, uid=action.uid
                )
            except ApiError as exc:
                if not exc.not_found:
                    raise
            key = f"{action.namespace}/{action.name}" if action.namespace else action.name
            self.written[action.resource.plural].forget(key)
            return None
        if isinstance(action, a.Read):
            try:
                found: JsonDict | None = await self.port.get(
                    action.resource, action.name, action.namespace
                )
            except ApiError as exc:
                if not exc.not_found:
                    raise
                found = None
            return action.then(found)
        if isinstance(action, a.List):
            return action.then(await self._list(action))
        raise TypeError(f"not an action: {action!r}")

    async def _list(self, action: a.List) -> list[JsonDict]:
        items: list[JsonDict] = []
        token: str | None = None
        port = self.events_port if action.for_events else self.port
        while True:
            page = await port.list(
                action.resource,
                action.namespace,
                label_selector=action.label_selector,
                field_selector=action.field_selector,
                limit=LIST_PAGE,
                continue_token=token,
            )
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return items

    async def _call(self, action: a.Call) -> a.Plan:
        if self.conn is None:
            raise RuntimeError(f"{self.role}: a CSI call without a driver connection")
        stub: Any = getattr(self.conn, action.service)
        method: Callable[..., Awaitable[Any]] = getattr(stub, action.method)
        timeout = self.timeout if action.timeout is None else action.timeout
        try:
            reply = await method(action.request, timeout=timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # grpc.aio.AioRpcError, TimeoutError, a broken channel
            return action.on_error(exc)
        return action.then(reply)


async def run_sync(
    decide: Callable[[], a.Plan | Awaitable[a.Plan]],
    performer: Performer,
    key: str = "",
    *,
    max_redecides: int = MAX_REDECIDES,
) -> Result:
    """Decide and perform for one key; decide again (fresh reads) after :class:`Redecide`.

    ``decide`` reads the caches (and :attr:`Performer.written`) each time it is called.
    """
    for _ in range(max_redecides + 1):
        made = decide()
        plan = await made if isinstance(made, Awaitable) else made
        outcome = await performer.perform(plan, key)
        if isinstance(outcome, a.Retry) and outcome.reason:
            log.info("Will retry", role=performer.role, key=key, reason=outcome.reason)
        if not isinstance(outcome, a.Redecide):
            return to_result(outcome)
        log.debug("Stale copy, deciding again", role=performer.role, key=key)
    return False
