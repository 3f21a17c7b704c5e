"""The provisioner command: identity, Lease name, flags into the shared controller options."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from csi_sidecars.controller import DriverInfo
from csi_sidecars.kube.resources import PERSISTENT_VOLUMES
from csi_sidecars.provisioner.command import command, controller_options, lock_name, make_identity
from csi_sidecars.provisioner.flags import parse_args

UPSTREAM = ["--csi-address=/csi/csi.sock", "--leader-election", "--http-endpoint=:8080", "-v=5"]


def test_identity_is_millis_random_driver() -> None:
    identity = make_identity("hostpath.csi.k8s.io", now_ms=1700000000123)
    assert re.fullmatch(r"1700000000123-\d{1,4}-hostpath\.csi\.k8s\.io", identity)


def test_lock_name_replaces_slashes() -> None:
    assert lock_name(DriverInfo("vendor/driver.example.com")) == "vendor-driver.example.com"


def test_upstream_manifest_args_reach_the_command_unchanged() -> None:
    ctx = command.make_context("provisioner", list(UPSTREAM))
    assert ctx.params["csi_address"] == "/csi/csi.sock"
    assert ctx.params["leader_election"] is True
    assert ctx.params["v"] == 5
    config = parse_args(UPSTREAM)
    assert (config.csi.address, config.kube.leader_election, config.v) == (
        "/csi/csi.sock",
        True,
        5,
    )


def test_later_features_are_refused_by_the_command() -> None:
    with pytest.raises(click.UsageError, match="CrossNamespaceVolumeDataSource=true is not sup"):
        parse_args([*UPSTREAM, "--feature-gates=CrossNamespaceVolumeDataSource=true"])


def test_flags_map_onto_kube_and_controller_options() -> None:
    config = parse_args(
        [
            *UPSTREAM,
            "--kube-api-qps=100",
            "--kube-api-burst=200",
            "--leader-election-namespace=storage",
            "--leader-election-lease-duration=30s",
            "--timeout=20s",
            "--metrics-path=/m",
            "--feature-gates=ReleaseLeaderElectionOnExit=true",
        ]
    )
    kube = config.kube
    assert (kube.qps, kube.burst) == (100.0, 200)
    assert kube.leader_election and kube.leader_election_namespace == "storage"
    assert kube.lease_duration == 30.0
    assert kube.release_on_stop is True
    opts = controller_options(config)
    assert (opts.timeout, opts.http_endpoint, opts.metrics_path) == (20.0, ":8080", "/m")


def test_release_on_stop_flag_is_shared_with_the_other_roles() -> None:
    assert parse_args([*UPSTREAM]).kube.release_on_stop is True
    off = parse_args([*UPSTREAM, "--leader-election-release-on-stop=false"])
    assert off.kube.release_on_stop is False
    # Go's gate still asks for the release.
    gated = parse_args(
        [
            *UPSTREAM,
            "--leader-election-release-on-stop=false",
            "--feature-gates=ReleaseLeaderElectionOnExit=true",
        ]
    )
    assert gated.kube.release_on_stop is True


KUBECONFIG = """apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: abc}}]
"""


async def test_master_alone_connects_to_that_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    config = parse_args(["--master=http://127.0.0.1:8001/"])
    assert config.kube.master == "http://127.0.0.1:8001/"
    loaded = await config.kube.client_config()
    assert loaded.host == "http://127.0.0.1:8001"
    assert await loaded.authorization() is None  # the URL alone: no in-cluster account


async def test_master_overrides_the_kubeconfig_server(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    config = parse_args([f"--kubeconfig={path}", "-master", "https://127.0.0.1:9443"])
    loaded = await config.kube.client_config()
    assert loaded.host == "https://127.0.0.1:9443"
    assert await loaded.authorization() == "Bearer abc"  # the kubeconfig's credentials stay
    without = await parse_args([f"--kubeconfig={path}"]).kube.client_config()
    assert without.host == "https://10.0.0.1:6443"


async def test_master_is_where_the_client_sends_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def pvs(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"kind": "PersistentVolumeList", "metadata": {}, "items": []})

    app = web.Application()
    app.router.add_get("/api/v1/persistentvolumes", pvs)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    async with TestServer(app, host="127.0.0.1") as server:
        config = parse_args([f"--master=http://127.0.0.1:{server.port}"])
        async with await config.kube.client("provisioner") as client:
            listed = await client.list(PERSISTENT_VOLUMES)
    assert listed["items"] == [] and seen == ["/api/v1/persistentvolumes"]
