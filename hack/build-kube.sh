#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from the k8s.io/kubernetes Go module
# (its staging modules k8s.io/* are published as v0.Y.Z).
# Usage: build-kube.sh VERSION OUTDIR   (VERSION like v1.34.4)
set -euo pipefail
ver=${1:?kubernetes version, e.g. v1.34.4}
out=${2:?output directory}
minor=${ver#v1.}; minor=${minor%%.*}
# The version stamps feed /version, which helm reads for .Capabilities.KubeVersion.
LDFLAGS=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $p.gitVersion=$ver -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
export LDFLAGS
exec "$(dirname "$0")/go-build-module.sh" k8s.io/kubernetes "$ver" "v0.${ver#v1.}" "$out" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
