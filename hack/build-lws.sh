#!/usr/bin/env bash
# Build the pinned LeaderWorkerSet controller (sigs.k8s.io/lws, module in hack/lws)
# into a cache outside the repository, with its CRDs and webhook manifests taken
# from the same module. Kept apart from hack/build-bins.sh on purpose: that
# script's cache key hashes tools/*/go.mod, so an LWS module there would force a
# cold rebuild of kube-apiserver. This key hashes only hack/lws/go.{mod,sum},
# this script and the Go version. A second run with the same pins is a no-op.
# Prints the output directory on the last line of stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOD="$ROOT/hack/lws"
CACHE_ROOT="${MOE_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moe-operator/bin}"
KEY="$( { cat "$MOD/go.mod" "$MOD/go.sum" "$ROOT/hack/build-lws.sh"; go env GOVERSION; } | sha256sum | cut -c1-16)"
OUT="$CACHE_ROOT/lws-$KEY"
WANT=(lws-manager crds/leaderworkerset.x-k8s.io_leaderworkersets.yaml
  crds/disaggregatedset.x-k8s.io_disaggregatedsets.yaml webhook/manifests.yaml
  webhook/mutating-patch.yaml webhook/validating-patch.yaml)

have_all() { for f in "${WANT[@]}"; do [[ -e "$OUT/$f" ]] || return 1; done; }
if have_all; then echo "LeaderWorkerSet controller cached in $OUT" >&2; echo "$OUT"; exit 0; fi

rm -rf "$OUT.partial"
mkdir -p "$OUT.partial/crds" "$OUT.partial/webhook"
export GOFLAGS="-buildvcs=false -trimpath"
export GOMAXPROCS="${GOMAXPROCS:-2}"
start=$(date +%s)

lws_version="$(cd "$MOD" && go list -m -f "{{.Version}}" sigs.k8s.io/lws)"
echo ">> building LeaderWorkerSet controller $lws_version" >&2
(cd "$MOD" && CGO_ENABLED=0 go build -ldflags "-s -w -X sigs.k8s.io/lws/pkg/version.GitVersion=$lws_version" \
  -o "$OUT.partial/lws-manager" sigs.k8s.io/lws/cmd) >&2

# The CRDs (config/crd/bases: one served version each, so no conversion webhook)
# and the webhook manifests with their objectSelector patches, as the module ships
# them; src/testing/lws.ts points their clientConfig at the local process.
lws_dir="$(cd "$MOD" && go list -m -f '{{.Dir}}' sigs.k8s.io/lws)"
cp "$lws_dir/config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml" \
  "$lws_dir/config/crd/bases/disaggregatedset.x-k8s.io_disaggregatedsets.yaml" "$OUT.partial/crds/"
cp "$lws_dir/config/webhook/manifests.yaml" "$lws_dir/config/webhook/mutating-patch.yaml" \
  "$lws_dir/config/webhook/validating-patch.yaml" "$OUT.partial/webhook/"
chmod -R u+w "$OUT.partial"

rm -rf "$OUT" && mv "$OUT.partial" "$OUT"
echo ">> LeaderWorkerSet controller built in $(($(date +%s) - start))s into $OUT" >&2
echo "$OUT"
