#!/usr/bin/env bash
# Print the go.mod of a throwaway module that requires MODULE@VERSION. MODULE's go.mod replaces its sibling modules
# with local paths, which makes `go install …@version` refuse: those point at the siblings' published
# SIBLING_VERSION here. MODULE's other replaces (in its replace block) are copied, since Go ignores a dependency's.
# Usage: go-throwaway-mod.sh MODULE VERSION SIBLING_VERSION > go.mod
set -euo pipefail
module=${1:?module} ver=${2:?version} sibling_ver=${3:?version of the replaced sibling modules}
# Outside any module: the caller may be writing the go.mod of its work directory.
gomod=$(cd / && go mod download -json "$module@$ver" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
echo "module throwaway"
echo "go $(sed -n 's/^go //p' "$gomod")"
echo "require $module $ver"
echo "replace ("
sed -n '/^replace (/,/^)/{/=>/p}' "$gomod" | grep -v FORBIDDEN |
  sed 's#^\s*\([^ ]*\) => \.\.\?/[^ ]*$#\t\1 => \1 '"$sibling_ver"'#' || true
echo ")"
