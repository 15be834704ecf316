"""Query engines that run each ``code`` op as a fresh process."""

from __future__ import annotations

import shlex
import shutil
import tempfile
from pathlib import Path

from ..protocol import EXIT_NOTHING_TO_RUN, Record
from .base import QueryEngineBase


class SnippetQuery(QueryEngineBase):
    """Writes the code to a private temp directory and runs the language's query command.

    Unlike upstream's legacy runtimes this never overwrites ``./main`` (or
    anything else) in the user's working directory.
    """

    async def query(self, code: str) -> int:
        lang = self.ctx.language
        tmpdir = Path(tempfile.mkdtemp(prefix="krunner-query-"))
        try:
            src = tmpdir / lang.source_name
            src.write_text(lang.source_prelude + code, encoding="utf-8")
            command = lang.query.format(
                runtime=shlex.quote(self.ctx.runtime_path),
                src=shlex.quote(str(src)),
                dir=shlex.quote(str(tmpdir)),
            )
            return await self.ctx.jobs.run(["/bin/sh", "-c", command], self.ctx.env)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


class ShellQuery(QueryEngineBase):
    """Runs the code with the image's shell (``<shell> -c <code>``)."""

    async def query(self, code: str) -> int:
        return await self.ctx.jobs.run([self.ctx.runtime_path, "-c", code], self.ctx.env)


class NoQuery(QueryEngineBase):
    supports_input = False
    """Runtimes without query mode (``app``): every ``code`` is answered with 127."""

    async def query(self, code: str) -> int:
        name = self.ctx.language.name
        self.ctx.outbox.send(
            Record.STDERR,
            f"[krunner] the '{name}' runtime has no query mode; use the image's services or batch mode\n".encode(),
        )
        return EXIT_NOTHING_TO_RUN
