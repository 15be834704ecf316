#!/bin/sh
# krunner entrypoint (mounted at /opt/kernel/entrypoint.sh); runs as root, "$@" is the runner command.
# The image's own bootstrap is sourced here, as root, so that its exports reach the runner.
if [ -f /opt/container/bootstrap.sh ]; then
  if [ -x /opt/container/bootstrap.sh ]; then
    . /opt/container/bootstrap.sh
  else
    echo "entrypoint: warning: /opt/container/bootstrap.sh is not executable; skipped" >&2
  fi
fi
exec /opt/backend.ai/bin/python -s -m krunner.entrypoint "$@"
