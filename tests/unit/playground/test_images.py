"""images: deterministic layers, docker-archive tars, the busybox and pause images."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from csi_sidecars.playground import images
from csi_sidecars.playground.images import Entry, ImageSpec


def _members(tar_path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar_path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_a_layer_is_sorted_owned_by_root_with_fixed_times(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"binary")
    layer = tmp_path / "layer.tar"
    images.write_layer(
        [
            Entry("usr/bin/tool", source=src, mode=0o755),
            Entry("bin/sh", "symlink", target="/bin/busybox"),
            Entry("etc", "dir", mode=0o755),
            Entry("etc/passwd", data=b"root:x:0:0::/:/bin/sh\n", uid=5),
        ],
        layer,
    )
    members = _members(layer)
    assert list(members) == ["bin/sh", "etc", "etc/passwd", "usr/bin/tool"]
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["usr/bin/tool"].mode == 0o755
    assert members["etc/passwd"].uid == 5
    assert {m.mtime for m in members.values()} == {images.EPOCH}


def test_an_image_tar_is_a_docker_archive_with_a_stable_id(tmp_path: Path) -> None:
    spec = ImageSpec(
        "localhost/x:1",
        layers=[[Entry("a", data=b"1")], [Entry("b", data=b"2")]],
        entrypoint=["/a"],
        user="65532:65532",
        labels={"k": "v"},
    )
    first = images.write_image(spec, tmp_path / "one.tar")
    second = images.write_image(spec, tmp_path / "two.tar")
    assert first == second
    with tarfile.open(tmp_path / "one.tar") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        names = tar.getnames()
    assert manifest[0]["RepoTags"] == ["localhost/x:1"]
    assert all(layer in names for layer in manifest[0]["Layers"])
    assert len(config["rootfs"]["diff_ids"]) == 2
    assert config["config"]["Entrypoint"] == ["/a"]
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Labels"] == {"k": "v"}


@pytest.mark.skipif(not images.BUSYBOX_BINARY.exists(), reason="busybox-static not installed")
def test_the_busybox_image_links_every_applet_to_the_binary(tmp_path: Path) -> None:
    spec = images.busybox_spec()
    assert spec.name == images.busybox_image_name()
    entries = spec.layers[0]
    assert isinstance(entries, list)
    links = {e.path: e.target for e in entries if e.kind == "symlink"}
    assert links["bin/sh"] == "/bin/busybox"
    assert "bin/busybox" not in links
    assert {e.path for e in entries if e.kind == "dir"} >= {"bin", "tmp", "etc"}


def test_a_missing_busybox_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="busybox-static"):
        images.busybox_spec(tmp_path / "busybox")


def test_small_images_are_built_once_and_rebuilt_when_the_binary_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pause = bin_dir / "pause"
    pause.write_bytes(b"#!pause")
    pause.chmod(0o755)
    busybox = tmp_path / "busybox"
    busybox.write_text("#!/bin/sh\necho 'BusyBox v1.2.3 (test)'; [ \"$1\" ] && echo bin/sh\n")
    busybox.chmod(0o755)
    monkeypatch.setattr(images, "BUSYBOX_BINARY", busybox)
    out = tmp_path / "images"
    built = images.ensure_small_images(bin_dir, out)
    assert [b.name for b in built] == [images.PAUSE_IMAGE, f"{images.REPOSITORY}/busybox:1.2.3"]
    stamp = built[0].tar.stat().st_mtime_ns
    again = images.ensure_small_images(bin_dir, out)
    assert again[0].tar.stat().st_mtime_ns == stamp
    pause.write_bytes(b"#!pause2")
    import os

    os.utime(pause, ns=(stamp + 10**9, stamp + 10**9))
    rebuilt = images.ensure_small_images(bin_dir, out)
    assert rebuilt[0].tar.stat().st_mtime_ns != stamp
