"""Where the testbed's Go binaries live, and which of them are present.

``testbed/build.sh`` builds etcd, the Kubernetes control plane, kubectl and the Go reference
sidecars into a cache directory outside the repository. Tests, benchmarks and the playground
command find that directory the same way the script does, so a user who ran the script once needs
no configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

#: What a bare control plane needs.
CONTROL_PLANE_BINARIES: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)

#: The Go reference sidecars build.sh can produce.
GO_SIDECARS: tuple[str, ...] = (
    "csi-provisioner",
    "csi-attacher",
    "csi-snapshotter",
    "snapshot-controller",
    "csi-resizer",
)


def default_bin_dir() -> Path:
    """The binary directory: ``$CSI_SIDECARS_BIN_DIR``, else ``<cache>/bin``.

    The cache is ``$CSI_SIDECARS_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/csi-sidecars``,
    exactly as ``testbed/build.sh`` computes it.
    """
    explicit = os.environ.get("CSI_SIDECARS_BIN_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("CSI_SIDECARS_CACHE")
    if not cache:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = str(Path(xdg) / "csi-sidecars")
    return Path(cache).expanduser() / "bin"


def binary(name: str, bin_dir: Path | None = None) -> Path:
    """The path of binary ``name`` in ``bin_dir`` (default :func:`default_bin_dir`).

    Raises:
        FileNotFoundError: the binary is missing or not executable (the message says how to
            build it).
    """
    path = (bin_dir or default_bin_dir()) / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(
            f"{path} is missing: run testbed/build.sh {name} (or set CSI_SIDECARS_BIN_DIR)"
        )
    return path


def missing(names: tuple[str, ...] | list[str], bin_dir: Path | None = None) -> list[str]:
    """The names among ``names`` that are not executable files in ``bin_dir``."""
    base = bin_dir or default_bin_dir()
    return [n for n in names if not ((base / n).is_file() and os.access(base / n, os.X_OK))]
