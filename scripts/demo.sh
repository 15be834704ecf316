#!/usr/bin/env bash
# Starts a kernel container from the local Python test image with krunner mounted,
# runs a snippet through the ZeroMQ protocol (as a Backend.AI agent would) and prints the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m imagekit.harness.demo "$@"
