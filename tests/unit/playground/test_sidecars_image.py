"""sidecars_image: the Containerfile's final stage is the image's contract."""

from __future__ import annotations

from pathlib import Path

from csi_sidecars.playground import sidecars_image
from csi_sidecars.playground.images import Entry

CONTAINERFILE = """\
# a comment
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VERSION
ENV BUILD_ONLY=1
USER 1000
RUN pip wheel .

FROM ${PYTHON_IMAGE}
ARG VERSION
ARG SOURCE_URL=https://example.org/src
LABEL org.opencontainers.image.title="csi-sidecars" \\
      org.opencontainers.image.source="${SOURCE_URL}" \\
      org.opencontainers.image.version="${VERSION}"
RUN rm -rf /usr/local/bin/pip*
COPY --from=build /opt/csi-sidecars /opt/csi-sidecars
COPY LICENSE /licenses/LICENSE
ENV PATH=/opt/csi-sidecars/bin:${PATH} \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["csi-sidecars"]
CMD ["--help"]
"""


def test_the_final_stage_is_read_and_build_stages_are_not() -> None:
    contract = sidecars_image.parse_containerfile(CONTAINERFILE, {"VERSION": "9.9.9"})
    assert contract.entrypoint == ["csi-sidecars"]
    assert contract.cmd == ["--help"]
    assert contract.user == "65532:65532"
    assert contract.env == {
        "PATH": f"/opt/csi-sidecars/bin:{sidecars_image.BASE_PATH}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    assert contract.labels == {
        "org.opencontainers.image.title": "csi-sidecars",
        "org.opencontainers.image.source": "https://example.org/src",
        "org.opencontainers.image.version": "9.9.9",
    }
    # COPY --from is what the assembly replaces; plain COPY of repository files is kept.
    assert contract.copies == [("LICENSE", "/licenses/LICENSE")]


def test_without_a_containerfile_the_built_in_contract_is_the_same(tmp_path: Path) -> None:
    contract, from_file = sidecars_image.contract_of(tmp_path)
    assert not from_file
    parsed = sidecars_image.parse_containerfile(CONTAINERFILE, {"VERSION": "1"})
    assert (contract.entrypoint, contract.cmd, contract.user, contract.env) == (
        parsed.entrypoint,
        parsed.cmd,
        parsed.user,
        parsed.env,
    )


def test_a_tree_becomes_layer_entries_with_links_modes_and_skips(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "share" / "doc").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / "README").write_text("x")
    tool = root / "usr" / "bin" / "python3.11"
    tool.write_text("#!")
    tool.chmod(0o755)
    (root / "usr" / "bin" / "python3").symlink_to("python3.11")
    (root / "lib").symlink_to("usr/lib")
    entries = {e.path: e for e in sidecars_image.tree_entries(root, skip=("usr/share/doc",))}
    assert entries["usr/bin/python3"] == Entry("usr/bin/python3", "symlink", target="python3.11")
    assert entries["lib"].kind == "symlink"
    assert entries["usr/bin/python3.11"].mode == 0o755
    assert "usr/share/doc" not in entries and "usr/share/doc/README" not in entries
    prefixed = sidecars_image.tree_entries(root, prefix="opt/x/")
    assert all(e.path.startswith("opt/x/") for e in prefixed)


def test_the_runtime_requirements_come_from_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["grpcio>=1", "click"]\n'
        '[project.optional-dependencies]\ndev = ["pytest"]\n'
    )
    assert sidecars_image.runtime_requirements(tmp_path) == ["grpcio>=1", "click"]
    assert sidecars_image.site_packages("3.11") == "opt/csi-sidecars/lib/python3.11/site-packages"
