"""Container images for the testbed's real nodes, built locally without a registry.

No registry is reachable from the project's machines, so the images kubelet runs are assembled
here as docker-archive tars (``manifest.json``, an image config, one tar per layer), the format
``ctr images import`` reads, and imported into each node's containerd:

* ``pause``: the sandbox image, the statically linked ``pause`` binary ``build_testbed.sh``
  compiles from the kubernetes module's ``build/pause/linux/pause.c``;
* ``busybox``: Debian's ``busybox-static`` and its applet links, for test pods;
* ``csi-sidecars``: the project itself, see :mod:`csi_sidecars.playground.sidecars_image`.

Layers are deterministic (sorted entries, fixed times and owners), so the same inputs give the
same image ID. Tars go to ``<cache>/images``; run ``testbed/build-images.sh`` (this module's
command line) to build them ahead of time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csi_sidecars import __version__
from csi_sidecars.playground import binaries

K8S_VERSION = "v1.36.3"
REPOSITORY = "localhost/csi-sidecars-testbed"
#: The sandbox image containerd is configured with (never pulled: imported).
PAUSE_IMAGE = f"{REPOSITORY}/pause:{K8S_VERSION}"
BUSYBOX_BINARY = Path("/bin/busybox")
CSI_SIDECARS_IMAGE = f"localhost/csi-sidecars:{__version__}"
#: A fixed timestamp for every file of every layer (reproducible images).
EPOCH = 946684800  # 2000-01-01


def images_dir() -> Path:
    """``<cache>/images``: next to the binary directory ``build_testbed.sh`` fills."""
    return binaries.default_bin_dir().parent / "images"


@dataclass
class Entry:
    """One file, directory or symlink of a layer."""

    path: str
    kind: str = "file"  # file | dir | symlink
    data: bytes = b""
    source: Path | None = None
    target: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass
class ImageSpec:
    """An image to write: its name (and more names for it), layers (entries or prebuilt tars)
    and config."""

    name: str
    layers: list[list[Entry] | Path] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/bin:/usr/bin:/bin"])
    user: str = ""
    workdir: str = "/"
    labels: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)


def _tarinfo(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path.lstrip("/"))
    info.mtime = EPOCH
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mode = entry.mode
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.target
        info.mode = 0o777
    return info


def write_layer(entries: Iterable[Entry], out: Path) -> None:
    """Write an uncompressed layer tar of ``entries`` (sorted by path, parents implied)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(entries, key=lambda e: e.path):
            info = _tarinfo(entry)
            if entry.kind != "file":
                tar.addfile(info)
                continue
            if entry.source is not None:
                info.size = entry.source.stat().st_size
                with entry.source.open("rb") as f:
                    tar.addfile(info, f)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def image_config(spec: ImageSpec, diff_ids: Sequence[str]) -> dict[str, Any]:
    """The OCI/docker image configuration of ``spec`` with layers ``diff_ids``."""
    config: dict[str, Any] = {"Env": spec.env, "WorkingDir": spec.workdir}
    if spec.entrypoint is not None:
        config["Entrypoint"] = spec.entrypoint
    if spec.cmd is not None:
        config["Cmd"] = spec.cmd
    if spec.user:
        config["User"] = spec.user
    if spec.labels:
        config["Labels"] = spec.labels
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "2000-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created": "2000-01-01T00:00:00Z", "created_by": "csi-sidecars testbed"}]
        * len(diff_ids),
    }


