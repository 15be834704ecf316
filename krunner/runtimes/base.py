"""What a query engine provides, and the context every runtime part shares."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..container_env import ContainerPaths
from ..jobs import JobRunner
from ..transport import Outbox
from ..user_input import RunnerInputBroker
from .languages import Language


@dataclass
class RuntimeContext:
    language: Language
    runtime_path: str
    paths: ContainerPaths
    env: dict[str, str]  # the child environment (see container.build_child_env)
    outbox: Outbox
    jobs: JobRunner
    broker: RunnerInputBroker | None

    @property
    def cwd(self) -> str:
        return str(self.paths.work_dir)


#: the ``sitecustomize`` that routes input()/getpass() of batch programs to the input socket
BATCH_SITE_DIR = Path(__file__).parent / "python_child" / "batch_site"


class QueryEngineBase:
    """Query mode (``code`` op) for one runtime.  Subclasses override what they support.

    Capabilities the runner and ``bai-imagekit test`` ask the engine about, instead of knowing
    runtimes by name:

    * ``supports_input`` – programs of this runtime can ask for user input (the runner then
      runs an input broker and socket);
    * ``keeps_state`` – variables survive from one query to the next (a REPL).
    """

    supports_input: ClassVar[bool] = True
    keeps_state: ClassVar[bool] = False

    def __init__(self, ctx: RuntimeContext) -> None:
        self.ctx = ctx

    async def start(self) -> None:
        """Prepare the engine during runner init (failures are logged, not fatal)."""

    async def query(self, code: str) -> int:
        raise NotImplementedError

    async def complete(self, code: str, cursor: int | None) -> list[str]:
        return []

    def interrupt(self) -> bool:
        return self.ctx.jobs.interrupt()

    def drain(self) -> None:
        self.ctx.jobs.drain()

    def batch_env(self, base: dict[str, str]) -> dict[str, str]:
        """The environment of this runtime's batch steps, built on *base*: with input support, Python
        programs among them get input()/getpass() through the input socket (``batch_site``)."""
        env = dict(base)
        if self.supports_input:
            existing = env.get("PYTHONPATH")
            env["PYTHONPATH"] = f"{BATCH_SITE_DIR}:{existing}" if existing else str(BATCH_SITE_DIR)
        return env

    async def shutdown(self) -> None:
        await self.ctx.jobs.kill()


def resolve_runtime_path(language: Language, given: str | None, search_path: str) -> str:
    """The runtime path from the CLI, else the first candidate that exists in the image."""
    if given:
        return given
    for candidate in language.runtime_paths:
        if candidate.startswith("/"):
            if Path(candidate).exists():
                return candidate
        else:
            found = shutil.which(candidate, path=search_path)
            if found:
                return found
    return language.runtime_paths[0]
