"""The journal: coalesced writes, lazy drops, conflicts, a deleted journal, back-pressure."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
from collections.abc import AsyncIterator

import pytest

from csi_sidecars.kube.fake import FakeKube
from csi_sidecars.kube.resources import LEASES, ApiError
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.provisioner.decide.request import build_create_request, plan_provision
from csi_sidecars.provisioner.journal import (
    Journal,
    JournalError,
    decode_records,
    encode_records,
    journal_name,
)
from csi_sidecars.provisioner.journal import intent as it
from tests.unit.provisioner.objs import options, pvc, sc

NS = "kube-system"
NAME = journal_name("hostpath.csi.k8s.io")


def record(i: int) -> it.Intent:
    claim = pvc(name=f"c{i}", uid=f"{i:08d}-0000-0000-0000-000000000000")
    request = build_create_request(plan_provision(claim, sc(), options()))
    return it.make_intent(claim, request, sc())


def stored(kube: FakeKube) -> dict[str, it.Intent]:
    records, problems = decode_records(kube.peek(LEASES, NAME, NS))
    assert problems == []
    return records


@contextlib.asynccontextmanager
async def running(kube: FakeKube, **kw: object) -> AsyncIterator[Journal]:
    journal = Journal(kube, NS, NAME, **kw)  # type: ignore[arg-type]
    await journal.load()
    task = asyncio.create_task(journal.run())
    try:
        yield journal
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def poll(check: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_name_and_encoding_roundtrip() -> None:
    assert NAME == "hostpath.csi.k8s.io-provisioner-journal"
    assert journal_name("Foo/Bar_x") == "foo-bar-x-provisioner-journal"
    records = {r.pvc_uid: r for r in (record(i) for i in range(200))}
    encoded = encode_records(records)
    assert len(encoded) < 200 * 100  # similar records compress well (1000 fit in 200 KiB)
    lease = {"metadata": {"annotations": {strings.ANN_JOURNAL: encoded}}}
    back, problems = decode_records(lease)
    assert problems == [] and set(back) == set(records)
    garbage = {"metadata": {"annotations": {strings.ANN_JOURNAL: "not base64!"}}}
    assert decode_records(garbage)[0] == {} and decode_records(garbage)[1]


def test_encoding_with_a_cache_is_the_same_and_keeps_only_current_records() -> None:
    records = {r.pvc_uid: r for r in (record(i) for i in range(10))}
    cache: dict[str, tuple[it.Intent, dict[str, object]]] = {}
    assert encode_records(records, cache) == encode_records(records)
    assert set(cache) == set(records)
    # A replaced record is encoded again; a removed one leaves the cache.
    first = next(iter(records))
    records[first] = dataclasses.replace(records[first], volume_name="other")
    del records[sorted(records)[-1]]
    assert encode_records(records, cache) == encode_records(records)
    assert set(cache) == set(records)
    assert cache[first][0] is records[first]
    assert cache[first][1]["volumeName"] == "other"


async def test_concurrent_records_share_few_writes() -> None:
    kube = FakeKube()
    async with running(kube) as journal:
        await asyncio.gather(*(journal.record(record(i)) for i in range(100)))
        assert journal.writes <= 3
        assert len(stored(kube)) == 100
        assert journal.get(record(7).pvc_uid) == record(7)
        assert [r.claim_name for r in journal.for_claim("default/c7")] == ["c7"]
        lease = kube.peek(LEASES, NAME, NS)
        assert lease is not None
        assert lease["metadata"]["annotations"][strings.ANN_JOURNAL_RECORDS] == "100"
        # Recording the same request again costs nothing.
        await journal.record(record(7))
        assert journal.writes <= 3


async def test_drops_linger_then_ride_along() -> None:
    kube = FakeKube()
    async with running(kube, linger=0.3) as journal:
        await journal.record(record(1))
        await journal.record(record(2))
        writes = journal.writes
        journal.drop(record(1).pvc_uid)
        assert journal.get(record(1).pvc_uid) is None  # dropped at once in memory
        assert not journal.knows_claim("default/c1")
        await asyncio.sleep(0.05)
        assert journal.writes == writes and record(1).pvc_uid in stored(kube)
        await journal.record(record(3))  # the drop rides along
        assert journal.writes == writes + 1
        assert set(stored(kube)) == {record(2).pvc_uid, record(3).pvc_uid}
        journal.drop(record(2).pvc_uid)
        await poll(lambda: record(2).pvc_uid not in stored(kube))  # alone after the linger


async def test_conflict_merges_and_adopts_foreign_records() -> None:
    kube = FakeKube()
    adopted: list[str] = []
    async with running(kube, on_adopt=lambda r: adopted.append(r.claim_key)) as journal:
        await journal.record(record(1))
        await journal.record(record(2))
        journal.drop(record(2).pvc_uid)
        # Another writer (an old leader) adds a record meanwhile.
        lease = copy.deepcopy(kube.peek(LEASES, NAME, NS))
        assert lease is not None
        theirs = {**stored(kube), record(9).pvc_uid: record(9)}
        lease["metadata"]["annotations"][strings.ANN_JOURNAL] = encode_records(theirs)
        await kube.replace(LEASES, lease, NS)
        await journal.record(record(3))
        assert adopted == ["default/c9"]
        assert set(stored(kube)) == {r.pvc_uid for r in (record(1), record(3), record(9))}
        assert journal.get(record(9).pvc_uid) == record(9)


async def test_deleted_journal_is_written_again() -> None:
    kube = FakeKube()
    async with running(kube) as journal:
        await journal.record(record(1))
        await kube.delete(LEASES, NAME, NS)
        await journal.record(record(2))
        assert set(stored(kube)) == {record(1).pvc_uid, record(2).pvc_uid}


async def test_back_pressure_waits_for_room() -> None:
    kube = FakeKube()
    async with running(kube, max_records=3, linger=0.01) as journal:
        await asyncio.gather(*(journal.record(record(i)) for i in range(3)))
        waiting = asyncio.create_task(journal.record(record(3)))
        await asyncio.sleep(0.05)
        assert not waiting.done() and len(stored(kube)) == 3
        journal.drop(record(0).pvc_uid)
        await asyncio.wait_for(waiting, 5)
        assert set(stored(kube)) == {record(i).pvc_uid for i in (1, 2, 3)}


async def test_failed_write_withdraws_the_record() -> None:
    kube = FakeKube()
    kube.inject("create", ApiError(403, "Forbidden", "leases is forbidden"), resource=LEASES)
    async with running(kube) as journal:
        with pytest.raises(JournalError, match="leases is forbidden"):
            await journal.record(record(1))
        assert journal.get(record(1).pvc_uid) is None
        assert not journal.knows_claim("default/c1")
        await journal.record(record(1))
        assert journal.get(record(1).pvc_uid) == record(1)


async def test_load_reads_existing_records() -> None:
    kube = FakeKube()
    async with running(kube) as journal:
        await asyncio.gather(journal.record(record(1)), journal.record(record(2)))
    again = Journal(kube, NS, NAME)
    loaded = await again.load()
    assert {r.pvc_uid for r in loaded} == {record(1).pvc_uid, record(2).pvc_uid}
    assert again.get(record(2).pvc_uid) == record(2)
