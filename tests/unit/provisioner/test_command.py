"""The provisioner command: identity, Lease name, flags into the shared controller options."""

from __future__ import annotations

import re

import click
import pytest

from csi_sidecars.controller import DriverInfo
from csi_sidecars.provisioner.command import (
    command,
    controller_options,
    kube_options,
    lock_name,
    make_identity,
)
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


def test_later_features_are_refused_by_the_command() -> None:
    with pytest.raises(click.UsageError, match="--enable-capacity is not supported yet"):
        parse_args([*UPSTREAM, "--enable-capacity"])


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
    kube = kube_options(config)
    assert (kube.qps, kube.burst) == (100.0, 200)
    assert kube.leader_election and kube.leader_election_namespace == "storage"
    assert kube.lease_duration == 30.0
    assert kube.release_on_stop is True
    opts = controller_options(config)
    assert (opts.timeout, opts.http_endpoint, opts.metrics_path) == (20.0, ":8080", "/m")


def test_release_on_stop_flag_is_shared_with_the_other_roles() -> None:
    assert kube_options(parse_args([*UPSTREAM])).release_on_stop is True
    off = parse_args([*UPSTREAM, "--leader-election-release-on-stop=false"])
    assert kube_options(off).release_on_stop is False
    # Go's gate still asks for the release.
    gated = parse_args(
        [
            *UPSTREAM,
            "--leader-election-release-on-stop=false",
            "--feature-gates=ReleaseLeaderElectionOnExit=true",
        ]
    )
    assert kube_options(gated).release_on_stop is True
