"""The provisioner's journal: every in-flight CreateVolume record in one Lease object.

The no-leak guarantee (:mod:`.intent`) needs each record on the API server before its
CreateVolume. One write per claim would do, but at Go's default ``--kube-api-qps=5`` such
writes would set the pace. The journal batches them: records are kept in a Lease named
``<driver>-provisioner-journal`` in the provisioner's namespace (the leader election namespace:
the Go RBAC already grants Lease ``get/create/update`` there), in the annotation
``provisioner.csi-sidecars.io/journal`` as base64 of zlib-compressed JSON
(``{"v": 1, "records": [...]}``; decode with ``base64 -d | zlib-flate -uncompress``).

* :meth:`Journal.record` adds a record and returns once a write containing it succeeded. One
  writer task sends the writes; records that arrive while a write is pending or throttled go
  into the next one, so a burst of N claims costs a handful of writes, not N.
* :meth:`Journal.drop` removes a record lazily: drops ride along with the next write, or go on
  their own after :data:`LINGER` seconds.
* Writes are guarded by resourceVersion; on a conflict the object is read again and merged
  (records we do not know are adopted, and their claims re-queued through ``on_adopt``; ours
  are kept; our drops stand). A journal deleted by a user is created again from memory.
* Size: at most :data:`MAX_RECORDS` records and :data:`MAX_BYTES` encoded bytes (annotations
  may hold 256 KiB); further records wait (back-pressure) until drops make room.
* A record whose write failed was never durable, so no CreateVolume was sent for it; it is
  withdrawn and its waiter gets the error (the claim is retried with back-off).

Only the leader runs a journal. Unusable records found on load are logged and dropped.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from csi_sidecars.kube.patch import is_conflict
from csi_sidecars.kube.port import KubePort
from csi_sidecars.kube.resources import LEASES, ApiError, JsonDict
from csi_sidecars.provisioner.decide import strings
from csi_sidecars.provisioner.decide.strings import api_message
from csi_sidecars.provisioner.journal.intent import Intent, intent_from_json, intent_to_json
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("provisioner")

JOURNAL_VERSION = 1
MAX_RECORDS = 1000
MAX_BYTES = 200 * 1024
#: Seconds a drop may wait for a write it can ride along with.
LINGER = 10.0
#: Seconds :meth:`Journal.record` waits for its write.
RECORD_TIMEOUT = 60.0
#: Conflicts merged per write before giving up (the writer then backs off).
CONFLICT_ATTEMPTS = 5


class JournalError(Exception):
    """A record did not become durable, so its CreateVolume must not be sent."""


def _clean(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in text.lower()).strip("-.")


def journal_name(driver: str, node: str = "") -> str:
    """The journal Lease's name for ``driver`` (lower case, ``/`` and ``_`` replaced).

    In node deployment every node's provisioner keeps its own journal (``node``): records are
    only ever finished by the provisioner whose driver the CreateVolume went to.
    """
    if node:
        return f"{_clean(driver)[:100]}-{_clean(node)[:100]}-provisioner-journal"
    return f"{_clean(driver)[:200]}-provisioner-journal"


def encode_records(
    records: Mapping[str, Intent], cache: dict[str, tuple[Intent, JsonDict]] | None = None
) -> str:
    """The annotation value holding ``records`` (sorted by UID, so equal sets encode equally).

    ``cache`` keeps each record's JSON between calls (a record is encoded again only when it is
    another object), and is pruned to ``records``: the journal is rewritten on every batch, and
    converting each in-flight request to JSON again each time was most of a write's CPU.
    """
    entries = []
    for u in sorted(records):
        record = records[u]
        hit = cache.get(u) if cache is not None else None
        if hit is not None and hit[0] is record:
            entries.append(hit[1])
            continue
        entry = intent_to_json(record)
        if cache is not None:
            cache[u] = (record, entry)
        entries.append(entry)
    if cache is not None and len(cache) > len(records):
        for u in [u for u in cache if u not in records]:
            del cache[u]
    data = {"v": JOURNAL_VERSION, "records": entries}
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def decode_records(obj: Mapping[str, Any] | None) -> tuple[dict[str, Intent], list[str]]:
    """The records of a journal object (None: no journal).

    Returns:
        Usable records by PVC UID, and why others were unusable.
    """
    if obj is None:
        return {}, []
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(strings.ANN_JOURNAL)
    if not raw:
        return {}, []
    try:
        data = json.loads(zlib.decompress(base64.b64decode(str(raw))))
    except (ValueError, zlib.error) as err:
        return {}, [f"journal is not readable: {err}"]
    if not isinstance(data, dict) or data.get("v") != JOURNAL_VERSION:
        return {}, ["journal has an unknown format"]
    out: dict[str, Intent] = {}
    problems: list[str] = []
    for item in data.get("records") or []:
        record, why = intent_from_json(item)
        if record is None or not record.claim_name:
            problems.append(why or "record without a claim name")
            continue
        out[record.pvc_uid] = record
    return out, problems


class Journal:
    """The leader's view of the journal and the writer that keeps the API server up to date.

    Args:
        port: the Kubernetes port (the rate-limited one: journal writes are API writes).
        namespace: where the Lease lives.
        name: the Lease name (:func:`journal_name`).
        on_adopt: called with records found on the server that this process did not know
            (written by an earlier leader), so their claims get synced.
    """

    def __init__(
        self,
        port: KubePort,
        namespace: str,
        name: str,
        *,
        on_adopt: Callable[[Intent], None] | None = None,
        linger: float = LINGER,
        max_records: int = MAX_RECORDS,
        max_bytes: int = MAX_BYTES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.namespace = namespace
        self.name = name
        self.on_adopt = on_adopt
        self.linger = linger
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.monotonic = monotonic
        self.writes = 0
        self._obj: JsonDict | None = None
        self._durable: dict[str, Intent] = {}
        self._desired: dict[str, Intent] = {}
        self._by_claim: dict[str, set[str]] = {}
        self._waiters: dict[str, list[tuple[str, asyncio.Future[None]]]] = {}
        self._wake = asyncio.Event()
        self._drops_due: float | None = None
        self._writing = False
        self._dirty = False
        self._encoded: dict[str, tuple[Intent, JsonDict]] = {}
        #: set once :meth:`load` succeeded
        self.loaded = False

    # -- queries ----------------------------------------------------------------------------

    def get(self, pvc_uid: str) -> Intent | None:
        """The durable record of a claim UID (None when absent or being dropped)."""
        if pvc_uid not in self._desired:
            return None
        return self._durable.get(pvc_uid)

    def for_claim(self, key: str) -> list[Intent]:
        """Durable, not dropped records of claims named ``key`` (``namespace/name``)."""
        found = (self.get(u) for u in sorted(self._by_claim.get(key, ())))
        return [r for r in found if r is not None]

    def knows_claim(self, key: str) -> bool:
        """Whether any record (durable or pending) names the claim ``key``."""
        return any(u in self._desired for u in self._by_claim.get(key, ()))

    def records(self) -> list[Intent]:
        """Every durable, not dropped record."""
        return [r for u in self._desired if (r := self.get(u)) is not None]

    def idle(self) -> bool:
        """Whether no record waits for a write and no write is running."""
        return not self._writing and not self._pending_adds()

    def _pending_adds(self) -> list[Intent]:
        return [
            r
            for u, r in self._desired.items()
            if (d := self._durable.get(u)) is None or d.digest != r.digest
        ]

    def _needs_drop(self) -> bool:
        """Whether a write must remove records (dropped ones, or unusable ones found on load)."""
        return self._dirty or any(u not in self._desired for u in self._durable)

    def _index(self, record: Intent) -> None:
        self._by_claim.setdefault(record.claim_key, set()).add(record.pvc_uid)

    def _unindex(self, pvc_uid: str) -> None:
        if pvc_uid in self._desired or pvc_uid in self._durable:
            return
        for key, uids in list(self._by_claim.items()):
            uids.discard(pvc_uid)
            if not uids:
                del self._by_claim[key]

    # -- changes ----------------------------------------------------------------------------

    async def load(self) -> list[Intent]:
        """Read the journal (once, before the workers start); returns its records.

        Raises:
            ApiError: the read failed (other than NotFound).
        """
        try:
            obj: JsonDict | None = await self.port.get(LEASES, self.name, self.namespace)
        except ApiError as exc:
            if not exc.not_found:
                raise
            obj = None
        records, problems = decode_records(obj)
        for problem in problems:
            log.warning("Dropping an unusable journal record", journal=self.name, reason=problem)
        self._obj = obj
        self._durable = dict(records)
        self._desired = dict(records)
        for record in records.values():
            self._index(record)
        if problems:
            self._dirty = True  # rewrite without the unusable records
            self._drops_due = self.monotonic()
            self._wake.set()
        self.loaded = True
        log.info("Journal loaded", journal=f"{self.namespace}/{self.name}", records=len(records))
        return list(records.values())

    async def record(self, record: Intent, timeout: float = RECORD_TIMEOUT) -> None:
        """Add (or replace) the record of ``record.pvc_uid``; return once it is durable.

        Raises:
            JournalError: no write held the record: the write failed (the record is withdrawn),
                none came within ``timeout`` (the record stays queued), or the record was
                dropped or withdrawn meanwhile.
        """
        uid = record.pvc_uid
        durable = self._durable.get(uid)
        if durable is not None and durable.digest == record.digest and uid in self._desired:
            return
        current = self._desired.get(uid)
        if current is None or current.digest != record.digest:
            self._desired[uid] = record
            self._index(record)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (record.digest, future)
        self._waiters.setdefault(uid, []).append(entry)
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise JournalError(f"no journal write within {timeout:g}s") from None
        finally:
            waiting = self._waiters.get(uid, [])
            if entry in waiting:
                waiting.remove(entry)
            if not waiting:
                self._waiters.pop(uid, None)

    def drop(self, pvc_uid: str) -> None:
        """Forget the record of a claim UID; the drop is written with a later write."""
        if self._desired.pop(pvc_uid, None) is None:
            return
        self._fail_waiters(pvc_uid, None, JournalError("the record was dropped"))
        if pvc_uid in self._durable:
            if self._drops_due is None:
                self._drops_due = self.monotonic() + self.linger
            self._wake.set()
        self._unindex(pvc_uid)

    def withdraw_pending(self, key: str, keep: str = "") -> None:
        """Withdraw records of claims named ``key`` (other than UID ``keep``) whose write has
        not succeeded: no CreateVolume was sent for them, and their claim is gone."""
        changed = False
        for pvc_uid in list(self._by_claim.get(key, ())):
            want = self._desired.get(pvc_uid)
            have = self._durable.get(pvc_uid)
            if pvc_uid == keep or want is None or (have is not None and have.digest == want.digest):
                continue
            if have is None:
                del self._desired[pvc_uid]
            else:
                self._desired[pvc_uid] = have
            self._fail_waiters(pvc_uid, None, JournalError("the claim is gone"))
            changed = True
        if changed:
            self._reindex()

    def _fail_waiters(self, uid: str, digest: str | None, exc: JournalError | None) -> None:
        for want, future in self._waiters.get(uid, []):
            if future.done() or (digest is not None and want != digest):
                continue
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

    # -- the writer -------------------------------------------------------------------------

    async def run(self) -> None:
        """Write pending changes until cancelled (one write at a time, coalescing the rest)."""
        failures = 0
        while True:
            if not self._pending_adds():
                if not self._needs_drop():
                    self._drops_due = None
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self._drops_due is None:  # dropped while the write adding it ran
                    self._drops_due = self.monotonic() + self.linger
                remaining = self._drops_due - self.monotonic()
                if remaining > 0:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    except TimeoutError:
                        self._drops_due = self.monotonic()
                    continue
            if not self._writable():
                self._wake.clear()  # full: wait for a drop to make room
                await self._wake.wait()
                continue
            self._writing = True
            try:
                await self._flush()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.error("Journal write failed", journal=self.name, error=str(exc))
                await asyncio.sleep(min(0.1 * 2**failures, 10.0))
            finally:
                self._writing = False

    def _writable(self) -> bool:
        if self._needs_drop():
            return True
        kept = sum(1 for u in self._durable if u in self._desired)
        return kept < self.max_records

    def _content(self) -> tuple[dict[str, Intent], list[Intent], str]:
        kept = {
            u: r
            for u, r in self._durable.items()
            if (d := self._desired.get(u)) is not None and d.digest == r.digest
        }
        chosen = self._pending_adds()[: max(0, self.max_records - len(kept))]
        while True:
            content = {**kept, **{r.pvc_uid: r for r in chosen}}
            encoded = encode_records(content, self._encoded)
            if len(encoded) <= self.max_bytes or not chosen:
                return content, chosen, encoded
            chosen = chosen[: len(chosen) // 2]

    async def _flush(self) -> None:
        for _ in range(CONFLICT_ATTEMPTS):
            content, chosen, encoded = self._content()
            try:
                await self._write(encoded, len(content))
            except ApiError as exc:
                if exc.not_found:
                    log.warning("Journal was deleted; writing it again", journal=self.name)
                    self._obj = None
                    continue
                if is_conflict(exc) or exc.already_exists:
                    await self._merge()
                    continue
                self._withdraw(chosen, exc)
                raise
            except Exception as exc:
                self._withdraw(chosen, exc)
                raise
            self._durable = content
            self._dirty = False
            if not self._needs_drop():
                self._drops_due = None
            for record in chosen:
                self._fail_waiters(record.pvc_uid, record.digest, None)
            self._reindex()
            return
        raise ApiError(409, "Conflict", f"journal {self.name}: conflicts on every attempt")

    def _reindex(self) -> None:
        self._by_claim = {}
        for record in (*self._durable.values(), *self._desired.values()):
            self._index(record)

    def _withdraw(self, chosen: list[Intent], exc: BaseException) -> None:
        for record in chosen:
            uid = record.pvc_uid
            if self._desired.get(uid) is record:
                durable = self._durable.get(uid)
                if durable is None:
                    del self._desired[uid]
                else:
                    self._desired[uid] = durable
            failure = JournalError(f"journal write failed: {api_message(exc)}")
            failure.__cause__ = exc
            self._fail_waiters(uid, record.digest, failure)
        self._reindex()

    async def _write(self, encoded: str, count: int) -> None:
        body: JsonDict = copy.deepcopy(self._obj) if self._obj is not None else {}
        body["apiVersion"] = "coordination.k8s.io/v1"
        body["kind"] = "Lease"
        meta = body.setdefault("metadata", {})
        meta["name"] = self.name
        meta["namespace"] = self.namespace
        annotations = dict(meta.get("annotations") or {})
        annotations[strings.ANN_JOURNAL] = encoded
        annotations[strings.ANN_JOURNAL_RECORDS] = str(count)
        meta["annotations"] = annotations
        if self._obj is None:
            meta.pop("resourceVersion", None)
            out = await self.port.create(LEASES, body, self.namespace)
        else:
            out = await self.port.replace(LEASES, body, self.namespace)
        self._obj = out
        self.writes += 1

    async def _merge(self) -> None:
        try:
            obj: JsonDict | None = await self.port.get(LEASES, self.name, self.namespace)
        except ApiError as exc:
            if not exc.not_found:
                raise
            obj = None
        server, _ = decode_records(obj)
        adopted = [
            r for u, r in server.items() if u not in self._durable and u not in self._desired
        ]
        for record in adopted:
            self._desired[record.pvc_uid] = record
        self._obj = obj
        self._durable = server
        self._reindex()
        for record in adopted:
            log.info("Adopting a journal record written elsewhere", claim=record.claim_key)
            if self.on_adopt is not None:
                self.on_adopt(record)
