#!/usr/bin/env bash
# Runs the whole test suite (unit + Docker integration). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not docker and not install"` for the fast unit tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