def write_image(spec: ImageSpec, out: Path) -> str:
    """Write ``spec`` as a docker-archive tar at ``out``; return the image ID (config digest)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".image-") as tmp:
        work = Path(tmp)
        layer_paths: list[Path] = []
        for index, layer in enumerate(spec.layers):
            if isinstance(layer, Path):
                layer_paths.append(layer)
            else:
                path = work / f"layer-{index}.tar"
                write_layer(layer, path)
                layer_paths.append(path)
        diff_ids = [_sha256(p) for p in layer_paths]
        config = json.dumps(image_config(spec, diff_ids), sort_keys=True).encode()
        image_id = hashlib.sha256(config).hexdigest()
        manifest = [
            {
                "Config": f"{image_id}.json",
                "RepoTags": [spec.name, *spec.aliases],
                "Layers": [f"{d}/layer.tar" for d in diff_ids],
            }
        ]
        tmp_out = work / "image.tar"
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in (
                ("manifest.json", json.dumps(manifest).encode()),
                (f"{image_id}.json", config),
            ):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
                tar.addfile(info, io.BytesIO(data))
            for digest, path in zip(diff_ids, layer_paths, strict=True):
                info = tarfile.TarInfo(f"{digest}/layer.tar")
                info.size, info.mtime, info.mode = path.stat().st_size, EPOCH, 0o644
                with path.open("rb") as f:
                    tar.addfile(info, f)
        os.replace(tmp_out, out)
    return image_id


# -- the small images --------------------------------------------------------------------------


def base_files(user: tuple[str, int] | None = None) -> list[Entry]:
    """/etc/passwd, /etc/group, /tmp and /etc/hosts-less basics every image gets."""
    passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    group = "root:x:0:\nnogroup:x:65534:\n"
    if user is not None:
        name, uid = user
        passwd += f"{name}:x:{uid}:{uid}::/nonexistent:/bin/false\n"
        group += f"{name}:x:{uid}:\n"
    return [
        Entry("etc", "dir", mode=0o755),
        Entry("etc/passwd", data=passwd.encode()),
        Entry("etc/group", data=group.encode()),
        Entry("tmp", "dir", mode=0o1777),
        Entry("root", "dir", mode=0o700),
    ]


def pause_spec(bin_dir: Path | None = None) -> ImageSpec:
    """The sandbox image: ``/pause`` and nothing else."""
    pause = binaries.binary("pause", bin_dir)
    return ImageSpec(
        PAUSE_IMAGE,
        layers=[[Entry("pause", source=pause, mode=0o755)]],
        entrypoint=["/pause"],
        env=[],
        user="65535:65535",
    )


def busybox_applets(busybox: Path) -> list[str]:
    """The applet paths (``bin/sh``, ``usr/bin/wc`` ...) a busybox binary provides."""
    out = subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, check=True
    ).stdout
    return sorted({line.strip() for line in out.splitlines() if line.strip()})


def busybox_version(busybox: Path | None = None) -> str:
    """The version of a busybox binary (default Debian's), e.g. ``1.35.0``."""
    busybox = busybox or BUSYBOX_BINARY
    head = subprocess.run([str(busybox)], capture_output=True, text=True, check=False).stdout
    match = re.search(r"BusyBox v(\d+(?:\.\d+)+)", head)
    return match.group(1) if match else "unknown"


def busybox_image_name(busybox: Path | None = None) -> str:
    """The name of the busybox image built from ``busybox`` (default Debian's)."""
    return f"{REPOSITORY}/busybox:{busybox_version(busybox)}"


def busybox_spec(busybox: Path | None = None) -> ImageSpec:
    """A busybox image: the static binary at /bin/busybox and a symlink per applet."""
    busybox = busybox or BUSYBOX_BINARY
    if not busybox.is_file():
        raise FileNotFoundError(
            f"{busybox} is missing: install Debian's busybox-static "
            "(apt-get install busybox-static)"
        )
    entries = [*base_files(), Entry("bin/busybox", source=busybox, mode=0o755)]
    dirs = {"bin"}
    for applet in busybox_applets(busybox):
        if applet == "bin/busybox":
            continue
        parts = applet.split("/")
        for depth in range(1, len(parts)):
            dirs.add("/".join(parts[:depth]))
        entries.append(Entry(applet, "symlink", target="/bin/busybox"))
    entries += [Entry(d, "dir", mode=0o755) for d in sorted(dirs)]
    return ImageSpec(busybox_image_name(busybox), layers=[entries], cmd=["sh"])


@dataclass(frozen=True)
class BuiltImage:
    """An image tar in the cache."""

    name: str
    tar: Path


def _fresh_tar(tar: Path, source: Path) -> bool:
    name = tar.with_suffix(".name")
    return tar.exists() and name.exists() and tar.stat().st_mtime >= source.stat().st_mtime


def ensure_small_images(
    bin_dir: Path | None = None, out_dir: Path | None = None
) -> list[BuiltImage]:
    """Build the pause and busybox image tars when missing or stale; return both.

    A tar is rebuilt when its source binary is newer; both take well under a second.

    Raises:
        FileNotFoundError: the pause binary or busybox is missing (the message says how to get
            them).
    """
    out_dir = out_dir or images_dir()
    pause = binaries.binary("pause", bin_dir)
    built = []
    for stem, source in (("pause", pause), ("busybox", BUSYBOX_BINARY)):
        tar = out_dir / f"{stem}.tar"
        if not _fresh_tar(tar, source):
            spec = pause_spec(bin_dir) if stem == "pause" else busybox_spec()
            write_image(spec, tar)
            tar.with_suffix(".name").write_text(spec.name + "\n")
        built.append(BuiltImage(tar.with_suffix(".name").read_text().strip(), tar))
    return built


def remove_built(out_dir: Path | None = None) -> None:
    """Delete every image tar in the cache."""
    shutil.rmtree(out_dir or images_dir(), ignore_errors=True)
