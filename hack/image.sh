#!/usr/bin/env bash
# `make image`: builds the Dockerfile into $IMG (default localhost/moe-operator:dev).
#   IMAGE_BASE=local (default): FROM base images built here from Debian packages
#                               (hack/build-base-images.sh; no registry needed).
#   IMAGE_BASE=registry:        FROM the Dockerfile's defaults (node:24-bookworm-slim,
#                               distroless nodejs24), pulled from their registries.
# CONTAINER_ENGINE picks podman or docker (default: podman if installed, else docker).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CONTAINER_ENGINE:-}" ]; then
  if command -v podman >/dev/null; then CONTAINER_ENGINE=podman; else CONTAINER_ENGINE=docker; fi
fi
export CONTAINER_ENGINE
command -v "$CONTAINER_ENGINE" >/dev/null || { echo "make image: no container engine ($CONTAINER_ENGINE not found; apt-get install podman, see docs/adr/0016-container-image.md)" >&2; exit 1; }
IMG="${IMG:-localhost/moe-operator:dev}"
VERSION="$(node -p 'require("./package.json").version')"

args=(build --build-arg "VERSION=$VERSION" -t "$IMG")
case "${IMAGE_BASE:-local}" in
  local)
    mapfile -t bases < <(bash hack/build-base-images.sh)
    [ "${#bases[@]}" = 2 ] || { echo "make image: hack/build-base-images.sh printed no base tags" >&2; exit 1; }
    args+=(--build-arg "BUILD_IMAGE=${bases[0]}" --build-arg "RUNTIME_IMAGE=${bases[1]}")
    # Local bases exist only in local storage: never try a registry for them.
    [ "$CONTAINER_ENGINE" = podman ] && args+=(--pull=never)
    ;;
  registry) ;;
  *) echo "make image: IMAGE_BASE must be local or registry (got '${IMAGE_BASE}')" >&2; exit 2 ;;
esac

# A TLS-intercepting proxy's CA for npm inside the build, as a build secret (not in a layer).
CA_FILE="${IMAGE_BUILD_CA_FILE:-${NODE_EXTRA_CA_CERTS:-}}"
[ -n "$CA_FILE" ] && [ -f "$CA_FILE" ] && args+=(--secret "id=ca-certificates,src=$CA_FILE")

echo ">> $CONTAINER_ENGINE ${args[*]} ." >&2
start=$(date +%s)
"$CONTAINER_ENGINE" "${args[@]}" .
echo ">> built $IMG in $(( $(date +%s) - start )) s" >&2
