"""The one executor: performs complete plans in order, follows continuations, owns the policy."""

from __future__ import annotations

from typing import Any

import grpc

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer, run_sync
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.objects import warning
from csi_sidecars.kube.patch import add_finalizer_patch
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, SECRETS, ApiError
from csi_sidecars.kube.workqueue import After


class _Stub:
    def __init__(self, replies: list[Any]) -> None:
        self.replies = replies
        self.requests: list[tuple[Any, float | None]] = []

    async def CreateSnapshot(self, request: Any, timeout: float | None = None) -> Any:
        self.requests.append((request, timeout))
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply


class _Conn:
    def __init__(self, stub: _Stub) -> None:
        self.controller = stub


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: Any, etype: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((obj["metadata"]["name"], etype, reason, message))


def _performer(
    kube: FakeKube, replies: list[Any] | None = None
) -> tuple[Performer, _Stub, _Recorder]:
    stub = _Stub(replies or [])
    rec = _Recorder()
    return Performer(kube, _Conn(stub), rec, timeout=7.0, role="t"), stub, rec  # type: ignore[arg-type]


async def test_actions_run_in_order_and_continuations_decide_on_answers() -> None:
    kube = FakeKube()
    pv = await kube.create(PERSISTENT_VOLUMES, {"metadata": {"name": "pv"}})
    performer, stub, rec = _performer(kube, ["reply-1"])
    seen: list[Any] = []

    def after_call(reply: Any) -> a.Plan:
        seen.append(reply)
        return (a.Emit(warning("R", f"got {reply}"), pv), a.RetryAfter(5.0))

    plan: a.Plan = (
        a.Patch(PERSISTENT_VOLUMES, "pv", add_finalizer_patch(pv, "f"), type="json"),
        a.Call("controller", "CreateSnapshot", "req", then=after_call, on_error=lambda e: ()),
    )
    outcome = await performer.perform(plan)
    assert outcome == a.RetryAfter(5.0)
    assert seen == ["reply-1"] and stub.requests == [("req", 7.0)]
    assert rec.events == [("pv", "Warning", "R", "got reply-1")]
    stored = kube.peek(PERSISTENT_VOLUMES, "pv")
    assert stored is not None and stored["metadata"]["finalizers"] == ["f"]
    # read-your-writes: the patched object is remembered until a cache shows it
    assert performer.written["persistentvolumes"].stale("pv", pv)


async def test_call_errors_go_to_on_error() -> None:
    kube = FakeKube()
    err = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.aio.Metadata(), grpc.aio.Metadata(), "full"
    )
    performer, _, _ = _performer(kube, [err])
    got: list[BaseException] = []

    def on_error(exc: BaseException) -> a.Plan:
        got.append(exc)
        return (a.Retry("driver full"),)

    plan = (a.Call("controller", "CreateSnapshot", "r", then=lambda r: (), on_error=on_error),)
    assert await performer.perform(plan) == a.Retry("driver full")
    assert got == [err]


async def test_default_error_policy() -> None:
    kube = FakeKube()
    await kube.create(PERSISTENT_VOLUMES, {"metadata": {"name": "pv", "finalizers": ["x"]}})
    performer, _, _ = _performer(kube)
    # a JSON patch guarded by a test that no longer holds: decide again
    stale = [{"op": "test", "path": "/metadata/finalizers", "value": None}]
    outcome = await performer.perform((a.Patch(PERSISTENT_VOLUMES, "pv", stale, type="json"),))
    assert isinstance(outcome, a.Redecide)
    # 404 with missing_ok goes on; without it retries
    gone = a.Patch(PERSISTENT_VOLUMES, "nope", {"x": 1}, missing_ok=True)
    assert await performer.perform((gone, a.Done("ok"))) == a.Done("ok")
    assert isinstance(await performer.perform((a.Patch(PERSISTENT_VOLUMES, "nope", {}),)), a.Retry)
    # an action's own on_error overrides
    custom = a.Patch(PERSISTENT_VOLUMES, "nope", {}, on_error=lambda e: (a.Done(str(e.status)),))
    assert await performer.perform((custom,)) == a.Done("404")
    # Read gives None for a missing object; Create with exists_ok reads the existing one
    got: list[Any] = []
    read = a.Read(SECRETS, "s", "ns", then=lambda obj: (got.append(obj), a.Done())[1:])
    assert await performer.perform((read,)) == a.Done()
    assert got == [None]
    body = {"metadata": {"name": "pv"}}
    again = a.Create(
        PERSISTENT_VOLUMES, body, exists_ok=True, then=lambda o: (a.Done(o["metadata"]["name"]),)
    )
    assert await performer.perform((again,)) == a.Done("pv")


async def test_run_sync_redecides_on_stale_copies_then_gives_up() -> None:
    kube = FakeKube()
    await kube.create(PERSISTENT_VOLUMES, {"metadata": {"name": "pv", "finalizers": ["x"]}})
    performer, _, _ = _performer(kube)
    calls = 0

    def decide() -> a.Plan:
        nonlocal calls
        calls += 1
        value = None if calls < 3 else ["x"]
        ops = [{"op": "test", "path": "/metadata/finalizers", "value": value}]
        return (a.Patch(PERSISTENT_VOLUMES, "pv", ops, type="json"), a.RetryAfter(2.0))

    assert await run_sync(decide, performer, "pv") == After(2.0)
    assert calls == 3

    async def always_stale() -> a.Plan:
        return (a.Redecide("stale"),)

    assert await run_sync(always_stale, performer, "pv", max_redecides=2) is False
    kube.inject("list", ApiError(500, "", "boom"))
    listing = a.List(SECRETS, "ns", then=lambda items: (a.Done(),))
    assert isinstance(await performer.perform((listing,)), a.Retry)
