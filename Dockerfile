# syntax=docker/dockerfile:1
# moe-operator image: build with Node 24 + TypeScript, run on distroless Node 24.
#
#   docker build -t ghcr.io/moe-operator/moe-operator:0.1.0 .
#   podman build -t localhost/moe-operator:dev .
#
# Stages:
#   build   - full npm install (dev dependencies for tsc), `tsc -p tsconfig.build.json`
#             into dist/, then `npm prune --omit=dev` so only runtime packages remain.
#   runtime - distroless: Node 24 and CA certificates only; no shell, no package
#             manager, no compiler. Runs as uid/gid 65532 (nonroot); the app files are
#             owned by root and read-only to it, and the chart mounts the root
#             filesystem read-only with an emptyDir on /tmp.
#
# Pin the base images by digest for reproducible builds, e.g.
#   --build-arg BUILD_IMAGE=node:24-bookworm-slim@sha256:...
ARG BUILD_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
ENV CI=true NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
# Dependencies first (cached unless package*.json change). --ignore-scripts: nothing
# we need runs an install script (the `node` devDependency is unused here: the base
# image already is Node 24). `npm install` rather than `npm ci`: see the Makefile
# (an optional Windows-only package is absent from the lock file).
# Behind a TLS-intercepting proxy, pass its CA bundle as a build secret (never stored in a
# layer): `--secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt` (hack/image.sh
# does when NODE_EXTRA_CA_CERTS or IMAGE_BUILD_CA_FILE names a file).
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=cache,target=/root/.npm \
    --mount=type=secret,id=ca-certificates,required=false \
    if [ -f /run/secrets/ca-certificates ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca-certificates; fi \
 && npm install --ignore-scripts --no-save
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Compile (rewrites .ts import specifiers to .js), drop what the image never runs
# (the local-cluster test harness and `make demo`), then remove dev dependencies.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json \
 && rm -rf dist/testing dist/cli/demo.* \
 && find dist -name '*.map' -delete \
 && npm prune --omit=dev --ignore-scripts --offline \
 && rm -rf node_modules/.bin node_modules/.package-lock.json

FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="moe-operator" \
      org.opencontainers.image.description="Kubernetes operator that places MoE expert shards by routing heat, pre-warms and scales toward a latency SLO" \
      org.opencontainers.image.source="https://github.com/moe-operator/moe-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
WORKDIR /app
ENV NODE_ENV=production
# package.json carries "type": "module" (dist/ is ESM).
COPY --from=build --chown=0:0 --chmod=0444 /src/package.json ./package.json
COPY --from=build --chown=0:0 /src/node_modules ./node_modules
COPY --from=build --chown=0:0 /src/dist ./dist
USER 65532:65532
# 8080: /metrics; 8081: /healthz, /readyz (see --metrics-bind-address, --health-probe-bind-address).
EXPOSE 8080 8081
# V8 flags (ADR 0010, `make bench-scale`): Node 24 lets the young generation grow to 64 MiB
# semi-spaces (128 MiB of RSS) and the old generation to a multiple of the live heap before
# collecting; with 5,100 pods that was most of the operator's RSS, not its data. A 4 MiB
# semi-space and a 1.3x heap-growing factor trade a little GC time for it.
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=4", "--heap-growing-percent=30", "dist/main.js"]
