"""Slim decoding (msgspec) gives what json.loads followed by the projection gives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from csi_sidecars.kube.store import Projection

FIELDS = ["metadata.uid", "metadata.annotations", "spec.csi.driver", "spec.claimRef", "status"]

OBJECTS: list[dict[str, Any]] = [
    {
        "metadata": {
            "name": "a",
            "resourceVersion": "7",
            "uid": "u",
            "annotations": {"k": "v"},
            "managedFields": [{"manager": "x", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {"csi": {"driver": "d", "volumeHandle": "h"}, "claimRef": {"name": "c"}},
        "status": {"phase": "Bound", "x": [1, 2.5, None, True, 2**70]},
    },
    {"metadata": {"name": "b", "namespace": "n"}},
    # null and odd shapes where paths expect objects: the projection treats them as missing
    {"metadata": {"name": "c"}, "spec": None},
    {"metadata": {"name": "d"}, "spec": {"csi": None, "claimRef": "weird"}},
    {"metadata": {"name": "e"}, "spec": 5},
    {"metadata": {"name": "f"}, "spec": {"csi": {"driver": ["not", "a", "string"]}}},
]


@pytest.mark.parametrize("fields", [FIELDS, None])
def test_page_items_equal_the_projection_of_json_loads(fields: list[str] | None) -> None:
    proj = Projection(fields)
    page = {"kind": "List", "metadata": {"resourceVersion": "9", "continue": "t"}, "items": OBJECTS}
    raw = json.dumps(page).encode()
    got = proj.decoder.page(raw)
    assert got["metadata"] == {"resourceVersion": "9", "continue": "t"}
    assert [proj.slim(o) for o in got["items"]] == [proj.slim(o) for o in OBJECTS]
    if fields is not None:
        assert "managedFields" not in got["items"][0]["metadata"]  # skipped while parsing
        assert "volumeHandle" not in got["items"][0]["spec"]["csi"]


@pytest.mark.parametrize("obj", OBJECTS)
def test_events_equal_the_projection_of_json_loads(obj: dict[str, Any]) -> None:
    proj = Projection(FIELDS)
    got = proj.decoder.event(json.dumps({"type": "MODIFIED", "object": obj}).encode())
    assert got["type"] == "MODIFIED"
    assert proj.slim(got["object"]) == proj.slim(obj)


def test_error_events_keep_the_whole_status() -> None:
    status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    line = json.dumps({"type": "ERROR", "object": status}).encode()
    assert Projection(FIELDS).decoder.event(line) == {"type": "ERROR", "object": status}


def test_bookmarks_keep_their_resource_version() -> None:
    line = b'{"type":"BOOKMARK","object":{"kind":"PV","metadata":{"resourceVersion":"12"}}}'
    got = Projection(FIELDS).decoder.event(line)
    assert got == {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}


def test_not_json_is_a_value_error() -> None:
    decoder = Projection(FIELDS).decoder
    with pytest.raises(ValueError):
        decoder.page(b"<html>")
    with pytest.raises(ValueError):
        decoder.event(b'{"type":')


@pytest.mark.parametrize("fields", [FIELDS, None])
def test_a_large_page_decodes_each_item_when_reached(
    fields: list[str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from csi_sidecars.kube import decode

    monkeypatch.setattr(decode, "LAZY_BYTES", 100)
    proj = Projection(fields)
    page = {"kind": "List", "metadata": {"resourceVersion": "9"}, "items": OBJECTS}
    got = proj.decoder.page(json.dumps(page).encode())
    assert got["metadata"] == {"resourceVersion": "9"}
    assert not isinstance(got["items"], list)  # an iterator, one pass
    assert [proj.slim(o) for o in got["items"]] == [proj.slim(o) for o in OBJECTS]
    assert list(got["items"]) == []
