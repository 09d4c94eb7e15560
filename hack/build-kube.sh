#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from the k8s.io/kubernetes Go module.
# Its go.mod replaces the k8s.io/* staging modules with local paths, so `go install …@version` refuses; a throwaway
# module that requires k8s.io/kubernetes and points every staging module at its published v0.Y.Z builds them.
# Usage: build-kube.sh VERSION OUTDIR   (VERSION like v1.34.4)
set -euo pipefail
ver=${1:?kubernetes version, e.g. v1.34.4}
out=${2:?output directory}
staging_ver="v0.${ver#v1.}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0

cd "$work"
gomod=$(go mod download -json "k8s.io/kubernetes@$ver" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
{
  echo "module kubebuild"
  echo "go $(sed -n 's/^go //p' "$gomod")"
  echo "require k8s.io/kubernetes $ver"
  echo "replace ("
  sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/src/.*#\t\1 => \1 '"$staging_ver"'#p' "$gomod"
  echo ")"
} > go.mod
printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n)\n' > tools.go
go mod tidy >/dev/null 2>&1 || true
go get "k8s.io/kubernetes@$ver" >/dev/null
mkdir -p "$out.tmp"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  pkg="k8s.io/kubernetes/cmd/$cmd"
  go build -trimpath -ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$ver -X k8s.io/client-go/pkg/version.gitVersion=$ver" -o "$out.tmp/$cmd" "$pkg"
done
rm -rf "$out" && mv "$out.tmp" "$out"
