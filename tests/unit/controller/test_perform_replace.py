"""The Replace action of the Performer (a PUT for roles whose RBAC grants update, not patch)."""

from __future__ import annotations

from csi_sidecars.controller import actions as a
from csi_sidecars.controller.perform import Performer
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import PERSISTENT_VOLUME_CLAIMS


async def test_replace_continues_with_the_written_object_and_remembers_it() -> None:
    kube = FakeKube()
    await kube.create(PERSISTENT_VOLUME_CLAIMS, {"metadata": {"name": "c", "namespace": "ns"}})
    full = await kube.get(PERSISTENT_VOLUME_CLAIMS, "c", "ns")
    full["metadata"]["finalizers"] = ["f"]
    performer = Performer(kube, None, None, timeout=1.0)
    seen: list[str] = []

    def then(obj: dict[str, object]) -> a.Plan:
        seen.append(str(obj["metadata"]["resourceVersion"]))  # type: ignore[index]
        return (a.Done("ok"),)

    outcome = await performer.perform([a.Replace(PERSISTENT_VOLUME_CLAIMS, full, "ns", then=then)])
    assert outcome == a.Done("ok")
    stored = kube.peek(PERSISTENT_VOLUME_CLAIMS, "c", "ns")
    assert stored is not None and stored["metadata"]["finalizers"] == ["f"]
    assert seen == [stored["metadata"]["resourceVersion"]]
    assert performer.written["persistentvolumeclaims"].newest("ns/c", full) == stored
    assert [x.verb for x in kube.actions_of("replace")] == ["replace"]


async def test_replace_from_a_stale_copy_redecides() -> None:
    kube = FakeKube()
    await kube.create(PERSISTENT_VOLUME_CLAIMS, {"metadata": {"name": "c", "namespace": "ns"}})
    stale = await kube.get(PERSISTENT_VOLUME_CLAIMS, "c", "ns")
    await kube.patch(PERSISTENT_VOLUME_CLAIMS, "c", {"metadata": {"labels": {"x": "y"}}}, "ns")
    stale["metadata"]["finalizers"] = ["f"]
    performer = Performer(kube, None, None, timeout=1.0)
    outcome = await performer.perform([a.Replace(PERSISTENT_VOLUME_CLAIMS, stale, "ns")])
    assert isinstance(outcome, a.Redecide)
    stored = kube.peek(PERSISTENT_VOLUME_CLAIMS, "c", "ns")
    assert stored is not None and "finalizers" not in stored["metadata"]
