"""Secret references from annotations and class templates, and the Secret-reading step."""

from __future__ import annotations

import base64

import pytest

from csi_sidecars.controller import actions as a
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.resources import ApiError
from csi_sidecars.kube.secretrefs import expand as resolve_template
from csi_sidecars.snapshotter.secrets import (
    SecretRef,
    SecretRefError,
    annotation_ref,
    class_ref,
    with_secret,
)

NAME = api.PREFIXED_SNAPSHOTTER_LIST_SECRET_NAME_KEY
NS = api.PREFIXED_SNAPSHOTTER_LIST_SECRET_NAMESPACE_KEY
PARAMS = {"volumesnapshotcontent.name": "snapcontent-1"}


def ann(**values: str) -> dict[str, object]:
    return {"metadata": {"annotations": values}}


def test_annotation_ref() -> None:
    n, ns = api.ANN_DELETION_SECRET_REF_NAME, api.ANN_DELETION_SECRET_REF_NAMESPACE
    assert annotation_ref(ann(**{n: "s", ns: "default"}), n, ns, "snapshot content", "c") == (
        SecretRef("default", "s")
    )
    assert annotation_ref(ann(**{n: "s"}), n, ns, "snapshot content", "c") is None
    with pytest.raises(SecretRefError, match='snapshot content "c", err: secret name or namespace'):
        annotation_ref(ann(**{n: "", ns: "default"}), n, ns, "snapshot content", "c")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, None),
        ({NAME: "s", NS: "ns"}, SecretRef("ns", "s")),
        ({NAME: "${volumesnapshotcontent.name}-x", NS: "ns"}, SecretRef("ns", "snapcontent-1-x")),
    ],
)
def test_class_ref(params: dict[str, str], expected: SecretRef | None) -> None:
    assert class_ref(params, NAME, NS, "SnapshotterList", PARAMS) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({NAME: "s"}, "either name and namespace for SnapshotterList secrets specified"),
        ({NAME: "", NS: "ns"}, "value of either namespace or name is empty"),
        (
            {NAME: "s", NS: "${volumesnapshot.namespace}"},
            'invalid tokens: \\["volumesnapshot.namespace"\\]',
        ),
        ({NAME: "s", NS: "Bad_NS"}, '"Bad_NS" is not a valid namespace name'),
        (
            {NAME: "${volumesnapshotcontent.name}_", NS: "ns"},
            'resolved to "snapcontent-1_" which is not a valid secret name',
        ),
    ],
)
def test_class_ref_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(SecretRefError, match=message):
        class_ref(params, NAME, NS, "SnapshotterList", PARAMS)


def test_resolve_template_forms() -> None:
    assert resolve_template("$a-${b}", {"a": "1", "b": "2"}) == "1-2"


def test_with_secret_decodes_and_reports_without_values() -> None:
    ref = SecretRef("ns", "s")
    plan = with_secret(
        ref, then=lambda data: (a.Done(str(sorted(data))),), fail=lambda m: (a.Retry(m),)
    )
    read = plan[0]
    assert isinstance(read, a.Read) and (read.name, read.namespace) == ("s", "ns")
    good = {"data": {"k": base64.b64encode(b"v").decode()}}
    assert read.then(good) == (a.Done("['k']"),)
    assert read.then(None) == (
        a.Retry('error getting secret s in namespace ns: secrets "s" not found'),
    )
    bad = read.then({"data": {"k": "%%%"}})
    assert isinstance(bad[0], a.Retry) and "'k'" in bad[0].reason and "%%%" not in bad[0].reason
    assert read.on_error is not None
    assert read.on_error(ApiError(403, "Forbidden", "forbidden")) == (
        a.Retry("error getting secret s in namespace ns: forbidden"),
    )
    assert with_secret(None, then=lambda d: (a.Done(str(d)),), fail=lambda m: ()) == (a.Done("{}"),)
