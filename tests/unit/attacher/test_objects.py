"""Object accessors: secrets, pods using a claim, node IDs."""

from __future__ import annotations

import pytest

from csi_sidecars.attacher.events import PodSelector, pod_selector, pod_uses_claim
from csi_sidecars.attacher.objects import csinode_node_id, secret_data
from tests.unit.attacher.sim import make_csinode, make_pv, make_secret


def test_secret_data_decodes_base64():
    assert secret_data(make_secret({"user": "admin", "pw": "p@ss wörd"})) == {
        "user": "admin",
        "pw": "p@ss wörd",
    }
    assert secret_data({}) == {}


@pytest.mark.parametrize("raw", ["not base64!", "//79"])  # bad base64; valid base64, bad UTF-8
def test_secret_data_errors_name_the_key_not_the_value(raw: str):
    with pytest.raises(ValueError) as info:
        secret_data({"data": {"password": raw}})
    assert "password" in str(info.value) and raw not in str(info.value)


def test_csinode_node_id():
    assert csinode_node_id(make_csinode(node_id="x"), "hostpath.csi.k8s.io") == "x"
    assert csinode_node_id(make_csinode(driver="a"), "hostpath.csi.k8s.io") is None
    assert csinode_node_id({"spec": {"drivers": None}}, "a") is None
    assert csinode_node_id(None, "a") is None


def pod(ns: str, node: str, *claims: str) -> dict[str, object]:
    volumes = [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]
    volumes.append({"name": "cfg", "configMap": {"name": "x"}})
    return {"metadata": {"namespace": ns}, "spec": {"nodeName": node, "volumes": volumes}}


def test_pod_selector_and_matching():
    selector = pod_selector(make_pv(claim=("app", "data")), "node1")
    assert selector == PodSelector("app", "data", "node1")
    assert pod_uses_claim(pod("app", "node1", "logs", "data"), selector)
    assert not pod_uses_claim(pod("app", "node2", "data"), selector)
    assert not pod_uses_claim(pod("other", "node1", "data"), selector)
    assert not pod_uses_claim(pod("app", "node1", "logs"), selector)
    assert pod_selector(make_pv(claim=None), "node1") is None
    assert pod_selector(None, "node1") is None
