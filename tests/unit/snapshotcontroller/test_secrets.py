"""Secret references from class parameters (Go's TestGetSecretReference and os.Expand)."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.secretrefs import expand
from csi_sidecars.snapshotcontroller.secrets import (
    GROUP_SNAPSHOTTER,
    SNAPSHOTTER,
    SecretRefError,
    secret_reference,
)

NAME = "csi.storage.k8s.io/snapshotter-secret-name"
NAMESPACE = "csi.storage.k8s.io/snapshotter-secret-namespace"


def ref(params: dict[str, str], **kw: object) -> tuple[str, str] | None:
    args: dict = {
        "content_name": "snapcontentname",
        "owner_name": "snapshotname",
        "owner_namespace": "snapshotnamespace",
    }
    args.update(kw)
    return secret_reference(SNAPSHOTTER, params, **args)


def test_no_params() -> None:
    assert ref({}) is None


def test_simple_valid() -> None:
    assert ref({NAME: "name", NAMESPACE: "ns"}) == ("ns", "name")


def test_unbraced_token_stops_at_the_dot() -> None:
    # os.Expand reads "$volumesnapshot.namespace" as the token "volumesnapshot"
    with pytest.raises(SecretRefError, match='invalid tokens: \\["volumesnapshot"\\]'):
        ref({NAME: "n", NAMESPACE: "$volumesnapshot.namespace"})


def test_templates_resolve_braced() -> None:
    got = ref(
        {
            NAME: "${volumesnapshot.name}-${volumesnapshotcontent.name}",
            NAMESPACE: "${volumesnapshot.namespace}",
        }
    )
    assert got == ("snapshotnamespace", "snapshotname-snapcontentname")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {NAMESPACE: "foo"},
            "failed to get name and namespace template from params: either name "
            "and namespace for Snapshotter secrets specified, Both must be specified",
        ),
        (
            {NAME: "", NAMESPACE: "ns"},
            "failed to get name and namespace template from params: "
            "Snapshotter secrets specified in parameters but value of either namespace or name is "
            "empty",
        ),
        ({NAME: "bad name", NAMESPACE: "ns"}, '"bad name" is not a valid secret name'),
        (
            {NAME: "x", NAMESPACE: "${volumesnapshotcontent.name}_x"},
            '"${volumesnapshotcontent.name}_x" resolved to "snapcontentname_x" which is not '
            "a valid namespace name",
        ),
        (
            {NAME: "static-${volumesnapshot.annotations['akey']}", NAMESPACE: "ns"},
            "error resolving value \"static-${volumesnapshot.annotations['akey']}\": "
            "invalid tokens: [\"volumesnapshot.annotations['akey']\"]",
        ),
        # the snapshot's name is not a namespace token
        (
            {NAME: "x", NAMESPACE: "${volumesnapshot.name}"},
            'error resolving value "${volumesnapshot.name}": invalid tokens: '
            '["volumesnapshot.name"]',
        ),
    ],
)
def test_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(SecretRefError) as err:
        ref(params)
    assert str(err.value) == message


def test_without_the_snapshot_only_the_content_name_resolves() -> None:
    params = {
        "csi.storage.k8s.io/group-snapshotter-secret-name": "${volumegroupsnapshotcontent.name}",
        "csi.storage.k8s.io/group-snapshotter-secret-namespace": "kube-system",
    }
    got = secret_reference(
        GROUP_SNAPSHOTTER,
        params,
        content_name="gc",
        owner_name=None,
        owner_namespace=None,
        group=True,
    )
    assert got == ("kube-system", "gc")
    params["csi.storage.k8s.io/group-snapshotter-secret-name"] = "${volumegroupsnapshot.name}"
    with pytest.raises(SecretRefError):
        secret_reference(
            GROUP_SNAPSHOTTER,
            params,
            content_name="gc",
            owner_name=None,
            owner_namespace=None,
            group=True,
        )


@pytest.mark.parametrize(
    ("template", "want"),
    [
        ("plain", "plain"),
        ("$a-$b", "A-B"),
        ("${a}${b}", "AB"),
        ("$$", ""),  # "$$" is the special variable "$": unknown -> error below; here mapped
        ("${}x", "x"),  # bad syntax is eaten, as in Go
        ("x$", "x$"),  # a trailing dollar stays
        ("a$.b", "a$.b"),  # no name after the dollar: kept
    ],
)
def test_expand_like_os_expand(template: str, want: str) -> None:
    assert expand(template, {"a": "A", "b": "B", "$": ""}) == want
