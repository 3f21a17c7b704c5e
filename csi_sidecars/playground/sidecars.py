"""Command lines of the sidecars on the testbed: ours through the CLI, the Go ones from bin/.

Both run the way a container runs them: a separate process, the same flags, a kubeconfig of the
sidecar's own identity, the driver socket. A test or benchmark picks the implementation, the
command line is otherwise identical, which is what makes differential tests and benchmarks fair.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from csi_sidecars.playground import binaries


@dataclass(frozen=True)
class Role:
    """How one sidecar role is started.

    Attributes:
        name: our subcommand (``csi-sidecars <name>``).
        go_binary: the Go binary in bin/, or None when the Go sidecar is not buildable here.
        identity: the testbed identity whose kubeconfig it gets, or None if it needs no API.
        needs_csi: whether it takes ``--csi-address``.
    """

    name: str
    go_binary: str | None
    identity: str | None
    needs_csi: bool = True


ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role("provisioner", "csi-provisioner", "csi-provisioner"),
        Role("attacher", "csi-attacher", "csi-attacher"),
        Role("resizer", "csi-resizer", "csi-resizer"),
        Role("snapshotter", "csi-snapshotter", "csi-snapshotter"),
        Role("snapshot-controller", "snapshot-controller", "snapshot-controller", needs_csi=False),
        Role("cluster-driver-registrar", None, "cluster-driver-registrar"),
        Role("node-driver-registrar", None, None),
        Role("livenessprobe", None, None),
    )
}


def argv(
    role: str,
    args: Sequence[str] = (),
    *,
    implementation: str = "python",
    csi_address: str | None = None,
    kubeconfig: Path | None = None,
    verbosity: int | None = 5,
    bin_dir: Path | None = None,
) -> list[str]:
    """The command line that starts ``role``.

    Args:
        role: a key of :data:`ROLES`.
        args: further flags, appended as given.
        implementation: ``python`` (``python -m csi_sidecars <role>``) or ``go`` (bin/ binary).
        csi_address: value of ``--csi-address`` (skipped when None or the role takes none).
        kubeconfig: value of ``--kubeconfig`` (skipped when None).
        verbosity: value of ``-v`` (skipped when None).
        bin_dir: where the Go binaries are (default :func:`binaries.default_bin_dir`).

    Raises:
        KeyError: unknown role.
        ValueError: ``go`` asked for a role with no Go binary, or a bad implementation.
        FileNotFoundError: the Go binary is not built.
    """
    spec = ROLES[role]
    if implementation == "python":
        cmd = [sys.executable, "-m", "csi_sidecars", role]
    elif implementation == "go":
        if spec.go_binary is None:
            raise ValueError(f"no Go binary for {role} on this testbed")
        cmd = [str(binaries.binary(spec.go_binary, bin_dir))]
    else:
        raise ValueError(f"implementation must be 'python' or 'go', not {implementation!r}")
    if csi_address is not None and spec.needs_csi:
        cmd.append(f"--csi-address={csi_address}")
    if kubeconfig is not None:
        cmd.append(f"--kubeconfig={kubeconfig}")
    if verbosity is not None:
        cmd.append(f"-v={verbosity}")
    cmd.extend(args)
    return cmd
