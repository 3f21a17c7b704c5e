"""Event recorder: aggregation, similar-event folding, spam filter."""

from __future__ import annotations

import asyncio

import pytest

from csi_sidecars.kube import events
from csi_sidecars.kube.clock import FakeClock
from csi_sidecars.kube.events import COMBINED_PREFIX, EventRecorder
from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import EVENTS, PERSISTENT_VOLUME_CLAIMS, PERSISTENT_VOLUMES

PVC = {"metadata": {"name": "claim", "namespace": "ns", "uid": "u1", "resourceVersion": "7"}}


async def test_event_fields_and_repeat_aggregates() -> None:
    fake, clock = FakeKube(), FakeClock()
    rec = EventRecorder(fake, "csi-provisioner", host="host-1", clock=clock)
    await rec.record(
        {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "name": "claim",
            "namespace": "ns",
            "uid": "u1",
        },
        "Normal",
        "Provisioning",
        "External provisioner is provisioning volume",
    )
    events = fake.objects(EVENTS)
    assert len(events) == 1
    ev = events[0]
    assert ev["metadata"]["namespace"] == "ns"
    assert ev["metadata"]["name"].startswith("claim.")
    assert ev["involvedObject"]["uid"] == "u1"
    assert ev["source"] == {"component": "csi-provisioner", "host": "host-1"}
    assert ev["count"] == 1 and ev["type"] == "Normal" and ev["reason"] == "Provisioning"
    await clock.advance(30)
    for _ in range(3):
        await rec.record(ev["involvedObject"], "Normal", "Provisioning", ev["message"])
    events = fake.objects(EVENTS)
    assert len(events) == 1
    assert events[0]["count"] == 4
    assert events[0]["lastTimestamp"] > events[0]["firstTimestamp"]


async def test_event_queue_and_kind_from_resource() -> None:
    fake, clock = FakeKube(), FakeClock()
    rec = EventRecorder(fake, "c", clock=clock)
    task = asyncio.create_task(rec.run())
    rec.event(PVC, "Warning", "ProvisioningFailed", "boom", resource=PERSISTENT_VOLUME_CLAIMS)
    await asyncio.wait_for(rec.flush(), 5)
    (ev,) = fake.objects(EVENTS)
    assert ev["involvedObject"]["kind"] == "PersistentVolumeClaim"
    assert ev["involvedObject"]["apiVersion"] == "v1"
    assert ev["type"] == "Warning"
    task.cancel()


async def test_recreated_when_aggregated_event_vanished() -> None:
    fake, clock = FakeKube(), FakeClock()
    rec = EventRecorder(fake, "c", clock=clock)
    ref = {"kind": "PersistentVolume", "name": "pv", "apiVersion": "v1"}
    await rec.record(ref, "Normal", "R", "m")
    (ev,) = fake.objects(EVENTS)
    await fake.delete(EVENTS, ev["metadata"]["name"], "default")
    await clock.advance(1)
    await rec.record(ref, "Normal", "R", "m")
    assert len(fake.objects(EVENTS)) == 1


async def test_similar_events_fold_after_ten_messages() -> None:
    fake, clock = FakeKube(), FakeClock()
    rec = EventRecorder(fake, "c", clock=clock, burst=1000)
    ref = {"kind": "PersistentVolume", "name": "pv", "apiVersion": "v1"}
    for i in range(15):
        await clock.advance(0.001)
        await rec.record(ref, "Warning", "Failed", f"error {i}")
    events = fake.objects(EVENTS)
    combined = [e for e in events if e["message"].startswith(COMBINED_PREFIX)]
    plain = [e for e in events if not e["message"].startswith(COMBINED_PREFIX)]
    assert len(plain) == 10
    assert len(combined) == 5  # each distinct message after the 10th is marked combined


async def test_spam_filter_per_object() -> None:
    fake, clock = FakeKube(), FakeClock()
    rec = EventRecorder(fake, "c", clock=clock, burst=3, qps=1 / 300)
    a = {"kind": "PersistentVolume", "name": "a", "apiVersion": "v1"}
    b = {"kind": "PersistentVolume", "name": "b", "apiVersion": "v1"}
    for i in range(6):
        await rec.record(a, "Normal", "R", f"m{i}")
    await rec.record(b, "Normal", "R", "m")
    names = [e["involvedObject"]["name"] for e in fake.objects(EVENTS)]
    assert names.count("a") == 3 and names.count("b") == 1
    assert rec.dropped == 3
    await clock.advance(300)
    await rec.record(a, "Normal", "R", "later")
    assert [e["involvedObject"]["name"] for e in fake.objects(EVENTS)].count("a") == 4
    assert PERSISTENT_VOLUMES.kind == "PersistentVolume"


async def test_forget_drops_an_objects_state_and_state_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "CACHE_SIZE", 8)
    fake, clock = FakeKube(), FakeClock()
    rec = EventRecorder(fake, "c", clock=clock, burst=1, qps=1 / 300)
    await rec.record(PVC_REF, "Normal", "Provisioning", "m")
    await rec.record(PVC_REF, "Normal", "Provisioning", "m")  # throttled: burst 1
    assert len(rec) == 1 and rec.dropped == 1
    # The informer's slim copy of the deleted claim (no kind: it comes from the resource).
    rec.forget(PVC, PERSISTENT_VOLUME_CLAIMS)
    assert len(rec) == 0
    await rec.record(PVC_REF, "Normal", "Provisioning", "m")  # a fresh bucket, a new Event
    assert rec.dropped == 1 and len(fake.objects(EVENTS)) == 2
    for i in range(13):
        ref = {"kind": "PersistentVolume", "name": f"pv{i}", "apiVersion": "v1"}
        await rec.record(ref, "Normal", "R", "m")
    assert len(rec) == 8


PVC_REF = {
    "kind": "PersistentVolumeClaim",
    "apiVersion": "v1",
    "name": "claim",
    "namespace": "ns",
    "uid": "u1",
}


async def test_a_late_event_about_a_deleted_object_keeps_no_state() -> None:
    fake, clock = FakeKube(), FakeClock()
    rec = EventRecorder(fake, "c", clock=clock)
    rec.forget(PVC, PERSISTENT_VOLUME_CLAIMS)  # deleted while its event waited in the queue
    await rec.record(PVC_REF, "Normal", "ProvisioningSucceeded", "done")
    assert len(fake.objects(EVENTS)) == 1  # still written
    assert len(rec) == 0


async def test_senders_write_at_once_and_keep_each_objects_order() -> None:
    fake, clock = FakeKube(), FakeClock()
    rec = EventRecorder(fake, "c", clock=clock, burst=100)
    in_flight = most = 0
    create = fake.create

    async def slow_create(*args: object, **kwargs: object) -> dict[str, object]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return await create(*args, **kwargs)  # type: ignore[arg-type]

    fake.create = slow_create  # type: ignore[method-assign]
    task = asyncio.create_task(rec.run())
    for i in range(40):
        obj = {"metadata": {"name": f"pv{i % 8}", "uid": f"u{i % 8}"}}
        rec.event(obj, "Normal", "R", f"m{i}", resource=PERSISTENT_VOLUMES)
    await asyncio.wait_for(rec.flush(), 5)
    task.cancel()
    assert most > 1
    messages: dict[str, list[int]] = {}
    for ev in sorted(fake.objects(EVENTS), key=lambda e: e["metadata"]["name"].split(".")[1]):
        messages.setdefault(ev["involvedObject"]["name"], []).append(int(ev["message"][1:]))
    assert len(messages) == 8 and all(m == sorted(m) for m in messages.values())
