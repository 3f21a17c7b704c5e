# Developer entry points. `make demo` is the quick start; `make test` runs everything CI runs.
PYTHON ?= python3

.PHONY: install testbed images lint test demo protos crds chart image

install:
	$(PYTHON) -m pip install -q -e '.[dev]'

# Builds the Go testbed binaries (cached outside the repo; a no-op when up to date).
testbed:
	bash testbed/build.sh ci

# The local images of the testbed's real nodes (pause, busybox, csi-sidecars; no registry).
images: testbed
	bash testbed/build-images.sh

lint:
	ruff check .
	ruff format --check .
	mypy
	bash scripts/gen-protos.sh --check
	$(PYTHON) scripts/gen-crds.py --check
	$(PYTHON) scripts/sync-chart-files.py --check
	$(PYTHON) scripts/gen-chart-readme.py --check

test: install testbed images lint
	CSI_SIDECARS_BIN_DIR="$$(bash testbed/build.sh ci | tail -n 1)" $(PYTHON) -m pytest -q -ra

protos:
	bash scripts/gen-protos.sh

# Rewrites csi_sidecars/crds/*.yaml (the snapshot CRDs) from scripts/crdgen/.
crds:
	$(PYTHON) scripts/gen-crds.py

demo: install
	$(PYTHON) -m csi_sidecars playground demo

# Refreshes what the Helm chart derives from the package (CRD and RBAC copies, appVersion), its
# README values table and the committed renderings (review the diff).
chart:
	$(PYTHON) scripts/sync-chart-files.py
	$(PYTHON) scripts/gen-chart-readme.py
	$(PYTHON) scripts/render-chart.py --update

# The csi-sidecars image (needs podman or docker and a registry for the base image; without
# them `make images` assembles an image with the same contract, see docs/real-nodes.md), tagged
# IMAGE:<version>. IMAGE defaults to the local name (pyproject.toml [tool.csi-sidecars]
# local-image); `make image IMAGE=registry.example.com/storage/csi-sidecars` names it for a push.
CONTAINER ?= podman
IMAGE ?= localhost/csi-sidecars
image:
	$(CONTAINER) build -f Containerfile \
	  --build-arg VERSION="$$($(PYTHON) -c 'import csi_sidecars; print(csi_sidecars.__version__)')" \
	  -t $(IMAGE):"$$($(PYTHON) -c 'import csi_sidecars; print(csi_sidecars.__version__)')" .
