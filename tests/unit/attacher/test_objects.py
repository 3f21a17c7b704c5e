"""Object accessors: secrets (the shared strict reader), pods using a claim, node IDs."""

from __future__ import annotations

import pytest

from csi_sidecars.attacher.events import PodSelector, pod_selector, pod_uses_claim
from csi_sidecars.attacher.objects import csinode_node_id
from csi_sidecars.kube.objects import SecretError, secret_data
from tests.unit.attacher.sim import make_csinode, make_pod, make_pv, make_secret


def test_secret_data_decodes_base64():
    assert secret_data(make_secret({"user": "admin", "pw": "p@ss wörd"})) == {
        "user": "admin",
        "pw": "p@ss wörd",
    }
    assert secret_data({}) == {}


@pytest.mark.parametrize("raw", ["not base64!", "//79"])  # bad base64; valid base64, bad UTF-8
def test_secret_data_errors_name_the_key_not_the_value(raw: str):
    with pytest.raises(SecretError) as info:
        secret_data({"data": {"password": raw}}, "ns/s")
    assert "password" in str(info.value) and raw not in str(info.value)
    assert "ns/s" in str(info.value)


def test_csinode_node_id():
    assert csinode_node_id(make_csinode(node_id="x"), "hostpath.csi.k8s.io") == "x"
    assert csinode_node_id(make_csinode(driver="a"), "hostpath.csi.k8s.io") is None
    assert csinode_node_id({"spec": {"drivers": None}}, "a") is None
    assert csinode_node_id(None, "a") is None


def test_pod_selector_and_matching():
    selector = pod_selector(make_pv(claim=("app", "data")), "node1")
    assert selector == PodSelector("app", "data", "node1")
    assert pod_uses_claim(make_pod("p", "app", "node1", "logs", "data"), selector)
    assert not pod_uses_claim(make_pod("p", "app", "node2", "data"), selector)
    assert not pod_uses_claim(make_pod("p", "other", "node1", "data"), selector)
    assert not pod_uses_claim(make_pod("p", "app", "node1", "logs"), selector)
    assert pod_selector(make_pv(claim=None), "node1") is None
    assert pod_selector(None, "node1") is None
