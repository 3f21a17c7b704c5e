"""mountns: which host paths containerd's namespace sees from the node directory, and how."""

from __future__ import annotations

from pathlib import Path

import pytest

from csi_sidecars.playground import mountns
from csi_sidecars.playground.mountns import Bind


def test_a_target_is_covered_at_the_nearest_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    assert mountns.anchor(tmp_path / "run" / "containerd" / "s") == tmp_path / "run"
    assert mountns.anchor(tmp_path / "run") == tmp_path / "run"


def test_binds_put_each_target_below_the_host_view_and_create_nothing_on_the_host(
    tmp_path: Path,
) -> None:
    host = tmp_path / "host"
    (host / "run" / "containerd" / "s").mkdir(parents=True)
    (host / "var" / "lib").mkdir(parents=True)
    shim, cni = host / "run" / "containerd" / "s", host / "var" / "lib" / "cni"
    view = tmp_path / "node" / "containerd" / "host"
    binds = mountns.prepare(view, (shim, cni))
    rel = host.relative_to("/")
    assert binds == [
        Bind(view / rel / "run" / "containerd" / "s", shim),
        Bind(view / rel / "var" / "lib", host / "var" / "lib"),
    ]
    # The missing cni directory exists below the view, not on the host.
    assert (view / rel / "var" / "lib" / "cni").is_dir()
    assert not cni.exists()
    assert mountns.host_path(view, cni / "results" / "x", binds) == (
        view / rel / "var" / "lib" / "cni" / "results" / "x"
    )
    assert mountns.host_path(view, Path("/etc/hosts"), binds) == Path("/etc/hosts")


def test_two_targets_under_one_anchor_share_a_bind(tmp_path: Path) -> None:
    view = tmp_path / "view"
    binds = mountns.plan_binds(view, (tmp_path / "a" / "x", tmp_path / "a" / "y"))
    assert binds == [Bind(view / tmp_path.relative_to("/"), tmp_path)]


def test_the_command_runs_in_a_new_mount_namespace_with_the_binds_made_private() -> None:
    binds = [Bind(Path("/w/host/run"), Path("/run")), Bind(Path("/w/it's"), Path("/var/lib"))]
    cmd = mountns.wrap(["containerd", "--config=/w/c.toml"], binds)
    # Propagation unchanged: the node directory, shared on the host, stays a peer.
    assert cmd[:6] == ["unshare", "--mount", "--propagation", "unchanged", "sh", "-c"]
    script = cmd[6]
    assert "mount --bind /w/host/run /run && mount --make-private /run" in script
    assert "mount --bind '/w/it'\"'\"'s' /var/lib && mount --make-private /var/lib" in script
    assert script.endswith('exec "$@"')
    assert cmd[7:] == ["sh", "containerd", "--config=/w/c.toml"]


def test_the_root_directory_is_never_covered() -> None:
    with pytest.raises(RuntimeError, match="no directory of /nonexistent-x/s exists"):
        mountns.plan_binds(Path("/view"), (Path("/nonexistent-x/s"),))
