#!/usr/bin/env bash
# Build the pinned control-plane binaries (kube-apiserver, kube-scheduler,
# kube-controller-manager, kubectl, etcd, kwok) from the Go modules under tools/
# into a cache outside the repository, keyed by the pins. A second run with the
# same pins is a no-op. Prints the bin directory on the last line of stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${MOE_BIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moe-operator/bin}"
# The key covers every pin (go.mod + go.sum of each tools module) and the Go version.
KEY="$( { cat "$ROOT"/tools/*/go.mod "$ROOT"/tools/*/go.sum "$ROOT/hack/build-bins.sh"; go env GOVERSION; } | sha256sum | cut -c1-16)"
OUT="$CACHE_ROOT/$KEY"
WANT=(kube-apiserver kube-scheduler kube-controller-manager kubectl etcd kwok kwok-stages.yaml)

have_all() { for b in "${WANT[@]}"; do [[ -e "$OUT/$b" ]] || return 1; done; }
if have_all; then echo "control-plane binaries cached in $OUT" >&2; echo "$OUT"; exit 0; fi

mkdir -p "$OUT.partial"
export GOFLAGS="-buildvcs=false -trimpath"
# Keep memory bounded on small machines: 2 parallel compile jobs.
export GOMAXPROCS="${GOMAXPROCS:-2}"
start=$(date +%s)

k8s_version="$(cd "$ROOT/tools/k8s" && go list -m -f "{{.Version}}" k8s.io/kubernetes)"
minor="$(echo "$k8s_version" | cut -d. -f2)"
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

echo ">> building kubernetes $k8s_version control plane (cold build takes 15-30 min on 2 cores)" >&2
(cd "$ROOT/tools/k8s" && CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$OUT.partial/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl) >&2
echo ">> building etcd" >&2
(cd "$ROOT/tools/etcd" && CGO_ENABLED=0 go build -ldflags "-s -w" -o "$OUT.partial/etcd" go.etcd.io/etcd/server/v3) >&2
echo ">> building kwok" >&2
(cd "$ROOT/tools/kwok" && CGO_ENABLED=0 go build -ldflags "-s -w" -o "$OUT.partial/kwok" sigs.k8s.io/kwok/cmd/kwok) >&2

# kwok's own Stage objects (node initialise + lease heartbeat, pod lifecycle with
# per-pod delay annotations), taken from the pinned kwok module, not the repo.
kwok_dir="$(cd "$ROOT/tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
stages=(node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/general/pod-create.yaml pod/general/pod-init-container-running.yaml
  pod/general/pod-init-container-completed.yaml pod/general/pod-ready.yaml
  pod/general/pod-complete.yaml pod/general/pod-delete.yaml)
: > "$OUT.partial/kwok-stages.yaml"
for s in "${stages[@]}"; do
  # No jitter: each stage takes its fixed delay (1 s) unless a pod asks for another
  # with the <stage>.stage.kwok.x-k8s.io/delay annotation (a shard's cold start).
  # The jitter settings are removed, not zeroed: kwok takes a jitter bound at or
  # below the delay as the delay itself, so a zero bound would make every stage
  # instant and ignore the delay annotations.
  { echo "---"; sed -e '/jitterDurationMilliseconds:/d' -e '/jitterDurationFrom:/{N;d;}' "$kwok_dir/kustomize/stage/$s"; echo; } >> "$OUT.partial/kwok-stages.yaml"
done

rm -rf "$OUT" && mv "$OUT.partial" "$OUT"
echo ">> control-plane binaries built in $(( $(date +%s) - start ))s into $OUT" >&2
echo "$OUT"
