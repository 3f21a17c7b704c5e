"""The csi-sidecars image, assembled without a registry or a container builder.

The project's ``Containerfile`` builds the image from ``python:3.11-slim-bookworm``, which no
registry here can serve. This module produces an image with the same contract from what the
machine can reach: the final stage's ``ENV``, ``USER``, ``ENTRYPOINT``, ``CMD``, ``LABEL`` and plain
``COPY`` lines are read from the Containerfile (built-in defaults with the same contract when
there is none: entrypoint ``csi-sidecars``, user 65532, the package's wheel installed in
``/opt/csi-sidecars``), and its ``RUN``/``COPY --from`` steps are replaced by three layers:

1. Debian packages (python3.X-minimal, its standard library, libstdc++ for grpcio and their
   dependencies), downloaded by ``apt-get`` with an empty package status and unpacked with
   ``dpkg-deb``; documentation, manuals and locales are left out. Cached by package list.
2. The package's runtime dependencies from PyPI, installed by ``pip --target`` for the image's
   Python (``--python-version``, manylinux wheels only, so the host's Python does not matter).
   Cached by requirement list.
3. The project's wheel (``pip wheel`` of the source tree) and a hand-made virtual environment
   at ``/opt/csi-sidecars`` (``pyvenv.cfg``, ``bin/python3``, ``bin/csi-sidecars``).

:func:`build` writes ``<cache>/images/csi-sidecars.tar``; ``testbed/build-images.sh`` runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from csi_sidecars import __version__
from csi_sidecars.playground import images
from csi_sidecars.playground.images import Entry, ImageSpec

VENV = "/opt/csi-sidecars"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Left out of the Debian layer: not needed to run Python.
PRUNE = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
)
#: Debian packages besides the interpreter: libstdc++ (grpcio's extension links it).
EXTRA_PACKAGES = ("libstdc++6",)


def source_root() -> Path:
    """The source checkout this package runs from.

    Raises:
        FileNotFoundError: the package is installed, not run from a checkout.
    """
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():
        raise FileNotFoundError(
            "the csi-sidecars image is built from a source checkout (pyproject.toml not found "
            f"above {Path(__file__).parent})"
        )
    return root


@dataclass
class Contract:
    """What the final stage of the Containerfile promises about the image."""

    env: dict[str, str] = field(
        default_factory=lambda: {
            "PATH": f"{VENV}/bin:{BASE_PATH}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    user: str = "65532:65532"
    entrypoint: list[str] = field(default_factory=lambda: ["csi-sidecars"])
    cmd: list[str] = field(default_factory=lambda: ["--help"])
    labels: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[str, str]] = field(default_factory=list)


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def _substitute(value: str, variables: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: variables.get(m.group(1) or m.group(2), ""),
        value,
    )


def _pairs(rest: str, variables: dict[str, str]) -> dict[str, str]:
    out = {}
    for token in shlex.split(rest):
        key, sep, value = token.partition("=")
        if sep:
            out[key] = _substitute(value, variables)
    return out


def parse_containerfile(text: str, build_args: dict[str, str]) -> Contract:
    """The contract of a Containerfile's final stage (instructions it does not know are
    skipped; ``RUN`` and ``COPY --from`` are what this module replaces)."""
    contract = Contract(env={"PATH": BASE_PATH}, user="", entrypoint=[], cmd=[])
    variables: dict[str, str] = {"PATH": BASE_PATH}
    for line in _logical_lines(text):
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG":
            name, _, default = rest.strip().partition("=")
            variables[name] = build_args.get(name, default)
        elif word == "FROM":
            # A new stage: its ENV and the rest start afresh; ARGs before FROM stay known.
            contract = Contract(env={"PATH": BASE_PATH}, user="", entrypoint=[], cmd=[])
        elif word == "ENV":
            for key, value in _pairs(rest, {**variables, **contract.env}).items():
                contract.env[key] = value
        elif word == "USER":
            contract.user = _substitute(rest.strip(), variables)
        elif word in ("ENTRYPOINT", "CMD"):
            parsed = json.loads(rest) if rest.strip().startswith("[") else ["sh", "-c", rest]
            setattr(contract, word.lower(), [str(p) for p in parsed])
        elif word == "LABEL":
            contract.labels.update(_pairs(rest, variables))
        elif word == "COPY" and "--from" not in rest:
            parts = shlex.split(rest)
            if len(parts) == 2:
                contract.copies.append((parts[0], parts[1]))
    return contract


def contract_of(root: Path) -> tuple[Contract, bool]:
    """The Containerfile's contract, and whether there was a Containerfile to read."""
    path = root / "Containerfile"
    if not path.exists():
        return Contract(), False
    return parse_containerfile(path.read_text(), {"VERSION": __version__}), True


