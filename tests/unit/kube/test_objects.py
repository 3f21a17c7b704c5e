"""Object body readers: one absent-field policy; strict Secret decoding; the name sanitiser."""

from __future__ import annotations

import base64

import pytest

from csi_sidecars.kube import objects as o


def test_readers_return_empty_values_for_absent_or_malformed_fields() -> None:
    for obj in (None, {}, {"metadata": None}, {"metadata": "x", "spec": 3}):
        assert o.meta(obj) == {} and o.spec(obj) == {} and o.status(obj) == {}
        assert o.name(obj) == "" and o.namespace(obj) == "" and o.uid(obj) == ""
        assert o.finalizers(obj) == [] and o.annotations_of(obj) == {} and o.labels_of(obj) == {}
        assert not o.is_deleting(obj) and not o.has_field(obj, "finalizers")
    obj = {
        "metadata": {
            "name": "a",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "7",
            "finalizers": ["f", 3],
            "annotations": {"k": "v", "n": 1},
            "deletionTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"csi": {"driver": "d"}},
    }
    assert (o.name(obj), o.namespace(obj), o.uid(obj), o.resource_version(obj)) == (
        "a",
        "ns",
        "u",
        "7",
    )
    assert o.finalizers(obj) == ["f"] and o.annotations_of(obj) == {"k": "v"}
    assert o.is_deleting(obj) and o.has_field(obj, "finalizers")
    assert o.has_field({"metadata": {"finalizers": []}}, "finalizers")
    assert o.dig(obj, "spec", "csi", "driver") == "d"
    assert o.dig(obj, "spec", "nope", "driver") is None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_data_is_strict_and_never_shows_a_value() -> None:
    secret = {"metadata": {"name": "s", "namespace": "ns"}, "data": {"a": _b64("x")}}
    assert o.secret_data(secret) == {"a": "x"}
    assert o.secret_data({**secret, "stringData": {"b": "y", "a": "z"}}) == {"a": "x", "b": "y"}
    bad = {"metadata": {"name": "s", "namespace": "ns"}, "data": {"pw": "not base64!!hunter2"}}
    with pytest.raises(o.SecretError) as err:
        o.secret_data(bad)
    assert "ns/s" in str(err.value) and "'pw'" in str(err.value)
    assert "hunter2" not in str(err.value)
    latin = {"metadata": {"name": "s"}, "data": {"k": base64.b64encode(b"\xff").decode()}}
    with pytest.raises(o.SecretError, match="my/ref"):
        o.secret_data(latin, "my/ref")


@pytest.mark.parametrize(
    ("text", "want"),
    [("ebs.csi.aws.com", "ebs-csi-aws-com"), ("foo/", "foo-X"), ("a_b-c", "a-b-c"), ("", "")],
)
def test_sanitize_name(text: str, want: str) -> None:
    assert o.sanitize_name(text) == want


def test_events() -> None:
    assert o.normal("R", "m") == o.Event("Normal", "R", "m")
    assert o.warning("R", "m").type == "Warning"
