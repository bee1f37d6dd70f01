#!/usr/bin/env bash
# Builds the two base images the Dockerfile can start FROM where no registry is
# reachable (ADR 0016), from Debian packages and the pinned Node of node_modules:
#
#   build base   - Debian minbase (debootstrap), Node at /usr/local/bin/node, npm at
#                  /usr/local/lib/node_modules/npm (the release `npm pack` fetches).
#                  Stands in for node:24-bookworm-slim.
#   runtime base - only Node (/nodejs/bin/node, as in distroless) and the shared libraries
#                  it links (libc6, libgcc-s1, libstdc++6, unpacked from the .debs that
#                  debootstrap fetched), /etc/passwd with nonroot (65532) and a /tmp.
#                  No shell, no package manager. Stands in for distroless nodejs24.
#
# Tags carry the Node version and the Debian suite; an existing tag is reused unless
# FORCE=1. Prints the two tags, one per line, on stdout (progress goes to stderr).
# Needs root (debootstrap) and podman or docker (CONTAINER_ENGINE).
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE="${CONTAINER_ENGINE:-podman}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
NODE_BIN="node_modules/node/bin/node"
log() { echo ">> $*" >&2; }
die() { echo "build-base-images: $*" >&2; exit 1; }

[ -x "$NODE_BIN" ] || die "$NODE_BIN is missing: run \`make deps\` first (the \`node\` npm package provides Node 24)"
command -v "$ENGINE" >/dev/null || die "container engine '$ENGINE' not found (set CONTAINER_ENGINE, or apt-get install podman; see docs/adr/0016-container-image.md)"
[ "$(id -u)" = 0 ] || die "debootstrap needs root (run as root, or set BUILD_IMAGE/RUNTIME_IMAGE to images you can pull)"
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"

NODE_VERSION="$("$NODE_BIN" --version)"
NODE_VERSION="${NODE_VERSION#v}"
NPM_VERSION="${NPM_VERSION:-$(npm --version)}"
BUILD_TAG="localhost/moe-operator-build-base:node${NODE_VERSION}-npm${NPM_VERSION}-${SUITE}"
RUNTIME_TAG="localhost/moe-operator-runtime-base:node${NODE_VERSION}-${SUITE}"

exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }
if [ "${FORCE:-0}" != 1 ] && exists "$BUILD_TAG" && exists "$RUNTIME_TAG"; then
  log "reusing $BUILD_TAG and $RUNTIME_TAG (FORCE=1 rebuilds)"
  printf '%s\n%s\n' "$BUILD_TAG" "$RUNTIME_TAG"
  exit 0
fi

WORK="$(mktemp -d /var/tmp/moe-base.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
BUILD="$WORK/build"
RUNTIME="$WORK/runtime"

log "debootstrap --variant=minbase $SUITE ($MIRROR)"
debootstrap --variant=minbase "$SUITE" "$BUILD" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

log "runtime base: Node $NODE_VERSION and libc6, libgcc-s1, libstdc++6 from the same .debs"
mkdir -p "$RUNTIME/nodejs/bin" "$RUNTIME/etc" "$RUNTIME/tmp" "$RUNTIME/home/nonroot"
for pkg in libc6 libgcc-s1 libstdc++6; do
  deb=("$BUILD"/var/cache/apt/archives/"${pkg}"_*.deb)
  [ -f "${deb[0]}" ] || die "debootstrap left no ${pkg} .deb in var/cache/apt/archives"
  dpkg-deb -x "${deb[0]}" "$RUNTIME"
done
rm -rf "$RUNTIME/usr/share/doc" "$RUNTIME/usr/share/lintian" "$RUNTIME/usr/share/locale" "$RUNTIME/usr/share/gcc"
install -m 0755 "$NODE_BIN" "$RUNTIME/nodejs/bin/node"
chmod 1777 "$RUNTIME/tmp"
chown 65532:65532 "$RUNTIME/home/nonroot"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$RUNTIME/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$RUNTIME/etc/group"
printf 'hosts: files dns\n' >"$RUNTIME/etc/nsswitch.conf"

log "build base: Node $NODE_VERSION and npm $NPM_VERSION on the minbase root"
npm pack "npm@$NPM_VERSION" --pack-destination "$WORK" --silent >/dev/null
mkdir -p "$BUILD/usr/local/lib/node_modules/npm" "$BUILD/nodejs/bin"
tar -xzf "$WORK/npm-$NPM_VERSION.tgz" -C "$BUILD/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
install -m 0755 "$NODE_BIN" "$BUILD/usr/local/bin/node"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$BUILD/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$BUILD/usr/local/bin/npx"
ln -sf /usr/local/bin/node "$BUILD/nodejs/bin/node"
rm -rf "$BUILD"/var/cache/apt/archives/*.deb "$BUILD"/var/lib/apt/lists/* "$BUILD"/usr/share/doc/* "$BUILD"/usr/share/man/*

import_rootfs() {
  local dir=$1 tag=$2; shift 2
  log "podman import -> $tag"
  tar --numeric-owner -C "$dir" -c . | "$ENGINE" import "$@" - "$tag" >/dev/null
}
import_rootfs "$BUILD" "$BUILD_TAG" --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["/bin/bash"]'
import_rootfs "$RUNTIME" "$RUNTIME_TAG" --change 'ENV PATH=/nodejs/bin' --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' --change 'ENTRYPOINT ["/nodejs/bin/node"]'
printf '%s\n%s\n' "$BUILD_TAG" "$RUNTIME_TAG"
