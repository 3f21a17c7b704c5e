"""ControllerPublish/Unpublish request builders and the access-mode mapping."""

from __future__ import annotations

import pytest

from csi_sidecars.attacher.objects import SourceError
from csi_sidecars.attacher.request import (
    RequestError,
    access_mode,
    build_publish_request,
    build_unpublish_request,
    volume_capability,
)
from csi_sidecars.csi.messages import csi_pb2
from tests.unit.attacher.sim import make_pv

M = csi_pb2.VolumeCapability.AccessMode

RWO, ROX, RWX, RWOP = "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"

# (PV access modes, mode without SINGLE_NODE_MULTI_WRITER, mode with it); None = error.
ACCESS_MODES = [
    ([RWO], M.SINGLE_NODE_WRITER, M.SINGLE_NODE_MULTI_WRITER),
    ([ROX], M.MULTI_NODE_READER_ONLY, M.MULTI_NODE_READER_ONLY),
    ([RWX], M.MULTI_NODE_MULTI_WRITER, M.MULTI_NODE_MULTI_WRITER),
    ([RWOP], M.SINGLE_NODE_WRITER, M.SINGLE_NODE_SINGLE_WRITER),
    ([RWO, RWO], M.SINGLE_NODE_WRITER, M.SINGLE_NODE_MULTI_WRITER),
    ([RWX, RWO], M.MULTI_NODE_MULTI_WRITER, M.MULTI_NODE_MULTI_WRITER),
    ([RWX, ROX], M.MULTI_NODE_MULTI_WRITER, M.MULTI_NODE_MULTI_WRITER),
    ([RWO, ROX, RWX], M.MULTI_NODE_MULTI_WRITER, M.MULTI_NODE_MULTI_WRITER),
    ([ROX, ROX], M.MULTI_NODE_READER_ONLY, M.MULTI_NODE_READER_ONLY),
    ([RWO, ROX], None, None),
    ([RWOP, RWO], None, None),
    ([RWOP, RWX], None, None),
    ([RWOP, ROX], None, None),
    ([], None, None),
    (["Bogus"], None, None),
]


@pytest.mark.parametrize(("modes", "plain", "multi"), ACCESS_MODES)
@pytest.mark.parametrize("snmw", [False, True])
def test_access_mode_table(modes: list[str], plain: int | None, multi: int | None, snmw: bool):
    expected = multi if snmw else plain
    if expected is None:
        with pytest.raises(RequestError):
            access_mode(modes, snmw)
    else:
        assert access_mode(modes, snmw) == expected


@pytest.mark.parametrize(
    ("modes", "message"),
    [
        (
            [RWO, ROX],
            "CSI does not support ReadOnlyMany and ReadWriteOnce on the same PersistentVolume",
        ),
        (
            [RWOP, RWO],
            "Kubernetes does not support use of ReadWriteOncePod with other access modes on the "
            "same PersistentVolume",
        ),
        ([], "unsupported AccessMode combination: []"),
        (["Foo", "Bar"], "unsupported AccessMode combination: [Foo Bar]"),
    ],
)
def test_access_mode_error_messages_match_go(modes: list[str], message: str):
    with pytest.raises(RequestError) as info:
        access_mode(modes, False)
    assert str(info.value) == message


def test_mount_capability_uses_pv_fstype_and_mount_options():
    pv = make_pv(fs_type="xfs", mount_options=["noatime", "discard"])
    cap = volume_capability(pv["spec"], single_node_multi_writer=False, default_fstype="ext4")
    assert cap.WhichOneof("access_type") == "mount"
    assert cap.mount.fs_type == "xfs"
    assert list(cap.mount.mount_flags) == ["noatime", "discard"]
    assert cap.access_mode.mode == M.SINGLE_NODE_WRITER


@pytest.mark.parametrize(
    ("fs_type", "default", "expected"),
    [(None, "ext4", "ext4"), ("", "ext4", "ext4"), ("xfs", "ext4", "xfs"), (None, "", "")],
)
def test_fstype_falls_back_to_default_fstype(fs_type: str | None, default: str, expected: str):
    pv = make_pv(fs_type=fs_type)
    cap = volume_capability(pv["spec"], single_node_multi_writer=False, default_fstype=default)
    assert cap.mount.fs_type == expected
    assert list(cap.mount.mount_flags) == []


def test_block_capability_ignores_fstype_and_mount_options():
    pv = make_pv(block=True, fs_type="xfs", mount_options=["ro"], access_modes=[RWX])
    cap = volume_capability(pv["spec"], single_node_multi_writer=True, default_fstype="ext4")
    assert cap.WhichOneof("access_type") == "block"
    assert not cap.HasField("mount")
    assert cap.access_mode.mode == M.MULTI_NODE_MULTI_WRITER


@pytest.mark.parametrize(
    ("pv_read_only", "publish_readonly_cap", "expected"),
    [
        (True, True, True),
        (True, False, False),
        (False, True, False),
        (None, True, False),
        (None, False, False),
    ],
)
def test_readonly_only_with_publish_readonly(
    pv_read_only: bool | None, publish_readonly_cap: bool, expected: bool
):
    pv = make_pv(read_only=pv_read_only, access_modes=[ROX])
    req = build_publish_request(
        pv["spec"], "node-a", supports_publish_readonly=publish_readonly_cap
    )
    assert req.readonly is expected


def test_publish_request_fields():
    pv = make_pv(
        handle="vol-42",
        attributes={"a": "1", "storage.kubernetes.io/csiProvisionerIdentity": "x"},
        fs_type="ext4",
        access_modes=[RWOP],
    )
    req = build_publish_request(
        pv["spec"],
        "node-a",
        secrets={"user": "admin", "password": "hunter2"},
        supports_single_node_multi_writer=True,
    )
    assert req.volume_id == "vol-42"
    assert req.node_id == "node-a"
    assert dict(req.volume_context) == {
        "a": "1",
        "storage.kubernetes.io/csiProvisionerIdentity": "x",
    }
    assert dict(req.secrets) == {"user": "admin", "password": "hunter2"}
    assert req.volume_capability.access_mode.mode == M.SINGLE_NODE_SINGLE_WRITER
    assert req.volume_capability.mount.fs_type == "ext4"
    assert req.readonly is False


def test_publish_request_without_secrets_or_attributes():
    req = build_publish_request(make_pv()["spec"], "n")
    assert dict(req.secrets) == {}
    assert dict(req.volume_context) == {}


def test_publish_request_rejects_non_csi_and_bad_modes():
    with pytest.raises(SourceError, match="non-csi source"):
        build_publish_request({"accessModes": [RWO], "nfs": {"server": "x"}}, "n")
    with pytest.raises(SourceError, match=r"in-tree volume plugin kubernetes\.io/gce-pd"):
        build_publish_request({"accessModes": [RWO], "gcePersistentDisk": {"pdName": "x"}}, "n")
    with pytest.raises(RequestError):
        build_publish_request(make_pv(access_modes=[RWO, ROX])["spec"], "n")


def test_unpublish_request():
    req = build_unpublish_request("vol-1", "node-a", secrets={"k": "v"})
    assert isinstance(req, csi_pb2.ControllerUnpublishVolumeRequest)
    assert (req.volume_id, req.node_id, dict(req.secrets)) == ("vol-1", "node-a", {"k": "v"})
    assert dict(build_unpublish_request("v", "n").secrets) == {}
