#!/usr/bin/env bash
# Builds kube-apiserver, etcd, kubectl, kube-controller-manager and kube-scheduler from Go modules (hack/k8s)
# into a cache outside the clone, so fresh clones on the same machine reuse it. Prints the directory.
# Nothing is downloaded but Go modules: these machines cannot reach release hosts.
# (envtest runs kube-apiserver and etcd; the node tests in test/node add the controller manager and scheduler.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1=="k8s.io/kubernetes"{print $2}' "$here/k8s/go.mod" | head -n1)
dir="${CARDPLANE_K8S_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cardplane/k8s/$version}"
declare -A packages=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
)
missing=()
for bin in "${!packages[@]}"; do [[ -x "$dir/$bin" ]] || missing+=("$bin"); done
if (( ${#missing[@]} == 0 )); then
  echo "$dir"; exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building ${missing[*]} $version into $dir (cold: about 8-12 minutes)" >&2
cd "$here/k8s"
export GOTOOLCHAIN=local CGO_ENABLED=0
for bin in "${missing[@]}"; do
  go build -trimpath -ldflags=-s -o "$tmp/$bin" "${packages[$bin]}"
done
for bin in "${missing[@]}"; do mv "$tmp/$bin" "$dir/"; done
echo "$dir"
