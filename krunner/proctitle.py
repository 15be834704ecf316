"""The runner's process name, ``bai-krunner``.

User code in the kernel often runs ``pkill -f python`` (or ``killall python``) to clean up
its own programs. The runner is a Python process too; under its real command line it would be
killed with them and the container would end. Like upstream's runner (lablup/backend.ai#6085),
krunner renames itself at start-up: its ``/proc/<pid>/cmdline`` and ``comm`` become
``bai-krunner``, which no such pattern matches. The user's processes still die as asked.
"""

from __future__ import annotations

import logging

PROCESS_TITLE = "bai-krunner"

log = logging.getLogger("krunner")


def take_process_name() -> bool:
    """Rename this process to :data:`PROCESS_TITLE`; False (with a warning) if it cannot."""
    try:
        import setproctitle
    except ImportError:
        log.warning("setproctitle is not installed: the runner keeps its python command line "
                    "and `pkill -f python` in user code would stop it")
        return False
    setproctitle.setproctitle(PROCESS_TITLE)
    return True
