#!/usr/bin/env bash
# Build a Go command from the module proxy into OUTDIR (cached by the caller, keyed by version).
# Usage: go-install.sh PACKAGE@VERSION OUTDIR [EXTRA_LDFLAGS]
set -euo pipefail
pkg=${1:?package@version}
out=${2:?output directory}
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$out.tmp"
mkdir -p "$GOBIN"
go install -trimpath -ldflags="-s -w ${3:-}" "$pkg"
rm -rf "$out" && mv "$GOBIN" "$out"
