#!/bin/sh
# krunner entrypoint (mounted at /opt/kernel/entrypoint.sh); runs as root, "$@" is the runner command.
# Everything happens in krunner.entrypoint: the uid-match user setup, then the image's
# /opt/container/bootstrap.sh in a child shell (its exports are imported), then the runner.
# (The krunner bundle ships a static binary with the same behaviour for images without /bin/sh.)
exec /opt/backend.ai/bin/python -s -m krunner.entrypoint "$@"
