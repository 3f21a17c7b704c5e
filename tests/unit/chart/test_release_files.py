"""What the chart assumes about the image and the package, read from the files themselves.

The chart runs ``command: [csi-sidecars, <role>]`` as user 65532 with a read-only root
filesystem; the Containerfile must build exactly that image, from the package's version, with
no build tools or playground dependencies. The wheel must build and carry the ``csi-sidecars``
entry point and the license pyproject declares. The image's name is written in one place
(pyproject.toml) and nowhere else differently.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from csi_sidecars import __version__
from csi_sidecars.playground import images
from tests.unit.chart.conftest import CHART, ROOT, load_script

CONTAINERFILE = (ROOT / "Containerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def instructions(text: str) -> list[tuple[str, str]]:
    """The Containerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", "", text)
    out = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage (the image)."""
    steps = instructions(CONTAINERFILE)
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__


def test_image_entrypoint_is_the_command_the_chart_runs() -> None:
    entrypoints = [json.loads(v) for k, v in final_stage() if k == "ENTRYPOINT"]
    assert entrypoints[-1] == ["csi-sidecars"]
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts == {"csi-sidecars": "csi_sidecars.cli:main"}
    template = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "command: [csi-sidecars, {{ .role }}]" in template
    env = " ".join(v for k, v in final_stage() if k == "ENV")
    assert "PATH=/opt/csi-sidecars/bin:" in env


def test_image_user_is_the_user_the_chart_runs_as() -> None:
    users = [v for k, v in final_stage() if k == "USER"]
    uid, _, gid = users[-1].partition(":")
    pod = VALUES["controller"]["podSecurityContext"]
    assert (int(uid), int(gid)) == (pod["runAsUser"], pod["runAsGroup"])
    assert pod["runAsNonRoot"] is True and int(uid) != 0


def test_image_labels() -> None:
    labels = " ".join(v for k, v in final_stage() if k == "LABEL")
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert 'org.opencontainers.image.source="${SOURCE_URL}"' in labels
    assert f'org.opencontainers.image.licenses="{PYPROJECT["project"]["license"]}"' in labels


def test_image_has_no_build_tools_or_playground_extra() -> None:
    text = CONTAINERFILE.lower()
    for banned in ("apt-get", "gcc", "build-essential", "[playground]", "[dev]", "cryptography"):
        assert banned not in text.replace("no playground extra\n# (cryptography)", ""), banned
    final = " ".join(v for k, v in final_stage() if k == "RUN")
    assert "rm -rf /usr/local/bin/pip*" in final
    copies = [v for k, v in final_stage() if k == "COPY"]
    assert copies == [
        "--from=build /opt/csi-sidecars /opt/csi-sidecars",
        "LICENSE /licenses/LICENSE",
    ]
    build = " ".join(v for k, v in instructions(CONTAINERFILE) if k == "RUN")
    assert "pip uninstall --yes setuptools pip" in build


def _version_check() -> str:
    (run,) = [v for k, v in instructions(CONTAINERFILE) if k == "RUN" and "__version__" in v]
    return run


@pytest.mark.parametrize(("version", "ok"), [(__version__, True), ("9.9.9", False), ("", False)])
def test_image_build_refuses_another_version(tmp_path: Path, version: str, ok: bool) -> None:
    """The build's version check, run as the build runs it (VERSION is a build argument)."""
    (tmp_path / "csi_sidecars").mkdir()
    shutil.copy(ROOT / "csi_sidecars" / "__init__.py", tmp_path / "csi_sidecars")
    proc = subprocess.run(
        ["sh", "-c", _version_check().replace("python -c", f"{sys.executable} -c", 1)],
        cwd=tmp_path,
        env={"VERSION": version, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode == 0) is ok, proc.stderr
    if not ok:
        assert f"is not the package version '{__version__}'" in proc.stderr


def test_license_is_the_apache_license_pyproject_declares() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply the Apache License to your work." in text
    assert len(text) > 11000


def test_changelog_has_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{__version__}]" in text
    assert "## [Unreleased]" in text


def test_wheel_builds_with_the_entry_point_and_license(tmp_path: Path) -> None:
    """``pip wheel`` of a copy of the sources (a build writes build/ and *.egg-info)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src)
    shutil.copytree(
        ROOT / "csi_sidecars", src / "csi_sidecars", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path / "wheels"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("*.whl")
    assert wheel.name == f"csi_sidecars-{__version__}-py3-none-any.whl"
    info = f"csi_sidecars-{__version__}.dist-info"
    with zipfile.ZipFile(wheel) as zf:
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
        metadata = zf.read(f"{info}/METADATA").decode()
        names = zf.namelist()
    assert "[console_scripts]\ncsi-sidecars = csi_sidecars.cli:main" in entry_points
    assert "License-Expression: Apache-2.0" in metadata
    assert f"{info}/licenses/LICENSE" in names
    # the playground's certificate dependency is an extra, not a dependency of the image
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "cryptography" in r] == [
        'Requires-Dist: cryptography>=42; extra == "playground"'
    ]
    assert "csi_sidecars/crds/volumesnapshots.snapshot.storage.k8s.io.yaml" in names


# Runs the CLI with the cryptography package hidden from every import finder, as in the image
# (which has no playground extra): find_spec returns None and an import fails, as when absent.
_WITHOUT_CRYPTOGRAPHY = """
import sys

