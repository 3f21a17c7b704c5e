"""Reports (JSON shape, text), scans over a snapshot, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click
import click.testing
import pytest

from csi_sidecars import cli
from csi_sidecars.doctor.command import parse_target
from csi_sidecars.doctor.render import render_json, render_text
from csi_sidecars.doctor.report import Severity
from csi_sidecars.doctor.scan import Target, diagnose
from tests.unit.doctor import objs
from tests.unit.doctor.objs import NS, healthy_base, snapshot

SNAPSHOT_MISSING = {
    k: "not installed: the API server does not serve snapshot.storage.k8s.io/v1/volumesnapshots"
    for k in ("VolumeSnapshot", "VolumeSnapshotContent", "VolumeSnapshotClass")
}


def broken_cluster() -> dict[str, object]:
    return healthy_base(
        pvcs=[
            objs.pvc("ok", phase="Bound", volumeName="pvc-ok"),
            objs.pvc("stuck", sc="gold"),
            objs.pvc("other", sc="gold", namespace="elsewhere"),
        ],
        pvs=[objs.pv("pvc-ok", claim=(NS, "ok"))],
    )


def test_json_shape_is_stable() -> None:
    report = diagnose(snapshot(**broken_cluster()), Target("PersistentVolumeClaim", "stuck", NS))
    doc = json.loads(render_json(report))
    assert set(doc) == {"schemaVersion", "healthy", "scope", "summary", "findings", "notes"}
    assert doc["schemaVersion"] == 1
    assert doc["healthy"] is False
    assert doc["scope"] == {"kind": "PersistentVolumeClaim", "name": "stuck", "namespace": NS}
    assert doc["summary"] == {"checked": 1, "problems": 1, "warnings": 0}
    (found,) = doc["findings"]
    assert set(found) == {"object", "severity", "code", "summary", "nextStep", "evidence"}
    assert found["object"] == {"kind": "PersistentVolumeClaim", "name": "stuck", "namespace": NS}
    assert (found["severity"], found["code"]) == ("problem", "StorageClassNotFound")
    assert all(set(e) == {"status", "check", "message"} for e in found["evidence"])
    assert {e["status"] for e in found["evidence"]} <= {"ok", "info", "warn", "fail"}
    assert report.exit_code() == 1


def test_text_has_diagnosis_next_step_and_evidence() -> None:
    report = diagnose(snapshot(**broken_cluster()), Target("PersistentVolumeClaim", "stuck", NS))
    text = render_text(report)
    lines = text.splitlines()
    assert lines[0] == "PersistentVolumeClaim app/stuck: PROBLEM (StorageClassNotFound)"
    assert lines[1].startswith('  The claim asks for StorageClass "gold"')
    assert any(line.startswith("  Next: create StorageClass") for line in lines)
    assert any("FAIL  storageclass" in line for line in lines)
    assert "Checked 1 object: 1 problem, 0 warnings." in text


def test_scan_keeps_only_unhealthy_objects_sorted() -> None:
    report = diagnose(snapshot(**broken_cluster(), unavailable=SNAPSHOT_MISSING), Target())
    keys = [(f.object.kind, f.object.namespace, f.object.name) for f in report.findings]
    assert keys == [
        ("PersistentVolumeClaim", NS, "stuck"),
        ("PersistentVolumeClaim", "elsewhere", "other"),
    ]
    assert all(f.severity is not Severity.OK for f in report.findings)
    # 3 claims + 1 volume + 1 node + 1 driver (the driver's ObjectsStuck is left out: the claims
    # have findings of their own).
    assert report.checked == 6
    assert report.notes == (
        "the VolumeSnapshot CRDs are not installed; snapshots were not checked",
    )
    assert report.exit_code() == 1


def test_scan_of_one_namespace() -> None:
    report = diagnose(snapshot(**broken_cluster()), Target(namespace="elsewhere"))
    assert [f.object.name for f in report.findings] == ["other"]
    assert report.scope == {"kind": "Cluster", "namespace": "elsewhere"}


def test_healthy_scan_exits_zero_and_says_so() -> None:
    snap = snapshot(
        **healthy_base(
            pvcs=[objs.pvc("ok", phase="Bound", volumeName="pvc-ok")],
            pvs=[objs.pv("pvc-ok", claim=(NS, "ok"))],
        )
    )
    report = diagnose(snap, Target(namespace=NS))
    assert report.findings == ()
    assert report.exit_code() == 0
    assert render_text(report).startswith("Nothing is stuck in namespace app.")
    assert json.loads(render_json(report))["healthy"] is True


def test_scan_of_one_kind() -> None:
    report = diagnose(snapshot(**broken_cluster()), Target("PersistentVolume"))
    assert report.findings == ()
    assert report.checked == 1
    assert report.scope == {"kind": "Cluster", "only": "PersistentVolume"}


@pytest.mark.parametrize(
    ("args", "target"),
    [
        ((None, None, None), Target()),
        ((None, None, "ns1"), Target(namespace="ns1")),
        (("pvc", "data", "ns1"), Target("PersistentVolumeClaim", "data", "ns1")),
        (("pvc/data", None, None), Target("PersistentVolumeClaim", "data", None)),
        (("PersistentVolumes", None, None), Target("PersistentVolume")),
        (("pv", "x", "ns1"), Target("PersistentVolume", "x", None)),
        (("va", "x", None), Target("VolumeAttachment", "x")),
        (("vs", "s", "n"), Target("VolumeSnapshot", "s", "n")),
        (("driver", "d", None), Target("CSIDriver", "d")),
        (("node", None, None), Target("Node")),
    ],
)
def test_parse_target(args: tuple[str | None, str | None, str | None], target: Target) -> None:
    assert parse_target(*args) == target


@pytest.mark.parametrize("args", [("bogus", None, None), ("pvc/", None, None)])
def test_parse_target_usage_errors(args: tuple[str | None, str | None, str | None]) -> None:
    with pytest.raises(click.UsageError):
        parse_target(*args)


@pytest.mark.parametrize(
    "argv",
    [["doctor", "bogus", "x"], ["doctor", "-o", "yaml"], ["doctor", "--no-such-flag"]],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    result = click.testing.CliRunner().invoke(cli.main, argv)
    assert result.exit_code == 2, result.output


def test_unloadable_config_exits_2_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "nope.kubeconfig"
    result = click.testing.CliRunner().invoke(
        cli.main, ["doctor", "--kubeconfig", str(missing)], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "cannot load Kubernetes client config" in result.output
    assert "Traceback" not in result.output


def test_unreachable_server_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    result = click.testing.CliRunner().invoke(
        cli.main, ["doctor", "--kubeconfig", str(config)], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "cannot read from the API server at http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output
