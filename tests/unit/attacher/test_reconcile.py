"""ListVolumes reconciliation."""

from __future__ import annotations

from typing import Any

from csi_sidecars.attacher import names
from csi_sidecars.attacher.reconcile import Mismatch, published_nodes, reconcile
from csi_sidecars.csi.messages import csi_pb2
from tests.unit.attacher.sim import RPC, config, make_csinode, make_pv, make_va

CFG = config(RPC.LIST_VOLUMES, RPC.LIST_VOLUMES_PUBLISHED_NODES)
Entry = csi_pb2.ListVolumesResponse.Entry


def entry(volume_id: str, *nodes: str) -> Any:
    return Entry(
        volume=csi_pb2.Volume(volume_id=volume_id),
        status=csi_pb2.ListVolumesResponse.VolumeStatus(published_node_ids=list(nodes)),
    )


def test_published_nodes_skips_incomplete_entries_and_accumulates():
    page1 = [entry("v1", "n1", "n2"), Entry(volume=csi_pb2.Volume(volume_id="v2"))]
    page2 = [Entry(status=csi_pb2.ListVolumesResponse.VolumeStatus()), entry("v3")]
    out = published_nodes(page1)
    assert published_nodes(page2, out) is out
    assert out == {"v1": ["n1", "n2"], "v3": []}


def run(vas: list[dict[str, Any]], published: dict[str, list[str]], pvs: dict[str, Any]) -> Any:
    csinodes = {"node1": make_csinode("node1", "id-1"), "node2": make_csinode("node2", "id-2")}
    return reconcile(vas, published, cfg=CFG, get_pv=pvs.get, get_csinode=csinodes.get)


def test_mismatches_in_both_directions():
    pvs = {"pv1": make_pv("pv1", handle="h1"), "pv2": make_pv("pv2", handle="h2")}
    vas = [
        make_va("ok", pv="pv1", attached=True),  # published on id-1
        make_va("lost", pv="pv2", attached=True),  # detached behind our back
        make_va("extra", pv="pv1", node="node2", attached=False),  # published, not attached
        make_va("other", pv="pv2", attacher="other.driver", attached=True),
    ]
    result = run(vas, {"h1": ["id-1", "id-2"]}, pvs)
    assert result.mismatches == [
        Mismatch("lost", "h2", "id-1", attached=True, published=False),
        Mismatch("extra", "h1", "id-2", attached=False, published=True),
    ]
    assert result.skipped == []


def test_node_id_and_handle_fallbacks_and_skips():
    annotated = {names.NODE_ID_ANNOTATION: "id-9", names.VOLUME_HANDLE_ANNOTATION: "h9"}
    vas = [
        make_va("no-csinode", pv="gone", node="node9", attached=True, annotations=annotated),
        make_va("no-node-id", pv="pv1", node="node9", attached=True),
        make_va("no-pv", pv="gone", attached=True),
        make_va("inline", pv=None, inline={"csi": {"volumeHandle": "hi"}}, attached=True),
    ]
    result = run(vas, {"h9": ["id-9"], "hi": ["id-1"]}, {"pv1": make_pv()})
    assert result.mismatches == []
    assert [name for name, _ in result.skipped] == ["no-node-id", "no-pv"]
    assert 'persistentvolume "gone" not found' in result.skipped[1][1]
