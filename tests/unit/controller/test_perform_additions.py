"""Performer additions: event-only lists on the events client, no "dropped" error on failures."""

from __future__ import annotations

import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.objects import normal
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES, PODS
from csi_sidecars.runtime.logging import capture_logs

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}}


@pytest.mark.parametrize("for_events", [True, False])
async def test_lists_for_events_use_the_events_client(for_events: bool) -> None:
    main, events = FakeKube(), FakeKube()
    await events.create(PODS, POD, "ns")
    seen: list[list[str]] = []
    performer = Performer(main, None, None, timeout=1.0, events_port=events)
    listing = a.List(
        PODS,
        namespace="ns",
        for_events=for_events,
        then=lambda items: (seen.append([i["metadata"]["name"] for i in items]), a.Done())[1:],
    )
    assert await performer.perform((listing,)) == a.Done()
    assert seen == ([["p"]] if for_events else [[]])
    assert bool(events.actions_of("list", PODS)) is for_events
    assert bool(main.actions_of("list", PODS)) is not for_events


async def test_without_an_events_client_lists_use_the_main_one() -> None:
    main = FakeKube()
    performer = Performer(main, None, None, timeout=1.0)
    assert await performer.perform((a.List(PODS, for_events=True), a.Done())) == a.Done()
    assert main.actions_of("list", PODS)


async def test_a_failure_replacing_the_rest_of_a_plan_is_not_reported_as_a_bug() -> None:
    kube = FakeKube()
    performer = Performer(kube, None, None, timeout=1.0)
    failing = a.Patch(PERSISTENT_VOLUMES, "missing", {"metadata": {"labels": {"a": "b"}}})
    with capture_logs() as logs:
        outcome = await performer.perform(
            (failing, a.Emit(normal("Reason", "never recorded"), POD), a.Done())
        )
    assert isinstance(outcome, a.Retry)
    assert not [e for e in logs if e["event"] == "Actions after a continuation were dropped"]
    handled = a.Patch(
        PERSISTENT_VOLUMES, "missing", {}, on_error=lambda exc: (a.Retry(f"handled {exc.status}"),)
    )
    with capture_logs() as logs:
        assert await performer.perform((handled, a.Done())) == a.Retry("handled 404")
    assert not logs


async def test_a_continuation_followed_by_actions_is_still_reported() -> None:
    kube = FakeKube()
    await kube.create(PODS, POD, "ns")
    performer = Performer(kube, None, None, timeout=1.0)
    read = a.Read(PODS, "p", "ns", then=lambda _: (a.Done("read"),))
    with capture_logs() as logs:
        assert await performer.perform((read, a.Retry("dropped"))) == a.Done("read")
    assert [e["event"] for e in logs] == ["Actions after a continuation were dropped"]
