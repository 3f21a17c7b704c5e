# Developer entry points. `make demo` is the quick start; `make test` runs everything CI runs.
PYTHON ?= python3

.PHONY: install testbed images lint test demo protos crds

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

test: install testbed images lint
	CSI_SIDECARS_BIN_DIR="$$(bash testbed/build.sh ci | tail -n 1)" $(PYTHON) -m pytest -q -ra

protos:
	bash scripts/gen-protos.sh

# Rewrites csi_sidecars/crds/*.yaml (the snapshot CRDs) from scripts/crdgen/.
crds:
	$(PYTHON) scripts/gen-crds.py

demo: install
	$(PYTHON) -m csi_sidecars playground demo
