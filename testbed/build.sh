#!/usr/bin/env bash
# Builds the testbed's Go binaries; see csi_sidecars/playground/build_testbed.sh (shipped inside
# the package so `csi-sidecars playground up` can build them on a machine with only the package).
exec bash "$(dirname "$0")/../csi_sidecars/playground/build_testbed.sh" "$@"
