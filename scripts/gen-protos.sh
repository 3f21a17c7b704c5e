#!/usr/bin/env bash
# Regenerate the committed Python modules in csi_sidecars/csi/gen/ from the .proto files in
# csi_sidecars/csi/proto/ (CSI v1.12.0 and kubelet plugin registration v1).
#
# Usage:
#   scripts/gen-protos.sh           regenerate csi_sidecars/csi/gen/ in place
#   scripts/gen-protos.sh --check   regenerate into a temporary directory and exit 1 with a diff
#                                   when the committed files differ (used by CI)
#
# The generator versions are pinned (grpcio-tools 1.71.0, mypy-protobuf 3.6.0) so that the output
# is byte-for-byte reproducible; install them with `pip install -e '.[dev]'`. PYTHON selects the
# interpreter (default python3).
set -euo pipefail

GRPC_TOOLS_VERSION="1.71.0"
MYPY_PROTOBUF_VERSION="3.6.0"
PYTHON="${PYTHON:-python3}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
proto_dir="$root/csi_sidecars/csi/proto"
gen_dir="$root/csi_sidecars/csi/gen"
protos=(csi.proto pluginregistration.proto)

mode="write"
case "${1:-}" in
  "") ;;
  --check) mode="check" ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "unknown argument: $1 (use --check)" >&2; exit 2 ;;
esac

installed() {
  "$PYTHON" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null \
    || echo "missing"
}
for pin in "grpcio-tools=$GRPC_TOOLS_VERSION" "mypy-protobuf=$MYPY_PROTOBUF_VERSION"; do
  name="${pin%%=*}" want="${pin#*=}" have="$(installed "${pin%%=*}")"
  if [[ "$have" != "$want" ]]; then
    echo "gen-protos: need $name==$want, found $have (pip install -e '.[dev]')" >&2
    exit 2
  fi
done

# protoc finds protoc-gen-mypy / protoc-gen-mypy_grpc next to the interpreter's scripts.
bindir="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
mypy_plugin="$bindir/protoc-gen-mypy"
mypy_grpc_plugin="$bindir/protoc-gen-mypy_grpc"
[[ -x "$mypy_plugin" ]] || mypy_plugin="$(command -v protoc-gen-mypy)"
[[ -x "$mypy_grpc_plugin" ]] || mypy_grpc_plugin="$(command -v protoc-gen-mypy_grpc)"

generate() {
  local out="$1"
  mkdir -p "$out"
  (cd "$proto_dir" && "$PYTHON" -m grpc_tools.protoc \
    -I. \
    --plugin=protoc-gen-mypy="$mypy_plugin" \
    --plugin=protoc-gen-mypy_grpc="$mypy_grpc_plugin" \
    --python_out="$out" --grpc_python_out="$out" \
    --mypy_out=quiet:"$out" --mypy_grpc_out=quiet:"$out" \
    "${protos[@]}")
  # protoc writes top-level imports ("import csi_pb2"); make them package-relative so that
  # `from csi_sidecars.csi.gen import csi_pb2_grpc` works without touching sys.path.
  local f
  for f in "$out"/*_grpc.py "$out"/*_grpc.pyi; do
    sed -i -E 's/^import ([a-z_]+_pb2)( as .*)?$/from . import \1\2/' "$f"
  done
  cat > "$out/__init__.py" <<'PY'
"""Generated protobuf and gRPC modules. Do not edit: run scripts/gen-protos.sh.

Only csi_sidecars.csi imports these; other packages use the CSI layer's API.
"""
PY
}

if [[ "$mode" == "write" ]]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  generate "$tmp/gen"
  rm -f "$gen_dir"/*_pb2.py "$gen_dir"/*_pb2.pyi "$gen_dir"/*_pb2_grpc.py "$gen_dir"/*_pb2_grpc.pyi
  mkdir -p "$gen_dir"
  cp "$tmp"/gen/* "$gen_dir"/
  echo "gen-protos: wrote $(ls "$tmp/gen" | wc -l) files to ${gen_dir#"$root"/}"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  generate "$tmp/gen"
  if diff -ru -x '__pycache__' "$gen_dir" "$tmp/gen"; then
    echo "gen-protos: csi_sidecars/csi/gen is up to date"
  else
    echo "gen-protos: csi_sidecars/csi/gen differs from the .proto files; run scripts/gen-protos.sh" >&2
    exit 1
  fi
fi
