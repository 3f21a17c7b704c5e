"""Status mirroring from content to snapshot, and the lag check that wakes the snapshot."""

from __future__ import annotations

from csi_sidecars.snapshotcontroller.status import needs_update, rfc3339, snapshot_status
from tests.unit.snapshotcontroller.fixtures import CREATED, CREATED_NS, vs, vsc


def test_rfc3339_whole_seconds_utc() -> None:
    assert rfc3339(CREATED_NS + 999_999_999) == CREATED


def test_error_compared_by_value_not_identity() -> None:
    """Go compares error pointers, so it rewrites the status on every sync while both carry an
    error; an equal error is no write here."""
    content = vsc("c", "s", "u", handle="h", ready=False, error="boom")
    snap = vs("s", "u", claim="x", bound="c", ready=False, error="boom")
    assert snapshot_status(snap, content).patch is None
    changed = vsc("c", "s", "u", handle="h", ready=False, error="worse")
    patch = snapshot_status(snap, changed).patch
    assert patch is not None and patch["status"]["error"]["message"] == "worse"


def test_zero_restore_size_is_replaced_by_a_real_one_only() -> None:
    snap = vs("s", "u", claim="x", bound="c", ready=True, size="0")
    assert snapshot_status(snap, vsc("c", "s", "u", handle="h", ready=True, size=0)).patch is None
    patch = snapshot_status(snap, vsc("c", "s", "u", handle="h", ready=True, size=5)).patch
    assert patch == {"status": {"restoreSize": "5"}}
    big = vs("s", "u", claim="x", bound="c", ready=True, size="1Gi")
    assert snapshot_status(big, vsc("c", "s", "u", handle="h", ready=True, size=7)).patch is None


def test_needs_update() -> None:
    content = vsc("c", "s", "u", handle="h", ready=True, created=CREATED_NS, size=1)
    assert needs_update(vs("s", "u", claim="x"), content)  # no status yet
    assert not needs_update(vs("s", "u", claim="x"), vsc("c", "s", "u", handle="h"))
    synced = vs("s", "u", claim="x", bound="c", ready=True, created=CREATED, size="1")
    assert not needs_update(synced, content)
    assert needs_update(
        vs("s", "u", claim="x", bound="c", ready=False, created=CREATED, size="1"), content
    )
    assert needs_update(
        vs("s", "u", claim="x", bound="c", ready=True, created=CREATED, size="0"), content
    )
