#!/usr/bin/env bash
# Builds the testbed's Go binaries from pinned Go modules into a cache directory outside the
# repository. A binary is rebuilt only when its pinned version changes. The last line printed is
# the binary directory.
#
# usage: testbed/build.sh (or this file) [ci|all|NAME...]
#   ci   (default) what CI's tests need: etcd, kube-apiserver, kube-controller-manager,
#        kube-scheduler, kubectl, kubelet, pause (the sandbox image's binary, built with gcc),
#        csi-provisioner, csi-attacher, csi-resizer, csi-snapshotter, snapshot-controller,
#        csi-sanity, helm (the chart's tests), and the external-snapshotter client module
#        (snapshot-client: CRDs to compare with, no binary)
#   all  everything but e2e
#   e2e  e2e.test, agnhost and ginkgo (testbed/storage-e2e.sh; not in ci or all)
#   NAME one of the names below
#
# environment: CSI_SIDECARS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/csi-sidecars)
set -euo pipefail

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
PROVISIONER_VERSION=v6.3.0
ATTACHER_VERSION=v4.12.0
SNAPSHOTTER_VERSION=v8.6.0
# v2.2.1 is not served by the module proxy this project can reach; v2.2.0 is.
RESIZER_VERSION=v2.2.0
CSI_TEST_VERSION=v5.6.0
HELM_VERSION=v3.22.0

CACHE="${CSI_SIDECARS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/csi-sidecars}"
BIN="$CACHE/bin"
WORK="$CACHE/build"
mkdir -p "$BIN" "$WORK"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export CGO_ENABLED=0

say() { echo "build.sh: $*" >&2; }

# fresh NAME VERSION: true when NAME is built at VERSION already.
fresh() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$BIN/.$1.version"; say "built $1 $2"; }

# module_dir MODULE@VERSION: a writable copy of the downloaded module source.
module_dir() {
  local src dst
  src=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  dst="$WORK/src/${1//\//_}"
  if [ ! -d "$dst" ]; then
    mkdir -p "$(dirname "$dst")"
    cp -r "$src" "$dst.tmp" && chmod -R u+w "$dst.tmp" && mv "$dst.tmp" "$dst"
  fi
  echo "$dst"
}

# kube_wrapper DIR PACKAGE...: a module in DIR requiring k8s.io/kubernetes with its staging
# modules at their published versions and PACKAGEs imported, tidied, ready for go build. An
# argument "replace X => Y" is a go.mod line instead.
kube_wrapper() {
  local dir=$1 staging minor p
  shift
  mkdir -p "$dir"
  minor="v0.${K8S_VERSION#v1.}"
  (
    cd "$dir"
    {
      echo "module csi-sidecars-testbed/$(basename "$dir")"
      echo "go 1.26.0"
      echo "require k8s.io/kubernetes $K8S_VERSION"
      for p in "$@"; do case "$p" in "replace "*) echo "$p" ;; esac; done
    } >go.mod
    # k8s.io/kubernetes points its staging modules at local paths; use their published versions.
    staging=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$staging" | awk '{print $1}' | while read -r m; do
      echo "replace $m => $m $minor" >>go.mod
    done
    {
      echo '//go:build tools'
      echo 'package tools'
      echo 'import ('
      for p in "$@"; do case "$p" in "replace "*) ;; *) echo "	_ \"$p\"" ;; esac; done
      echo ')'
    } >tools.go
    GOFLAGS="$GOFLAGS -mod=mod" go mod tidy >/dev/null 2>&1 || GOFLAGS="$GOFLAGS -mod=mod" go mod tidy
  )
}

KUBE_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
  -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"

build_kube() {
  local names="kube-apiserver kube-controller-manager kube-scheduler kubectl" n all=1 pkgs=()
  for n in $names; do fresh "$n" "$K8S_VERSION" || all=0; done
  [ "$all" = 1 ] && return 0
  say "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl); a first build takes 10-20 minutes on 2 cores"
  local dir="$WORK/kubernetes-$K8S_VERSION"
  for n in $names; do pkgs+=("k8s.io/kubernetes/cmd/$n"); done
  kube_wrapper "$dir" "${pkgs[@]}"
  (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "$KUBE_LDFLAGS" -o "$BIN/" "${pkgs[@]}")
  for n in $names; do stamp "$n" "$K8S_VERSION"; done
}