class Hide:
    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if name == "cryptography" or name.startswith("cryptography."):
            return None
        return self.inner.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)

sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
sys.argv[0] = "csi-sidecars"
from csi_sidecars.cli import main
main()
"""


def _cli_without_cryptography(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_CRYPTOGRAPHY, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=ROOT,
    )


def test_the_image_cli_works_without_the_playground_extra() -> None:
    listed = _cli_without_cryptography("--help")
    assert listed.returncode == 0, listed.stderr
    for role in ("provisioner", "attacher", "snapshotter", "resizer", "playground"):
        assert role in listed.stdout
    assert _cli_without_cryptography("provisioner", "--help").returncode == 0
    playground = _cli_without_cryptography("playground", "up", "--roles", "none")
    assert playground.returncode == 1
    assert "pip install 'csi-sidecars[playground]'" in playground.stderr
    assert "Traceback" not in playground.stderr


# -- the image's name: one place (pyproject.toml), copied by scripts/sync-chart-files.py --------

sync = load_script("sync-chart-files")
IMAGE, SOURCE = sync.project_metadata()
LOCAL_IMAGE = PYPROJECT["tool"]["csi-sidecars"]["local-image"]
#: An image reference ending in csi-sidecars, with a registry host (a dotted name or localhost).
IMAGE_REF = re.compile(
    r"\b((?:[a-z0-9-]+\.)+[a-z]{2,}|localhost)((?:/[\w.-]+)*/csi-sidecars)(?![\w-]|\.\w)"
)
#: Where an image name may be written (README, docs, chart, build files, the package's code).
NAMED_IN = (
    "README.md",
    "Containerfile",
    "Makefile",
    "docs/*.md",
    "testbed/*",
    "charts/csi-sidecars/**/*",
    "csi_sidecars/**/*.py",
    "scripts/*.py",
)


def test_the_chart_and_the_containerfile_carry_pyprojects_image_and_source() -> None:
    registry, _, repository = IMAGE.partition("/")
    assert (VALUES["image"]["registry"], VALUES["image"]["repository"]) == (registry, repository)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["sources"] == [SOURCE]
    assert [v for k, v in instructions(CONTAINERFILE) if k == "ARG" and "SOURCE_URL" in v] == [
        f"SOURCE_URL={SOURCE}"
    ]
    assert sync.stale() == [], "run python scripts/sync-chart-files.py"


def test_local_builds_use_pyprojects_local_name() -> None:
    assert f"{LOCAL_IMAGE}:{__version__}" == images.CSI_SIDECARS_IMAGE
    makefile = (ROOT / "Makefile").read_text()
    assert f"\nIMAGE ?= {LOCAL_IMAGE}\n" in makefile
    assert "-t $(IMAGE):" in makefile


def test_no_other_csi_sidecars_image_name_anywhere() -> None:
    """Every image reference to csi-sidecars in the repository is one of the two names; hosts
    of the documentation's examples (``*.example.com``) and the source URL's excepted."""
    allowed = {IMAGE, LOCAL_IMAGE}
    found: dict[str, set[str]] = {}
    for pattern in NAMED_IN:
        for path in sorted(ROOT.glob(pattern)):
            if not path.is_file() or path.suffix in (".tar", ".gz", ".pyc"):
                continue
            for host, rest in IMAGE_REF.findall(path.read_text(errors="replace")):
                if host == "github.com" or host.endswith("example.com"):
                    continue
                found.setdefault(host + rest, set()).add(str(path.relative_to(ROOT)))
    assert IMAGE in found and LOCAL_IMAGE in found
    assert {name: paths for name, paths in found.items() if name not in allowed} == {}


def test_sync_sets_the_image_of_the_top_level_block_only() -> None:
    values = (
        "image:\n  # -- a\n  registry: old.io\n  # -- b\n  repository: old/path\n  tag: ''\n"
        "driver:\n  image:\n    registry: ''\n    repository: ''\n"
    )
    new = sync.with_image(values, "registry.example.com/team/sidecars")
    assert yaml.safe_load(new) == {
        "image": {"registry": "registry.example.com", "repository": "team/sidecars", "tag": ""},
        "driver": {"image": {"registry": "", "repository": ""}},
    }
    with pytest.raises(ValueError, match="no top-level image: block"):
        sync.with_image("driver:\n  image:\n    registry: x\n    repository: y\n", IMAGE)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[tool.csi-sidecars]\nimage = "no-registry"\n', "must be REGISTRY/PATH"),
        ('[tool.csi-sidecars]\nimage = "ghcr.io/a/b:v1"\n', "must be REGISTRY/PATH"),
        ('[tool.csi-sidecars]\nimage = "ghcr.io/a/b"\n', "Source is missing"),
    ],
)
def test_sync_refuses_a_bad_pyproject(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sync.project_metadata(text)
