"""The import contract of the package (README, "Architecture"), checked on every test run.

Layers, from the top: ``cli`` -> roles and tools -> ``controller`` -> ``csi``, ``kube`` ->
``runtime``. Rules:

1. A shared layer imports only layers below it; never a role, a tool or ``cli``.
2. A role imports only the shared layers (and itself): no other role, no tool, no playground.
3. ``run`` (the bundles) composes roles like ``cli`` does: it imports the shared layers and the
   roles it bundles, and no role imports it.
4. A tool (``csicli``, ``doctor``, ``playground``) imports the shared layers; ``doctor`` may read a
   role's pure constants and formats; ``playground`` may read ``cli``'s role table and runs roles
   only as subprocesses.
5. ``kubernetes_asyncio`` is imported only in ``kube/``; ``cryptography`` only in
   ``playground/``; the generated protobuf modules (``csi_sidecars.csi.gen``) only in ``csi/``
   (everything else uses ``csi_sidecars.csi.messages``).

Every import counts, also the lazy ones inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "csi_sidecars"

RUNTIME = {"runtime"}
SHARED: dict[str, set[str]] = {
    "runtime": set(),
    "csi": RUNTIME,
    "kube": RUNTIME,
    "crds": set(),
    "controller": {"runtime", "csi", "kube"},
}
SHARED_ALL = set(SHARED)
ROLES = {
    "attacher",
    "livenessprobe",
    "provisioner",
    "registrar",
    "resizer",
    "snapshotcontroller",
    "snapshotter",
}
#: Parts that compose roles into one process (``csi-sidecars run``).
COMPOSERS: dict[str, set[str]] = {"run": SHARED_ALL | ROLES}
TOOLS: dict[str, set[str]] = {
    "csicli": SHARED_ALL,
    "doctor": SHARED_ALL | ROLES,
    "playground": SHARED_ALL | {"cli"},
}
#: third-party module -> the only top-level parts of the package that may import it
RESTRICTED = {
    "kubernetes_asyncio": {"kube"},
    "cryptography": {"playground"},
    "csi_sidecars.csi.gen": {"csi"},
}


def _part(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return out


def _allowed(part: str) -> set[str] | None:
    """The package parts ``part`` may import (None: anything, for ``cli`` and ``__init__``)."""
    if part in ("cli", "__init__", "__main__"):
        return None
    if part in SHARED:
        return SHARED[part] | {part}
    if part in ROLES:
        return SHARED_ALL | {part}
    if part in COMPOSERS:
        return COMPOSERS[part] | {part}
    if part in TOOLS:
        return TOOLS[part] | {part}
    return set()  # an unknown part must be added to the contract first


def violations(root: Path) -> list[str]:
    """Every import in the package under ``root`` that breaks the contract."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if "gen" in path.relative_to(root).parts[:2] and _part(path, root) == "csi":
            continue  # generated code
        part = _part(path, root)
        allowed = _allowed(part)
        where = path.relative_to(root.parent)
        if allowed == set():
            found.append(f"{where}: top-level part {part!r} is not in the layer contract")
            continue
        for line, module in _imports(path):
            for restricted, owners in RESTRICTED.items():
                if (module == restricted or module.startswith(restricted + ".")) and (
                    part not in owners
                ):
                    found.append(f"{where}:{line}: imports {module} (only {sorted(owners)} may)")
            if not module.startswith("csi_sidecars."):
                continue
            target = module.split(".")[1]
            if target == "__version__" or allowed is None:
                continue
            if target not in allowed:
                found.append(f"{where}:{line}: {part} must not import csi_sidecars.{target}")
    return sorted(set(found))


def test_the_package_keeps_the_contract() -> None:
    assert violations(PACKAGE) == []


@pytest.mark.parametrize(
    ("file", "source", "expected"),
    [
        ("attacher/bad.py", "from csi_sidecars.provisioner import flags\n", "attacher must not"),
        ("attacher/bad.py", "def f():\n    import csi_sidecars.playground.pki\n", "playground"),
        ("kube/bad.py", "from csi_sidecars.controller import runner\n", "kube must not"),
        ("resizer/bad.py", "import kubernetes_asyncio\n", "imports kubernetes_asyncio"),
        ("provisioner/bad.py", "from csi_sidecars.csi.gen import csi_pb2\n", "csi.gen"),
        ("runtime/bad.py", "from csi_sidecars.kube import objects\n", "runtime must not"),
        ("newpart/x.py", "x = 1\n", "not in the layer contract"),
        ("livenessprobe/bad.py", "from csi_sidecars.run import node\n", "must not import"),
        ("run/bad.py", "from csi_sidecars.csicli import command\n", "run must not"),
    ],
)
def test_a_deliberate_violation_is_reported(
    tmp_path: Path, file: str, source: str, expected: str
) -> None:
    root = tmp_path / "csi_sidecars"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__", "gen"))
    target = root / file
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source, encoding="utf-8")
    found = violations(root)
    assert any(expected in v and file.split("/", maxsplit=1)[0] in v for v in found), found