# kubelet has dependencies the control plane does not (cadvisor, runc's libcontainer, CRI
# client), so it gets its own wrapper module; the shared Go build cache keeps it quick (about
# a minute after the control plane, five cold).
#
# Two of kubelet's host-wide side effects are turned off in a patched copy of the module
# (hard links to the module cache but for three files; the wrapper module replaces
# k8s.io/kubernetes with it): at start kubelet would set six kernel sysctls
# (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops, ...) for the whole machine, now it
# only logs that they differ; and it would put legacy container-log symlinks in
# /var/log/containers, now in "container-logs" relative to its working directory (the testbed
# runs it in the node's directory).
KUBELET_BUILD="$K8S_VERSION+testbed.1"
build_kubelet() {
  fresh kubelet "$KUBELET_BUILD" && return 0
  say "building kubelet $K8S_VERSION"
  local dir="$WORK/kubelet-$K8S_VERSION" src copy f
  src=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  copy="$WORK/kubernetes-$K8S_VERSION-kubelet-src"
  rm -rf "$copy"
  cp -al "$src" "$copy" 2>/dev/null || cp -r "$src" "$copy"
  for f in pkg/kubelet/cm/container_manager_linux.go pkg/kubelet/kubelet.go pkg/kubelet/kuberuntime/legacy.go; do
    chmod u+w "$copy/$(dirname "$f")"
    rm -f "$copy/$f"
  done
  sed 's/^\(\s*b := \)KernelTunableModify$/\1KernelTunableWarn/' \
    "$src/pkg/kubelet/cm/container_manager_linux.go" >"$copy/pkg/kubelet/cm/container_manager_linux.go"
  sed 's|^\(\s*DefaultContainerLogsDir = \)"/var/log/containers"|\1"container-logs"|' \
    "$src/pkg/kubelet/kubelet.go" >"$copy/pkg/kubelet/kubelet.go"
  sed 's|^\(\s*legacyContainerLogsDir = \)"/var/log/containers"|\1"container-logs"|' \
    "$src/pkg/kubelet/kuberuntime/legacy.go" >"$copy/pkg/kubelet/kuberuntime/legacy.go"
  if ! grep -q 'b := KernelTunableWarn' "$copy/pkg/kubelet/cm/container_manager_linux.go" ||
    ! grep -q '"container-logs"' "$copy/pkg/kubelet/kubelet.go" ||
    ! grep -q '"container-logs"' "$copy/pkg/kubelet/kuberuntime/legacy.go"; then
    say "kubelet $K8S_VERSION source changed: the testbed patch no longer applies"
    exit 1
  fi
  kube_wrapper "$dir" k8s.io/kubernetes/cmd/kubelet "replace k8s.io/kubernetes => $copy"
  (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "$KUBE_LDFLAGS" \
    -o "$BIN/kubelet" k8s.io/kubernetes/cmd/kubelet)
  stamp kubelet "$KUBELET_BUILD"
}

# The Kubernetes end-to-end test binary and agnhost, its test image's program, for
# testbed/storage-e2e.sh (the External Storage suites against the playground); not in ci.
# The ginkgo command (the version the kubernetes module requires) runs e2e.test in parallel.
build_e2e() {
  local dir="$WORK/e2e-$K8S_VERSION"
  if ! fresh e2e.test "$K8S_VERSION" || ! fresh agnhost "$K8S_VERSION"; then
    build_e2e_tests "$dir"
  fi
  fresh ginkgo "$K8S_VERSION" && return 0
  [ -f "$dir/go.mod" ] || kube_wrapper "$dir" k8s.io/kubernetes/test/e2e
  (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "-s -w" \
    -o "$BIN/ginkgo" github.com/onsi/ginkgo/v2/ginkgo)
  stamp ginkgo "$K8S_VERSION"
}

build_e2e_tests() {
  local dir="$1"
  say "building e2e.test and agnhost $K8S_VERSION; a first build takes 10-20 minutes on 2 cores"
  kube_wrapper "$dir" k8s.io/kubernetes/test/e2e k8s.io/kubernetes/test/images/agnhost
  (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go test -c -trimpath -ldflags "$KUBE_LDFLAGS" \
    -o "$BIN/e2e.test" k8s.io/kubernetes/test/e2e)
  (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "-s -w" \
    -o "$BIN/agnhost" k8s.io/kubernetes/test/images/agnhost)
  stamp e2e.test "$K8S_VERSION"
  stamp agnhost "$K8S_VERSION"
}

# The pause binary of the sandbox (pause) image, from the kubernetes module's own source,
# statically linked so the image needs nothing else. Needs a C compiler and a static libc.
build_pause() {
  fresh pause "$K8S_VERSION" && return 0
  command -v "${CC:-gcc}" >/dev/null || { say "pause needs a C compiler (apt-get install gcc libc6-dev)"; exit 1; }
  say "building pause from kubernetes $K8S_VERSION build/pause/linux/pause.c"
  local src
  src=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  "${CC:-gcc}" -Os -Wall -Werror -static -DVERSION="$K8S_VERSION" -o "$BIN/pause.tmp" "$src/build/pause/linux/pause.c"
  strip "$BIN/pause.tmp" 2>/dev/null || true
  mv "$BIN/pause.tmp" "$BIN/pause"
  stamp pause "$K8S_VERSION"
}

