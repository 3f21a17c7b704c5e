"""Names the attacher writes: they must equal the Go attacher's strings."""

from __future__ import annotations

import pytest

from csi_sidecars.attacher import names
from csi_sidecars.kube.objects import sanitize_name


@pytest.mark.parametrize(
    ("driver", "sanitised"),
    [
        ("ebs.csi.aws.com", "ebs-csi-aws-com"),
        ("hostpath.csi.k8s.io", "hostpath-csi-k8s-io"),
        ("csi/example", "csi-example"),
        ("plain-name", "plain-name"),
        ("ends.with.", "ends-with-X"),
        ("ends-", "ends-X"),
        ("UPPER_case.Driver", "UPPER-case-Driver"),
        ("dri\u00e9ver", "dri-ver"),
        ("a b", "a-b"),
    ],
)
def test_sanitize_driver_name(driver: str, sanitised: str):
    assert sanitize_name(driver) == sanitised
    assert names.finalizer_name(driver) == "external-attacher/" + sanitised


def test_finalizer_rejects_empty_driver_name():
    with pytest.raises(ValueError):
        names.finalizer_name("")


@pytest.mark.parametrize(
    ("driver", "lease"),
    [
        ("ebs.csi.aws.com", "external-attacher-leader-ebs-csi-aws-com"),
        ("csi/example.", "external-attacher-leader-csi-example-X"),
    ],
)
def test_lease_name(driver: str, lease: str):
    assert names.lease_name(driver) == lease


def test_fixed_strings_match_go():
    assert names.NODE_ID_ANNOTATION == "csi.alpha.kubernetes.io/node-id"
    assert names.VA_QUEUE == "csi-attacher-va"
    assert names.PV_QUEUE == "csi-attacher-pv"
    assert names.MIGRATED_TO_ANNOTATION == "pv.kubernetes.io/migrated-to"
    assert (names.STATUS_ATTACH_ERROR, names.STATUS_DETACH_ERROR) == ("attachError", "detachError")
    assert (names.ERROR_MESSAGE, names.ERROR_TIME, names.ERROR_CODE) == (
        "message",
        "time",
        "errorCode",
    )


def test_our_annotations_are_outside_kubernetes_domains():
    for key in (
        names.VOLUME_HANDLE_ANNOTATION,
        names.SECRET_NAME_ANNOTATION,
        names.SECRET_NAMESPACE_ANNOTATION,
    ):
        domain = key.split("/")[0]
        assert not domain.endswith(("kubernetes.io", "k8s.io"))
        assert len(key.split("/")[1]) <= 63
