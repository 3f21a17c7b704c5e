"""Flag syntax of ``csi-sidecars csi``: sizes, capabilities, maps, secrets, request merging."""

from __future__ import annotations

from pathlib import Path

import pytest

from csi_sidecars.csicli import arguments as a
from csi_sidecars.csicli.command import split_short_equals


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4096", 4096),
        ("5Gi", 5 << 30),
        ("5GiB", 5 << 30),
        ("100M", 100_000_000),
        ("1.5Gi", 3 << 29),
        ("0.1Ki", 103),  # fractions round up
        ("1k", 1000),
        ("2Ei", 2 << 60),
        ("1e3", 1000),  # a Kubernetes quantity in exponent form
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert a.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "-1Gi", "5 gigs", "5gi", "Gi", "8Ei"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(a.ArgumentError):
        a.parse_size(text)


@pytest.mark.parametrize(
    ("value", "text"), [(5 << 30, "5Gi"), (1536 << 20, "1536Mi"), (1000, "1000"), (0, "0")]
)
def test_format_size(value: int, text: str) -> None:
    assert a.format_size(value) == text


def test_parse_capability() -> None:
    assert a.parse_capability("MULTI_NODE_MULTI_WRITER,mount,ext4") == {
        "access_mode": {"mode": "MULTI_NODE_MULTI_WRITER"},
        "mount": {"fs_type": "ext4"},
    }
    assert a.parse_capability("single-node-writer,block") == {
        "access_mode": {"mode": "SINGLE_NODE_WRITER"},
        "block": {},
    }
    assert a.parse_capability("5,mount,xfs,noatime,volume_mount_group=1000,ro") == {
        "access_mode": {"mode": "MULTI_NODE_MULTI_WRITER"},
        "mount": {"fs_type": "xfs", "mount_flags": ["noatime", "ro"], "volume_mount_group": "1000"},
    }
    assert a.parse_capability("SINGLE_NODE_READER_ONLY,mount,,noexec") == {
        "access_mode": {"mode": "SINGLE_NODE_READER_ONLY"},
        "mount": {"mount_flags": ["noexec"]},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SINGLE_NODE_WRITER", "use MODE,TYPE"),
        ("WRITE_MANY,mount", "unknown access mode"),
        ("9,mount", "unknown access mode"),
        ("SINGLE_NODE_WRITER,tape", "mount or block"),
        ("SINGLE_NODE_WRITER,block,ext4", "block volume takes no fs options"),
    ],
)
def test_parse_capability_rejects(text: str, message: str) -> None:
    with pytest.raises(a.ArgumentError, match=message):
        a.parse_capability(text)


def test_parse_map_keeps_commas_inside_values() -> None:
    assert a.parse_map(["a=1,b=2", "c=x,y,z=3"]) == {"a": "1", "b": "2", "c": "x,y", "z": "3"}
    assert a.parse_map(["k=v=w"]) == {"k": "v=w"}
    with pytest.raises(a.ArgumentError, match="use key=value"):
        a.parse_map(["novalue"])
    with pytest.raises(a.ArgumentError):
        a.parse_map(["=v"])


def test_topologies() -> None:
    assert a.parse_topologies(["zone=a,region=r"]) == [{"segments": {"zone": "a", "region": "r"}}]


@pytest.mark.parametrize(
    "text",
    [
        '{"user": "u", "password": "p,w"}',
        "user: u\npassword: 'p,w'\n",
        "# comment\nuser=u\npassword=p,w\n",
    ],
)
def test_secrets_file_formats(tmp_path: Path, text: str) -> None:
    path = tmp_path / "s"
    path.write_text(text)
    assert a.load_secrets(str(path)) == {"user": "u", "password": "p,w"}


def test_secrets_env_wins_per_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s"
    path.write_text("user: u\npassword: old\n")
    monkeypatch.setenv("SECRETS", "password=new,extra=1")
    assert a.load_secrets(str(path), "SECRETS") == {"user": "u", "password": "new", "extra": "1"}
    assert a.load_secrets() is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- supersecret\n", "must be a mapping"),
        ('{"bad key!": "supersecret"}', "may hold only"),
        ('{"k": {"nested": "supersecret"}}', "must be a string"),
        ('{"k": "supersecret"', "invalid JSON"),
        ("k: [supersecret\n", "not a YAML or JSON mapping"),
    ],
)
def test_bad_secrets_never_quote_values(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s"
    path.write_text(text)
    with pytest.raises(a.ArgumentError, match=message) as info:
        a.load_secrets(str(path))
    assert "supersecret" not in str(info.value)


def test_missing_secret_sources(tmp_path: Path) -> None:
    with pytest.raises(a.ArgumentError, match="cannot read secrets file"):
        a.load_secrets(str(tmp_path / "missing"))
    with pytest.raises(a.ArgumentError, match="NOT_SET_ANYWHERE"):
        a.load_secrets(env_var="NOT_SET_ANYWHERE")


def test_load_request(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: x\ncapacity_range:\n  required_bytes: 1Gi\n")
    assert a.expand_sizes(a.load_request(str(path))) == {
        "name": "x",
        "capacity_range": {"required_bytes": 1 << 30},
    }
    path.write_text("- a\n")
    with pytest.raises(a.ArgumentError, match="must be a mapping"):
        a.load_request(str(path))
    path.write_text("a: [\n")
    with pytest.raises(a.ArgumentError, match="invalid YAML/JSON at line"):
        a.load_request(str(path))


def test_merge_request_layers_and_spellings() -> None:
    merged = a.merge_request(
        {"volume_capabilities": ["default"], "name": "d"},
        {"volumeCapabilities": ["file"], "name": "f", "parameters": {"a": "1"}},
        {"name": "flag", "parameters": None},
    )
    assert merged == {"volumeCapabilities": ["file"], "name": "flag", "parameters": {"a": "1"}}
    assert a.has_field(merged, "volume_capabilities")
    assert not a.has_field({"volume_id": ""}, "volume_id")


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [
        ("unix:///run/csi.sock", "unix:///run/csi.sock"),
        ("/run/csi.sock", "unix:///run/csi.sock"),
        ("tcp://127.0.0.1:10000", "127.0.0.1:10000"),
        ("dns:///driver:50051", "dns:///driver:50051"),
    ],
)
def test_normalize_endpoint(endpoint: str, target: str) -> None:
    assert a.normalize_endpoint(endpoint) == target


def test_normalize_relative_endpoint() -> None:
    assert a.normalize_endpoint("./csi.sock").startswith("unix:///")
    with pytest.raises(a.ArgumentError, match="CSI_ENDPOINT"):
        a.normalize_endpoint(" ")


def test_split_short_equals() -> None:
    assert split_short_equals(["-v=5", "-o=json", "node", "-e=unix:///x", "--", "-v=1"]) == [
        "-v",
        "5",
        "-o",
        "json",
        "node",
        "-e",
        "unix:///x",
        "--",
        "-v=1",
    ]
