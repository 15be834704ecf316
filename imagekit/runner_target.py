"""Which kernel runner an image is validated and tested for, and what the stock runner accepts.

* ``stock`` – the runner a stock Backend.AI agent (26.x) mounts: upstream's ``ai.backend.kernel``.
  It is the default: an image that passes for ``stock`` also works with krunner, so it keeps
  working on any installation it lands on.
* ``krunner`` – this project's runner (installed into an agent with ``bai-imagekit krunner
  package``), which accepts more: every language REPL, extra service-def keys.

Runner-dependent rules (``Rule.runner_dependent``) are errors for ``stock`` and warnings for
``krunner``. The facts below are upstream's, read from ``backend.ai-kernel`` 26.9.6.
"""

from __future__ import annotations

import enum


class RunnerTarget(str, enum.Enum):
    STOCK = "stock"
    KRUNNER = "krunner"


DEFAULT_RUNNER = RunnerTarget.STOCK
RUNNER_CHOICES = tuple(t.value for t in RunnerTarget)
RUNNER_HELP = (
    "the kernel runner to validate for: 'stock' (what a stock Backend.AI 26.x agent runs; the default, "
    "so an image that passes works everywhere) or 'krunner' (this toolkit's runner, which accepts more)"
)

#: runtime-types the stock runner starts (upstream #7358, 25.19.0 removed the other REPLs)
STOCK_RUNTIME_TYPES = frozenset({"app", "python"})
#: plus any ``vendor.<name>`` (upstream ships vendor.aws_polly and vendor.h2o)
STOCK_VENDOR_PREFIX = "vendor."

#: how long the agent waits for a start-service reply (upstream #13684; 10 s before; becoming configurable)
AGENT_START_SERVICE_WAIT_SECONDS = 35.0

#: the keys of upstream's strict ServiceDefinition (``prestart`` is renamed to prestart_actions first)
STOCK_SERVICE_DEF_KEYS = frozenset({
    "command", "shell", "noop", "url_template", "prestart", "prestart_actions", "env", "allowed_envs",
    "allowed_arguments", "default_arguments",
})
#: each prestart action's keyword arguments in upstream's service_actions
STOCK_ACTION_ARGS: dict[str, frozenset[str]] = {
    "write_file": frozenset({"filename", "body", "mode", "append"}),
    "write_tempfile": frozenset({"body", "mode"}),
    "run_command": frozenset({"command", "echo"}),
    "mkdir": frozenset({"path"}),
    "log": frozenset({"message", "debug"}),
}


def stock_runs(runtime_type: str) -> bool:
    """Whether the stock runner accepts *runtime_type* (it exits at once on any other)."""
    value = runtime_type.strip()
    return value in STOCK_RUNTIME_TYPES or value.startswith(STOCK_VENDOR_PREFIX)


#: imagekit's own label: the runner an image was built for (``runner`` in kernel.toml)
RUNNER_LABEL = "ai.backend.imagekit.runner"


def runner_from_labels(labels: dict[str, str]) -> RunnerTarget | None:
    try:
        return RunnerTarget(labels[RUNNER_LABEL].strip())
    except (KeyError, ValueError):
        return None
