"""Performer: the Replace action (PUT), with its continuation and the default conflict policy."""

from __future__ import annotations

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS, JsonDict

PVC = PERSISTENT_VOLUME_CLAIMS


def claim() -> JsonDict:
    return {"metadata": {"name": "c", "namespace": "ns"}, "spec": {"storageClassName": "x"}}


async def test_replace_puts_remembers_and_continues() -> None:
    kube = FakeKube()
    stored = await kube.create(PVC, claim(), "ns")
    performer = Performer(kube, None, None, timeout=1.0)
    body = {**stored, "metadata": {**stored["metadata"], "finalizers": ["f"]}}
    seen: list[JsonDict] = []

    def then(obj: JsonDict) -> a.Plan:
        seen.append(obj)
        return (a.Done("updated"),)

    outcome = await performer.perform([a.Replace(PVC, body, "ns", then=then)])
    assert outcome == a.Done("updated")
    current = kube.peek(PVC, "c", "ns")
    assert current is not None and current["metadata"]["finalizers"] == ["f"]
    assert seen == [current]
    assert performer.written[PVC.plural].get("ns/c") == current
    assert len(kube.actions_of("replace", PVC)) == 1


async def test_stale_replace_redecides_unless_on_error_says_otherwise() -> None:
    kube = FakeKube()
    stored = await kube.create(PVC, claim(), "ns")
    await kube.replace(PVC, {**stored, "spec": {"storageClassName": "y"}}, "ns")
    performer = Performer(kube, None, None, timeout=1.0)
    stale = {**stored, "metadata": {**stored["metadata"], "finalizers": ["f"]}}
    outcome = await performer.perform([a.Replace(PVC, stale, "ns")])
    assert isinstance(outcome, a.Redecide)
    handled = await performer.perform(
        [a.Replace(PVC, stale, "ns", on_error=lambda exc: (a.Retry(f"{exc.status}"),))]
    )
    assert handled == a.Retry("409")
    current = kube.peek(PVC, "c", "ns")
    assert current is not None and "finalizers" not in current["metadata"]
