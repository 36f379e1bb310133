#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from Go modules (hack/k8s) into a cache outside
# the clone, so fresh clones on the same machine reuse it. Prints the directory.
# Nothing is downloaded but Go modules: these machines cannot reach release hosts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1=="k8s.io/kubernetes"{print $2}' "$here/k8s/go.mod" | head -n1)
dir="${CARDPLANE_K8S_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cardplane/k8s/$version}"
if [[ -x "$dir/kube-apiserver" && -x "$dir/etcd" && -x "$dir/kubectl" ]]; then
  echo "$dir"; exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building control plane $version into $dir (cold: about 6-10 minutes)" >&2
cd "$here/k8s"
export GOTOOLCHAIN=local CGO_ENABLED=0
go build -trimpath -ldflags=-s -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags=-s -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
go build -trimpath -ldflags=-s -o "$tmp/etcd" go.etcd.io/etcd/server/v3
mv "$tmp"/kube-apiserver "$tmp"/kubectl "$tmp"/etcd "$dir/"
echo "$dir"
