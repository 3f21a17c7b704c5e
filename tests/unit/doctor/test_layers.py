"""doctor is a tool above the roles: it reads the cluster through kube/ and imports no role."""

from __future__ import annotations

import ast
from pathlib import Path

import csi_sidecars.doctor

FORBIDDEN = (
    "kubernetes_asyncio",
    "grpc",
    "csi_sidecars.csi",
    "csi_sidecars.provisioner",
    "csi_sidecars.attacher",
    "csi_sidecars.registrar",
    "csi_sidecars.livenessprobe",
    "csi_sidecars.playground",
    "csi_sidecars.controller",
)


def test_doctor_imports_no_role_and_no_kubernetes_client() -> None:
    package = Path(csi_sidecars.doctor.__file__).parent
    found = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            else:
                continue
            found += [
                (path.name, m)
                for m in modules
                if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)
            ]
    assert found == []