# -- layer 1: Debian ----------------------------------------------------------------------------


def python_package() -> str:
    """The versioned interpreter package Debian's python3-minimal points at."""
    out = subprocess.run(
        ["apt-cache", "depends", "python3-minimal"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(python3\.\d+)-minimal", out)
    if match is None:
        raise RuntimeError("apt-cache does not know python3-minimal: run apt-get update")
    return match.group(1)


def download_debs(packages: list[str], cache: Path) -> list[Path]:
    """Download ``packages`` and their dependency closure as for an empty system."""
    status = cache / "status"
    (cache / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    status.touch()
    subprocess.run(
        [
            "apt-get", "install", "-y", "-qq", "--download-only", "--no-install-recommends",
            f"-o=Dir::State::status={status}", f"-o=Dir::Cache::archives={cache / 'archives'}",
            "-o=Debug::NoLocking=1", *packages,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return sorted((cache / "archives").glob("*.deb"))


def tree_entries(root: Path, prefix: str = "", skip: tuple[str, ...] = ()) -> list[Entry]:
    """Layer entries for everything under ``root`` (owners root, modes and links kept)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        kept = []
        for name in sorted(dirnames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in skip:
                continue
            full = Path(dirpath) / name
            if full.is_symlink():
                entries.append(Entry(prefix + rel, "symlink", target=os.readlink(full)))
            else:
                entries.append(Entry(prefix + rel, "dir", mode=stat.S_IMODE(full.stat().st_mode)))
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            full = Path(dirpath) / name
            if full.is_symlink():
                entries.append(Entry(prefix + rel, "symlink", target=os.readlink(full)))
            elif full.is_file():
                mode = stat.S_IMODE(full.lstat().st_mode)
                entries.append(Entry(prefix + rel, source=full, mode=mode))
    return entries


def debian_layer(cache: Path) -> tuple[Path, str]:
    """The Debian root filesystem layer (cached); returns it and the Python version (3.X)."""
    python = python_package()
    packages = [f"{python}-minimal", f"lib{python}-stdlib", *EXTRA_PACKAGES]
    debs = download_debs(packages, cache / "debs")
    key = hashlib.sha256("\n".join(d.name for d in debs).encode()).hexdigest()[:16]
    layer = cache / f"debian-{key}.tar"
    if not layer.exists():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            rootfs = Path(tmp)
            for deb in debs:
                subprocess.run(["dpkg-deb", "-x", str(deb), str(rootfs)], check=True)
            _compile_stdlib(rootfs, python)
            entries = tree_entries(rootfs, skip=PRUNE) + images.base_files()
            images.write_layer(_dedupe(entries), layer.with_suffix(".tmp"))
            os.replace(layer.with_suffix(".tmp"), layer)
    return layer, python.removeprefix("python")


def _compile_stdlib(rootfs: Path, python: str) -> None:
    """Byte-compile the standard library with the image's own interpreter (in a chroot), as
    the package's postinst would have: the image's root filesystem is read-only at run time.
    Skipped (with a note) when chroot is not permitted."""
    result = subprocess.run(
        ["chroot", str(rootfs), f"/usr/bin/{python}", "-m", "compileall", "-q",
         f"/usr/lib/{python}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        print(f"note: standard library not byte-compiled: {result.stderr.strip()}", file=sys.stderr)


def _dedupe(entries: list[Entry]) -> list[Entry]:
    """Later entries of a path win (the base files over the packages' ones)."""
    out: dict[str, Entry] = {}
    for entry in entries:
        out[entry.path.strip("/")] = entry
    return list(out.values())


# -- layers 2 and 3: Python ---------------------------------------------------------------------


def runtime_requirements(root: Path) -> list[str]:
    """The package's runtime dependencies (no extras), from pyproject.toml."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return [str(r) for r in project.get("dependencies", [])]


def _pip(*args: str) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "pip", "-q", "--disable-pip-version-check",
            "--no-input", *args,
        ],
        check=True,
    )  # fmt: skip


def _platforms(glibc_minor: int = 36) -> list[str]:
    tags = [f"--platform=manylinux_2_{minor}_x86_64" for minor in range(17, glibc_minor + 1)]
    return [*tags, "--platform=manylinux2014_x86_64"]


def site_packages(python: str) -> str:
    """The virtual environment's site-packages directory (no leading slash)."""
    return f"{VENV.strip('/')}/lib/python{python}/site-packages"


def deps_layer(root: Path, python: str, cache: Path) -> Path:
    """The runtime dependencies layer (cached by requirement list and Python version)."""
    requirements = runtime_requirements(root)
    key = hashlib.sha256(f"{python}\n{requirements}".encode()).hexdigest()[:16]
    layer = cache / f"python-deps-{key}.tar"
    if layer.exists():
        return layer
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        target = Path(tmp) / "site"
        abi = "cp" + python.replace(".", "")
        _pip(
            "install", "--root-user-action=ignore", "--no-warn-conflicts", f"--target={target}",
            f"--python-version={python}", "--implementation=cp", f"--abi={abi}",
            *_platforms(), "--only-binary=:all:", *requirements,
        )  # fmt: skip
        entries = tree_entries(target, prefix=site_packages(python) + "/", skip=("bin",))
        images.write_layer(entries, layer.with_suffix(".tmp"))
        os.replace(layer.with_suffix(".tmp"), layer)
    return layer


def app_entries(root: Path, python: str, contract: Contract, work: Path) -> list[Entry]:
    """The project's wheel, installed, plus the virtual environment's skeleton."""
    wheels = work / "wheels"
    _pip("wheel", "--no-deps", f"--wheel-dir={wheels}", str(root))
    wheel = next(wheels.glob("csi_sidecars-*.whl"))
    target = work / "site"
    _pip("install", "--root-user-action=ignore", "--no-deps", f"--target={target}", str(wheel))
    venv = VENV.strip("/")
    entries = tree_entries(target, prefix=site_packages(python) + "/", skip=("bin",))
    launcher = (
        f"#!{VENV}/bin/python3\nimport sys\nfrom csi_sidecars.cli import main\nsys.exit(main())\n"
    )
    config = f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {python}\n"
    entries += [
        Entry(f"{venv}/pyvenv.cfg", data=config.encode()),
        Entry(f"{venv}/bin", "dir", mode=0o755),
        Entry(f"{venv}/bin/python3", "symlink", target=f"/usr/bin/python{python}"),
        Entry(f"{venv}/bin/python", "symlink", target="python3"),
        Entry(f"{venv}/bin/csi-sidecars", data=launcher.encode(), mode=0o755),
    ]
    for source, dest in contract.copies:
        path = root / source
        if path.is_file():
            entries.append(Entry(dest.lstrip("/"), source=path))
    dirs = {
        "/".join(e.path.split("/")[:i]) for e in entries for i in range(1, e.path.count("/") + 1)
    }
    present = {e.path for e in entries}
    entries += [Entry(d, "dir", mode=0o755) for d in sorted(dirs - present)]
    return entries


@dataclass(frozen=True)
class BuildReport:
    """What :func:`build` made and how long it took."""

    name: str
    tar: Path
    size: int
    seconds: float
    from_containerfile: bool


def build(out_dir: Path | None = None, name: str = images.CSI_SIDECARS_IMAGE) -> BuildReport:
    """Assemble the csi-sidecars image into ``<out_dir>/csi-sidecars.tar``.

    Raises:
        FileNotFoundError: not a source checkout, or apt-get/dpkg-deb are missing.
        subprocess.CalledProcessError: apt-get or pip failed (their output says why).
    """
    began = time.monotonic()
    out_dir = out_dir or images.images_dir()
    cache = out_dir / "build"
    cache.mkdir(parents=True, exist_ok=True)
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} is needed to build the csi-sidecars image (Debian)")
    root = source_root()
    contract, from_file = contract_of(root)
    debian, python = debian_layer(cache)
    deps = deps_layer(root, python, cache)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        app = app_entries(root, python, contract, Path(tmp))
        spec = ImageSpec(
            name,
            layers=[debian, deps, app],
            entrypoint=contract.entrypoint,
            cmd=contract.cmd,
            env=[f"{k}={v}" for k, v in contract.env.items()],
            user=contract.user,
            labels=contract.labels,
        )
        tar = out_dir / "csi-sidecars.tar"
        images.write_image(spec, tar)
    tar.with_suffix(".name").write_text(name + "\n")
    return BuildReport(name, tar, tar.stat().st_size, time.monotonic() - began, from_file)
