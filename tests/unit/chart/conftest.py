"""Fixtures of the chart tests: the helm binary (testbed/build.sh helm) and a renderer.

The tests need helm: without it they skip, except under ``CI=true`` where they fail (CI builds
helm with the rest of the testbed). helm's cache, config and data directories point into the
session's temporary directory, so no test touches the user's helm setup.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from csi_sidecars.playground import binaries

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "csi-sidecars"
#: Values every render needs (the chart cannot default a driver).
MINIMAL: dict[str, Any] = {
    "driver": {
        "name": "csi.example.com",
        "image": {"registry": "registry.example.com", "repository": "example/driver", "tag": "v1"},
    }
}


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (their names have dashes) as a module."""
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, recursively (lists and scalars replace)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class Rendered:
    """The objects of one ``helm template``."""

    docs: list[dict[str, Any]]

    def kinds(self) -> list[str]:
        """``Kind/name`` of every object."""
        return [f"{d['kind']}/{d['metadata']['name']}" for d in self.docs]

    def get(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The one object of ``kind`` (and ``name``)."""
        found = [
            d for d in self.docs if d["kind"] == kind and name in (None, d["metadata"]["name"])
        ]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} objects in {self.kinds()}"
        return found[0]

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind``."""
        return [d for d in self.docs if d["kind"] == kind]

    def container(self, workload: str, name: str) -> dict[str, Any]:
        """A container of a Deployment or DaemonSet whose name ends with ``workload``."""
        for doc in self.docs:
            if doc["kind"] in ("Deployment", "DaemonSet") and doc["metadata"]["name"].endswith(
                workload
            ):
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    if container["name"] == name:
                        return dict(container)
        raise AssertionError(f"no container {name} in {workload}: {self.kinds()}")

    def containers(self, workload: str) -> list[str]:
        """The container names of the workload whose name ends with ``workload``."""
        for doc in self.docs:
            if doc["kind"] in ("Deployment", "DaemonSet") and doc["metadata"]["name"].endswith(
                workload
            ):
                return [c["name"] for c in doc["spec"]["template"]["spec"]["containers"]]
        return []


class Helm:
    """Runs helm on the chart with values written to a temporary file."""

    def __init__(self, binary: str, tmp: Path) -> None:
        self.binary = binary
        self.tmp = tmp
        self._count = 0

    def _values(self, values: dict[str, Any]) -> Path:
        self._count += 1
        path = self.tmp / f"values-{self._count}.yaml"
        path.write_text(json.dumps(values))
        return path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """helm ARGS; with ``check``, a non-zero exit fails the test with helm's stderr."""
        proc = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, check=False, timeout=120
        )
        if check and proc.returncode:
            pytest.fail(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def template(
        self, values: dict[str, Any], *args: str, minimal: bool = True, namespace: str = "storage"
    ) -> Rendered:
        """``helm template csi`` with ``values`` (merged over :data:`MINIMAL`)."""
        path = self._values(merged(MINIMAL, values) if minimal else values)
        out = self.run("template", "csi", str(CHART), "-n", namespace, "-f", str(path), *args)
        return Rendered([d for d in yaml.safe_load_all(out.stdout) if d])

    def error(self, values: dict[str, Any], *args: str, minimal: bool = True) -> str:
        """The error of a ``helm template`` that must fail."""
        path = self._values(merged(MINIMAL, values) if minimal else values)
        proc = self.run("template", "csi", str(CHART), "-f", str(path), *args, check=False)
        assert proc.returncode != 0, f"helm template succeeded with {values}"
        return proc.stderr


@pytest.fixture(scope="session")
def helm_binary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The helm binary, with helm's home directories in a temporary directory."""
    explicit = os.environ.get("HELM")
    if explicit:
        path = explicit
    else:
        absent = binaries.missing(["helm"])
        if absent:
            message = f"helm is not built in {binaries.default_bin_dir()} (testbed/build.sh helm)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        path = str(binaries.binary("helm"))
    home = tmp_path_factory.mktemp("helm-home")
    saved = {
        k: os.environ.get(k) for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")
    }
    for key in saved:
        os.environ[key] = str(home / key.lower())
    try:
        yield path
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def helm(helm_binary: str, tmp_path: Path) -> Helm:
    """A :class:`Helm` writing its values files under the test's temporary directory."""
    return Helm(helm_binary, tmp_path)
