"""cri: the hand-declared CRI messages encode and decode with the v1 field numbers."""

from __future__ import annotations

from csi_sidecars.playground import cri


def test_a_list_reply_in_cri_wire_format_decodes() -> None:
    # ListPodSandboxResponse{items: [PodSandbox{id: "abc", metadata: {name: "p", uid: "u",
    # namespace: "ns"}, state: SANDBOX_NOTREADY, created_at: 5 (unknown here)}]}, by hand:
    metadata = b"\x0a\x01p" + b"\x12\x01u" + b"\x1a\x02ns"
    sandbox = b"\x0a\x03abc" + b"\x12" + bytes([len(metadata)]) + metadata + b"\x18\x01"
    sandbox += b"\x20\x05"  # created_at, not declared: ignored
    wire = b"\x0a" + bytes([len(sandbox)]) + sandbox
    reply = cri._CLASSES["ListPodSandboxResponse"].FromString(wire)
    item = reply.items[0]
    assert (item.id, item.metadata.name, item.metadata.uid, item.metadata.namespace) == (
        "abc",
        "p",
        "u",
        "ns",
    )
    assert item.state == 1


def test_stop_and_remove_requests_carry_the_sandbox_id_as_field_one() -> None:
    for name in ("StopPodSandboxRequest", "RemovePodSandboxRequest"):
        message = cri._CLASSES[name](pod_sandbox_id="abc")
        assert message.SerializeToString() == b"\x0a\x03abc"
