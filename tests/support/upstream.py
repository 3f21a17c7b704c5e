"""Finding upstream Go modules (the reference implementation) in the Go module cache at test time.

Some tests compare our data with files published in the Go sidecars' modules, e.g. the snapshot
CRDs and CEL golden cases of external-snapshotter. Those files are never copied into this
repository: the testbed build downloads the modules into the Go module cache, and the tests read
them from there. A missing module skips the test with the reason, except under ``CI=true``, where
it fails: CI must never go green by skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

#: external-snapshotter's client module: the CRDs (config/crd) and CEL cases (hack/cel-tests).
SNAPSHOTTER_CLIENT = "github.com/kubernetes-csi/external-snapshotter/client/v8"
SNAPSHOTTER_VERSION = "v8.6.0"


def in_ci() -> bool:
    """Whether missing upstream parts are failures (CI) rather than skips."""
    return os.environ.get("CI", "").lower() == "true"


def module_cache() -> Path:
    """The Go module cache: ``$GOMODCACHE``, ``go env GOMODCACHE``, else ``$GOPATH/pkg/mod``."""
    explicit = os.environ.get("GOMODCACHE")
    if explicit:
        return Path(explicit)
    go = shutil.which("go")
    if go is not None:
        try:
            out = subprocess.run(
                [go, "env", "GOMODCACHE"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            return Path(out)
    gopath = os.environ.get("GOPATH", "").split(os.pathsep)[0] or str(Path.home() / "go")
    return Path(gopath) / "pkg" / "mod"


def _escape(module: str) -> str:
    """The module cache's case encoding: an upper-case letter becomes ``!`` plus its lower case."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), module)


def module_dir(module: str, version: str) -> Path | None:
    """The extracted source of ``module@version`` in the module cache, or None when absent."""
    path = module_cache() / f"{_escape(module)}@{version}"
    return path if path.is_dir() else None


def require_module(module: str = SNAPSHOTTER_CLIENT, version: str = SNAPSHOTTER_VERSION) -> Path:
    """The source of ``module@version``; skips the test (fails it under ``CI=true``) when absent."""
    path = module_dir(module, version)
    if path is not None:
        return path
    message = (
        f"Go module {module}@{version} is not in the module cache ({module_cache()}); "
        f"fetch it with: GOFLAGS=-mod=mod go mod download {module}@{version} "
        f"(run from a directory outside any Go module), or run testbed/build.sh"
    )
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


#: external-snapshotter's main module: the deployment manifests (deploy/kubernetes).
SNAPSHOTTER_MODULE = "github.com/kubernetes-csi/external-snapshotter/v8"


def _expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of a container argument (unknown names stay as written)."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def manifest_args(manifest: Path, container: str) -> list[list[str]]:
    """The arguments of every container named ``container`` in a YAML manifest, as kubelet
    passes them: ``$(VAR)`` replaced by the container's plain ``env`` values."""
    import yaml

    found: list[list[str]] = []
    for doc in yaml.safe_load_all(manifest.read_text()):
        pod = ((doc or {}).get("spec") or {}).get("template", {}).get("spec") or {}
        for c in pod.get("containers") or []:
            if c.get("name") != container:
                continue
            env = {e["name"]: e["value"] for e in c.get("env") or [] if "value" in e}
            found.append([_expand(str(a), env) for a in c.get("args") or []])
    return found


def manifest_rules(manifest: Path) -> dict[str, set[tuple[str, str, str]]]:
    """The rules of every ClusterRole and Role in a YAML manifest, by role name, as
    ``(apiGroup, resource, verb)`` triples."""
    import yaml

    return {
        doc["metadata"]["name"]: rule_triples(doc.get("rules") or [])
        for doc in yaml.safe_load_all(manifest.read_text())
        if doc and doc.get("kind") in ("ClusterRole", "Role")
    }


def rule_triples(rules: list[dict[str, list[str]]]) -> set[tuple[str, str, str]]:
    """RBAC rules flattened to ``(apiGroup, resource, verb)`` triples."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
    }