build_etcd() {
  fresh etcd "$ETCD_VERSION" && return 0
  say "building etcd $ETCD_VERSION"
  local dir="$WORK/etcd-$ETCD_VERSION" m
  mkdir -p "$dir"
  (
    cd "$dir"
    {
      echo "module csi-sidecars-testbed/etcd"
      echo "go 1.26.0"
      echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
      for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
        echo "replace go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION"
      done
    } >go.mod
    printf '//go:build tools\npackage tools\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
    GOFLAGS="$GOFLAGS -mod=mod" go mod tidy >/dev/null 2>&1 || GOFLAGS="$GOFLAGS -mod=mod" go mod tidy
    GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
  stamp etcd "$ETCD_VERSION"
}

# build_module NAME MODULE VERSION PACKAGE [LDFLAGS]: build PACKAGE (relative to the module root)
# inside a copy of the module, so its own replace directives apply.
build_module() {
  local name=$1 module=$2 version=$3 pkg=$4 ldflags=${5:-} edit=${6:-}
  fresh "$name" "$version" && return 0
  say "building $name $version"
  local dir
  dir=$(module_dir "$module@$version")
  # shellcheck disable=SC2086 # $edit holds several go mod edit flags
  [ -z "$edit" ] || (cd "$dir" && go mod edit $edit)
  (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -ldflags "-s -w -X main.version=$version $ldflags" -o "$BIN/$name" "./$pkg")
  stamp "$name" "$version"
}

build_one() {
  case "$1" in
    kube|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl) build_kube ;;
    kubelet) build_kubelet ;;
    pause) build_pause ;;
    e2e|e2e.test|agnhost|ginkgo) build_e2e ;;
    etcd) build_etcd ;;
    csi-provisioner) build_module csi-provisioner github.com/kubernetes-csi/external-provisioner/v6 "$PROVISIONER_VERSION" cmd/csi-provisioner ;;
    csi-attacher) build_module csi-attacher github.com/kubernetes-csi/external-attacher/v4 "$ATTACHER_VERSION" cmd/csi-attacher ;;
    csi-snapshotter) build_module csi-snapshotter github.com/kubernetes-csi/external-snapshotter/v8 "$SNAPSHOTTER_VERSION" cmd/csi-snapshotter "" "$SNAPSHOT_CLIENT_EDIT" ;;
    snapshot-controller) build_module snapshot-controller github.com/kubernetes-csi/external-snapshotter/v8 "$SNAPSHOTTER_VERSION" cmd/snapshot-controller "" "$SNAPSHOT_CLIENT_EDIT" ;;
    csi-resizer) build_module csi-resizer github.com/kubernetes-csi/external-resizer/v2 "$RESIZER_VERSION" cmd/csi-resizer ;;
    csi-sanity) build_module csi-sanity github.com/kubernetes-csi/csi-test/v5 "$CSI_TEST_VERSION" cmd/csi-sanity ;;
    helm) build_module helm helm.sh/helm/v3 "$HELM_VERSION" cmd/helm "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ;;
    # Not a binary: the snapshot CRDs and CEL cases tests/unit/crds and tests/e2e compare with.
    snapshot-client) (cd "$WORK" && GOFLAGS=-mod=mod go mod download "$SNAPSHOT_CLIENT@$SNAPSHOTTER_VERSION") ;;
    *) say "unknown component: $1"; exit 2 ;;
  esac
}

# The snapshotter's go.mod points its client module at ./client, which the module zip does not
# contain; use the client module published at the same version instead.
SNAPSHOT_CLIENT=github.com/kubernetes-csi/external-snapshotter/client/v8
SNAPSHOT_CLIENT_EDIT="-dropreplace=$SNAPSHOT_CLIENT -require=$SNAPSHOT_CLIENT@$SNAPSHOTTER_VERSION"

CI_SET="etcd kube kubelet pause csi-provisioner csi-attacher csi-resizer csi-snapshotter snapshot-controller csi-sanity snapshot-client helm"
ALL_SET="$CI_SET"

command -v go >/dev/null || { say "Go is not installed; install Go or pass --bin-dir with prebuilt binaries"; exit 1; }
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(ci)
for t in "${targets[@]}"; do
  case "$t" in
    ci) for c in $CI_SET; do build_one "$c"; done ;;
    all) for c in $ALL_SET; do build_one "$c"; done ;;
    *) build_one "$t" ;;
  esac
done
ls "$BIN" >&2
echo "$BIN"
