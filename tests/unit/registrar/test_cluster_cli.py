"""cluster-driver-registrar flags: parsing, Go-style argv, validation before any I/O."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from csi_sidecars.registrar import cluster, cluster_flags
from csi_sidecars.registrar import cluster_spec as cs
from csi_sidecars.runtime import app


def test_parse_lifecycle_modes() -> None:
    assert cluster_flags.parse_lifecycle_modes(None) is None
    assert cluster_flags.parse_lifecycle_modes("Persistent, Ephemeral") == (
        "Persistent",
        "Ephemeral",
    )
    assert cluster_flags.parse_lifecycle_modes("") == ()


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("vault", cs.TokenRequest("vault")),
        ("vault,3600", cs.TokenRequest("vault", 3600)),
        ("vault,1h", cs.TokenRequest("vault", 3600)),
        (
            "https://kubernetes.default.svc,10m",
            cs.TokenRequest("https://kubernetes.default.svc", 600),
        ),
        (",1h", cs.TokenRequest("", 3600)),
        ("", cs.TokenRequest("")),
    ],
)
def test_parse_token_request(text: str, want: cs.TokenRequest) -> None:
    assert cluster_flags.parse_token_request(text) == want


@pytest.mark.parametrize("text", ["vault,soon", "vault,1.5s"])
def test_parse_token_request_rejects_bad_expiration(text: str) -> None:
    with pytest.raises(ValueError):
        cluster_flags.parse_token_request(text)


def test_parse_labels() -> None:
    assert cluster_flags.parse_labels("a=1, b=two,") == {"a": "1", "b": "two"}
    assert cluster_flags.parse_labels("") == {}
    with pytest.raises(ValueError, match="expected key=value"):
        cluster_flags.parse_labels("a")
    with pytest.raises(ValueError):
        cluster_flags.parse_labels("=x")


def _run(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, Any, str]:
    """Invoke the command with app.run replaced; return exit code, config and output."""
    seen: dict[str, Any] = {}

    def fake_run(main: Any) -> None:
        seen["main"] = main
        raise SystemExit(0)

    def fake_runner(config: Any, kube: Any, stop: Any) -> Any:
        seen["config"], seen["kube"] = config, kube

    monkeypatch.setattr(app, "run", fake_run)
    monkeypatch.setattr(cluster, "run_cluster_registrar", fake_runner)
    result = CliRunner().invoke(cluster.command, list(args))
    if "main" in seen:
        seen["main"](None)
    return result.exit_code, seen.get("config"), result.output


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    code, config, _ = _run(monkeypatch)
    assert code == 0
    assert config.csi_address == "/run/csi/socket"
    assert config.reapply_interval == 120.0
    assert config.allow_recreate is False
    assert config.delete_on_shutdown is False
    assert config.spec == cs.SpecOptions()


def test_go_style_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    code, config, out = _run(
        monkeypatch,
        "-csi-address=/csi/csi.sock",
        "-kubeconfig",
        "/k",
        "-v=5",
        "-pod-info-mount",
        "--driver-requires-attachment=false",
        "-volume-lifecycle-modes=Persistent,Ephemeral",
        "--storage-capacity",
        "--fs-group-policy=File",
        "--token-request=vault,1h",
        "--token-request=",
        "--requires-republish=false",
        "--selinux-mount=true",
        "--node-allocatable-update-period=1m",
        "--service-account-token-in-secrets",
        "--prevent-pod-scheduling-if-missing=0",
        "--labels=team=storage",
        "--reapply-interval=5s",
        "--allow-recreate",
        "--delete-on-shutdown=true",
        "--connection-timeout=1m",
        "--logtostderr",
    )
    assert code == 0, out
    assert config.csi_address == "/csi/csi.sock"
    assert config.reapply_interval == 5.0
    assert config.allow_recreate and config.delete_on_shutdown
    assert config.spec == cs.SpecOptions(
        attach_required=False,
        pod_info_on_mount=True,
        volume_lifecycle_modes=("Persistent", "Ephemeral"),
        storage_capacity=True,
        fs_group_policy="File",
        token_requests=(cs.TokenRequest("vault", 3600), cs.TokenRequest("")),
        requires_republish=False,
        selinux_mount=True,
        node_allocatable_update_period_seconds=60,
        service_account_token_in_secrets=True,
        prevent_pod_scheduling_if_missing=False,
        labels={"team": "storage"},
    )


def test_attach_required_alias_and_bare_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    _, config, _ = _run(monkeypatch, "--attach-required")
    assert config.spec.attach_required is True
    _, config, _ = _run(monkeypatch, "-driver-requires-attachment=true")
    assert config.spec.attach_required is True


def test_pod_info_mount_version_means_pod_info_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    _, config, _ = _run(monkeypatch, "--pod-info-mount-version=v1")
    assert config.spec.pod_info_on_mount is True


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--volume-lifecycle-modes=Inline"], "unknown mode"),
        (["--service-account-token-in-secrets"], "needs at least one --token-request"),
        (["--token-request=a,1m"], "between 600s"),
        (["--labels=oops"], "expected key=value"),
        (["--reapply-interval=0"], "must be positive"),
        (["--node-allocatable-update-period=1s"], "at least 10s"),
    ],
)
def test_invalid_flags_exit_1_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    fragment: str,
) -> None:
    code, config, out = _run(monkeypatch, *args)
    assert code == 1
    assert config is None
    assert fragment in out + capsys.readouterr().err


def test_unknown_flag_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, out = _run(monkeypatch, "--no-such-flag")
    assert code == 2
    assert "no-such-flag" in out
