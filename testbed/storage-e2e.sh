#!/usr/bin/env bash
# Runs Kubernetes' External Storage e2e suites (e2e.test v1.36.3) against the playground with a
# real kubelet node and our sidecars; see testbed/storage_e2e.py. Not part of CI (slow).
#
# usage: testbed/storage-e2e.sh [--focus REGEX] [--skip REGEX] [--parallel N] [--nodes N]
#                               [--timeout 3h] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
bash testbed/build.sh ci e2e >/dev/null
exec python3 testbed/storage_e2e.py "$@"
