#!/usr/bin/env bash
# Builds the testbed's local container images (pause, busybox, csi-sidecars) into the cache
# (<cache>/images, next to the binaries testbed/build.sh builds); see
# csi_sidecars/playground/build_images.py. Needs the pause binary (testbed/build.sh pause),
# busybox-static, apt-get and pip; no registry.
#
# usage: testbed/build-images.sh [pause|busybox|csi-sidecars ...] [--import-into SOCKET]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m csi_sidecars.playground.build_images "$@"
