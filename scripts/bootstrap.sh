#!/usr/bin/env bash
# Idempotent set-up shared by the Quickstart commands:
#   1. a virtualenv (.venv) with this project installed (re-installed when pyproject.toml changes);
#   2. the local Docker environment: engine (installed/started if needed), debootstrap base
#      image, test images and the dev krunner volume, all cached by tag, and the Debian packages
#      the registry tests start their registries from (docker-registry, apache2-utils).
# The krunner bundle is not built here: `bai-imagekit krunner build` and `krunner install` are the
# product's explicit steps (for the local base image: --base-image bai-local/debian:bookworm); the
# tests' `krunner_bundle` fixture runs them in-process into .cache/krunner-bundle.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.bai-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "[bootstrap] installing the project into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  echo "$want" > "$stamp"
fi
.venv/bin/python -m imagekit.localenv prepare "$@"
