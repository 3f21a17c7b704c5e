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


# -- PageSplitter: a list answer decoded object by object while it arrives -----------------


def _api_list(items: list[dict[str, Any]], **extra: Any) -> bytes:
    """A list answer as the API server writes it: compact, the items last."""
    page = {"kind": "PersistentVolumeList", "apiVersion": "v1", **extra, "items": items}
    page.setdefault("metadata", {"resourceVersion": "42"})
    page["items"] = page.pop("items")
    return json.dumps(page, separators=(",", ":")).encode()


def _split(proj: Projection, body: bytes, size: int) -> tuple[list[Any], dict[str, Any], int]:
    """Feed ``body`` in pieces of ``size``: (every object, the finished page, most bytes held)."""
    splitter = proj.decoder.splitter()
    out: list[Any] = []
    held = 0
    for at in range(0, len(body), size):
        out.extend(splitter.feed(body[at : at + size]))
        held = max(held, len(splitter._buf))
    page = splitter.finish()
    out.extend(page["items"])
    return out, page, held


# Objects whose nested lists of objects open with the same key as the items do: the mark
# '},{"metadata":' occurs inside them (also inside a string, escaped), so cuts there must fail.
TRICKY = [
    {
        "metadata": {
            "name": f"pv-{i}",
            "resourceVersion": str(i),
            "uid": f"u{i}",
            "annotations": {"note": '},{"metadata":{"name":"fake"}}'},
            "managedFields": [{"metadata": {"x": 1}}, {"metadata": "y"}],
        },
        "spec": {"csi": {"driver": "d", "volumeHandle": f"h{i}"}, "list": [{"metadata": 2}]},
        "status": {"phase": "Available" if i % 2 else "Bound"},
    }
    for i in range(300)
] + OBJECTS


@pytest.mark.parametrize("fields", [FIELDS, None])
@pytest.mark.parametrize("size", [1, 13, 251, 4096, 10**7])
def test_splitter_gives_the_objects_of_the_whole_page(fields: list[str] | None, size: int) -> None:
    proj = Projection(fields)
    body = _api_list(TRICKY)
    got, page, _ = _split(proj, body, size)
    assert got == list(proj.decoder.page(body)["items"])  # exactly what the whole page gives
    assert [proj.slim(o) for o in got] == [proj.slim(o) for o in TRICKY]
    assert page["metadata"] == {"resourceVersion": "42"}


def test_splitter_hands_objects_out_as_they_arrive_and_never_holds_the_answer() -> None:
    proj = Projection(FIELDS)
    body = _api_list(TRICKY * 20)  # about 2.5 MB
    splitter = proj.decoder.splitter()
    handed: list[int] = []
    held = 0
    for at in range(0, len(body), 2**16):
        handed.append(len(splitter.feed(body[at : at + 2**16])))
        held = max(held, len(splitter._buf))
    rest = splitter.finish()["items"]
    assert sum(handed) + len(rest) == len(TRICKY) * 20
    assert len(rest) <= 1  # the last object only: the rest came out piece by piece
    assert all(n > 0 for n in handed[1:])
    assert held < 2**16 + 2000, held  # at most one piece and one object


def test_splitter_custom_resources_open_with_api_version() -> None:
    proj = Projection(["spec", "status"])
    items = [
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": f"vs-{i}", "namespace": "default"},
            "spec": {"source": {"persistentVolumeClaimName": "c"}},
            "status": {"readyToUse": bool(i % 2)},
        }
        for i in range(50)
    ]
    splitter = proj.decoder.splitter()
    body = _api_list(items)
    early = [obj for at in range(0, len(body), 97) for obj in splitter.feed(body[at : at + 97])]
    assert len(early) == 49
    got = early + splitter.finish()["items"]
    assert [proj.slim(o) for o in got] == [proj.slim(o) for o in items]


@pytest.mark.parametrize(
    "body",
    [
        # items before metadata, spaces between objects, an empty list, a continue token
        json.dumps({"items": TRICKY[:20], "metadata": {"resourceVersion": "42"}}).encode(),
        json.dumps(
            {"kind": "L", "metadata": {"resourceVersion": "42"}, "items": TRICKY[:20]}
        ).encode(),
        _api_list([]),
        _api_list(TRICKY[:20], metadata={"resourceVersion": "42", "continue": "abc"}),
        # something after the items
        _api_list(TRICKY[:20])[:-1] + b',"extra":{"a":1}}',
    ],
)
def test_splitter_other_layouts_give_the_same_page(body: bytes) -> None:
    proj = Projection(FIELDS)
    whole = proj.decoder.page(body)
    got, page, _ = _split(proj, body, 64)
    assert got == list(whole["items"])
    assert page["metadata"] == whole["metadata"]


def test_splitter_gives_up_cutting_after_many_misses() -> None:
    from csi_sidecars.kube import decode

    proj = Projection(None)
    deep = {"metadata": {"name": "deep"}, "spec": [{"metadata": i} for i in range(20)]}
    items = [deep, *TRICKY[:5]]
    splitter = proj.decoder.splitter()
    body = _api_list(items)
    early = splitter.feed(body)
    assert early == [] and splitter._whole  # 20 marks inside the first object: stop trying
    assert splitter._misses == decode.MAX_MISSES
    assert splitter.finish()["items"] == items


def test_splitter_not_json_is_a_value_error() -> None:
    splitter = Projection(FIELDS).decoder.splitter()
    assert splitter.feed(b'{"metadata":{},"items":[{"metadata":{"name":"a"}},{"metadata":{"n') == [
        {"metadata": {"name": "a"}}
    ]
    with pytest.raises(ValueError):
        splitter.finish()
