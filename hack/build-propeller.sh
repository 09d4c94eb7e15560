#!/usr/bin/env bash
# Build flytepropeller (our main in hack/propeller: the controller with the sandbox's plugins) and kubectl-flyte
# from the Go module proxy. flytepropeller's go.mod replaces flyteidl, flyteplugins and flytestdlib with local
# paths; a throwaway module requires it and points those at their published versions (same version).
# Usage: build-propeller.sh VERSION OUTDIR   (VERSION like v1.16.8)
set -euo pipefail
ver=${1:?flytepropeller version, e.g. v1.16.8}
out=${2:?output directory}
module=github.com/flyteorg/flyte/flytepropeller
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0

cd "$work"
"$here/go-throwaway-mod.sh" "$module" "$ver" "$ver" > go.mod
cp "$here/propeller/main.go" .
go get "$module/cmd/controller/cmd@$ver" "$module/cmd/kubectl-flyte@$ver" \
  github.com/flyteorg/flyte/flyteplugins/go/tasks/plugins/{array/k8s,k8s/pod,testing}@"$ver"
mkdir -p "$out.tmp"
go build -trimpath -ldflags="-s -w" -o "$out.tmp/flytepropeller" .
go build -trimpath -ldflags="-s -w" -o "$out.tmp/kubectl-flyte" "$module/cmd/kubectl-flyte"
rm -rf "$out" && mv "$out.tmp" "$out"
