"""Our own kubeconfig reader (no kubernetes_asyncio import for plugin-free configs)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from csi_sidecars.kube.config import context_namespace, load_client_config, simple_kubeconfig


def write(
    tmp_path: Path, user: dict[str, object], cluster: dict[str, object] | None = None
) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [
            {"name": "c", "cluster": {"server": "https://127.0.0.1:6443/", **(cluster or {})}}
        ],
        "users": [{"name": "u", "user": user}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_token_and_inline_ca(tmp_path: Path) -> None:
    ca = base64.b64encode(b"CA PEM").decode()
    cfg = simple_kubeconfig(
        str(write(tmp_path, {"token": "s3cret"}, {"certificate-authority-data": ca}))
    )
    assert cfg is not None
    assert cfg.host == "https://127.0.0.1:6443"
    assert await cfg.authorization() == "Bearer s3cret"
    assert cfg.ca_file is not None
    assert Path(cfg.ca_file).read_bytes() == b"CA PEM"
    assert Path(cfg.ca_file).stat().st_mode & 0o077 == 0
    assert "s3cret" not in repr(cfg)


async def test_relative_token_file_and_cert_paths(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("from-file\n")
    cfg = simple_kubeconfig(
        str(
            write(
                tmp_path,
                {"tokenFile": "tok", "client-certificate": "c.crt", "client-key": "/abs/c.key"},
                {"certificate-authority": "ca.crt", "insecure-skip-tls-verify": True},
            )
        )
    )
    assert cfg is not None
    assert await cfg.authorization() == "Bearer from-file"
    assert cfg.ca_file == str(tmp_path / "ca.crt")
    assert cfg.cert_file == str(tmp_path / "c.crt")
    assert cfg.key_file == "/abs/c.key"
    assert cfg.verify_ssl is False


def test_plugins_go_to_the_full_loader(tmp_path: Path) -> None:
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "x"}}
    assert simple_kubeconfig(str(write(tmp_path, exec_user))) is None


async def test_bad_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("current-context: missing\ncontexts: []\n")
    with pytest.raises(RuntimeError, match="cannot load Kubernetes client config"):
        await load_client_config(str(path), environ={})


async def test_master_overrides_the_kubeconfig_server(tmp_path: Path) -> None:
    path = str(write(tmp_path, {"token": "t"}))
    cfg = await load_client_config(path, environ={}, master="https://10.0.0.1:443/")
    assert cfg.host == "https://10.0.0.1:443"
    assert await cfg.authorization() == "Bearer t"  # credentials still from the kubeconfig


async def test_master_alone_is_the_whole_config(tmp_path: Path) -> None:
    # Not the in-cluster account: client-go's BuildConfigFromFlags(master, "") neither.
    cfg = await load_client_config(
        "", environ={}, sa_dir=str(tmp_path / "nope"), master="http://127.0.0.1:8080"
    )
    assert cfg.host == "http://127.0.0.1:8080"
    assert await cfg.authorization() is None
    with pytest.raises(RuntimeError, match="in-cluster"):
        await load_client_config("", environ={}, sa_dir=str(tmp_path / "nope"))


def _two_contexts(tmp_path: Path) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "a",
        "contexts": [
            {"name": "a", "context": {"cluster": "ca", "user": "u", "namespace": "shop"}},
            {"name": "b", "context": {"cluster": "cb", "user": "u"}},
        ],
        "clusters": [
            {"name": "ca", "cluster": {"server": "https://127.0.0.1:1"}},
            {"name": "cb", "cluster": {"server": "https://127.0.0.1:2"}},
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_context_selects_cluster(tmp_path: Path) -> None:
    path = str(_two_contexts(tmp_path))
    assert (await load_client_config(path, environ={})).host == "https://127.0.0.1:1"
    assert (await load_client_config(path, environ={}, context_name="b")).host == (
        "https://127.0.0.1:2"
    )
    with pytest.raises(RuntimeError, match="context 'nope' not found"):
        await load_client_config(path, environ={}, context_name="nope")


def test_context_namespace(tmp_path: Path) -> None:
    path = str(_two_contexts(tmp_path))
    assert context_namespace(path, environ={}) == "shop"
    assert context_namespace(path, "b", environ={}) == ""
    assert context_namespace(str(tmp_path / "missing"), environ={}) == ""
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "namespace").write_text("kube-system\n")
    assert context_namespace(None, environ={}, sa_dir=str(sa)) == "kube-system"


async def test_json_and_yaml_kubeconfigs_read_the_same_and_json_needs_no_yaml(
    tmp_path: Path,
) -> None:
    import dataclasses
    import json
    import subprocess
    import sys

    async def _none() -> str | None:
        return None

    yaml_path = write(tmp_path, {"token": "t0k"})
    json_path = tmp_path / "kubeconfig.json"
    json_path.write_text(json.dumps(yaml.safe_load(yaml_path.read_text())))
    from_yaml = await load_client_config(str(yaml_path), environ={})
    from_json = await load_client_config(str(json_path), environ={})
    assert await from_json.authorization() == await from_yaml.authorization() == "Bearer t0k"
    assert dataclasses.replace(from_json, auth=_none) == dataclasses.replace(from_yaml, auth=_none)
    assert from_json.host == "https://127.0.0.1:6443"
    code = (
        "import asyncio, sys\n"
        "from csi_sidecars.kube.config import load_client_config\n"
        f"asyncio.run(load_client_config({str(json_path)!r}, environ={{}}))\n"
        "print('yaml' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
