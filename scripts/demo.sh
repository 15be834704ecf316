#!/usr/bin/env bash
# The end-to-end demo, from a bare Debian 12 machine (root, no Docker engine, no registry):
#   1. a virtualenv with the toolkit, the Docker engine (installed and started if needed) and a
#      local debootstrap base image — all idempotent and cached;
#   2. the krunner bundle and its Docker volume (built once, verified on every run);
#   3. images/python built with `bai-imagekit build` (layer cache makes the second run quick);
#   4. `bai-imagekit test` on it: the report, with each service's URL.
# A second run finishes quickly from cache. Extra arguments go to `bai-imagekit test`.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { printf '\n==> %s\n' "$*" >&2; }

step "environment: virtualenv, Docker engine, local base image"
bash scripts/bootstrap.sh --images none --no-krunner-volume
base=$(.venv/bin/python -c 'from imagekit.localenv.base_image import ensure_base_image; print(ensure_base_image())')

# pip inside the builds needs the host's CA bundle when a TLS-intercepting proxy is in the way;
# it is given as a read-only mount or a BuildKit secret and never stays in the bundle or image.
ca=()
bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
if [ -s "$bundle" ]; then ca=(--ca-bundle "$bundle"); fi

step "krunner bundle and volume"
.venv/bin/bai-imagekit krunner build --base-image "$base" "${ca[@]}"
.venv/bin/bai-imagekit krunner install --base-image "$base"

step "build images/python"
.venv/bin/bai-imagekit build images/python -t bai-ref/python:latest --build-arg "BASE_IMAGE=$base" "${ca[@]}"

step "smoke-test bai-ref/python:latest"
status=0
.venv/bin/bai-imagekit test bai-ref/python:latest --test-file images/python/image-test.toml "$@" || status=$?
printf '\ndemo finished in %ss (exit %s)\n' "$(( $(date +%s) - started ))" "$status" >&2
exit "$status"
