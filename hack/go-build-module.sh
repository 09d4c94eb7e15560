#!/usr/bin/env bash
# Build commands of a Go module whose go.mod replaces its sibling modules with local paths (k8s.io/kubernetes,
# go.etcd.io/etcd/server/v3), which makes `go install …@version` refuse. A throwaway module requires it and points
# every locally-replaced module at its published version instead.
# Usage: LDFLAGS=... go-build-module.sh MODULE VERSION SIBLING_VERSION OUTDIR [NAME=]PACKAGE...
set -euo pipefail
module=${1:?module} ver=${2:?version} sibling_ver=${3:?version of the replaced sibling modules} out=${4:?outdir}
shift 4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0

here=$(cd "$(dirname "$0")" && pwd)
cd "$work"
"$here/go-throwaway-mod.sh" "$module" "$ver" "$sibling_ver" > go.mod
# `go get` of the command packages records the go.sum entries of everything they import.
go get $(for arg in "$@"; do echo "${arg#*=}@$ver"; done)
mkdir -p "$out.tmp"
for arg in "$@"; do
  pkg=${arg#*=} name=${arg%%=*}
  [ "$name" != "$arg" ] || name=$(basename "$pkg")
  go build -trimpath -ldflags="-s -w ${LDFLAGS:-}" -o "$out.tmp/$name" "$pkg"
done
rm -rf "$out" && mv "$out.tmp" "$out"
