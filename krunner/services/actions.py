"""Prestart actions: an explicit registry, one function per action, a per-start variable scope.

Every string argument is rendered with :mod:`krunner.services.template` against
the variables of *this* start of *this* service (``ports``, ``runtime_path``
and the ``ref`` results of earlier actions); nothing leaks between services.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from ..proc import started_group
from . import template
from .service_def import (
    LogArgs,
    MkdirArgs,
    RunCommandArgs,
    WriteFileArgs,
    WriteTempfileArgs,
)

log = logging.getLogger("krunner.services.actions")


class ActionFailed(RuntimeError):
    pass


class ActionContext:
    def __init__(self, variables: dict[str, Any], env: Mapping[str, str], cwd: str, service: str) -> None:
        self.variables = variables
        self.env = env
        self.cwd = cwd
        self.service = service

    def render(self, text: str) -> str:
        return template.render(text, self.variables)


async def write_file(args: WriteFileArgs, ctx: ActionContext) -> None:
    path = Path(ctx.render(args.filename))
    body = "".join(ctx.render(line) + "\n" for line in args.body)
    with open(path, "a" if args.append else "w", encoding="utf-8") as fh:
        fh.write(body)
    os.chmod(path, int(args.mode, 8))


async def write_tempfile(args: WriteTempfileArgs, ctx: ActionContext) -> str:
    fd, name = tempfile.mkstemp(suffix=args.suffix, prefix=f"{ctx.service}-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(ctx.render(chunk) for chunk in args.body))
    os.chmod(name, int(args.mode, 8))
    return name


async def mkdir(args: MkdirArgs, ctx: ActionContext) -> None:
    Path(ctx.render(args.path)).mkdir(parents=True, exist_ok=True)


async def run_command(args: RunCommandArgs, ctx: ActionContext) -> dict[str, str]:
    argv = [ctx.render(part) for part in args.command]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(ctx.env),
            cwd=ctx.cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise ActionFailed(f"run_command: {argv[0]}: command not found") from None
    started_group(proc.pid)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), args.timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise ActionFailed(f"run_command: {argv[0]} did not finish within {args.timeout:g} s") from None
    result = {"out": out.decode("utf-8", errors="replace"), "err": err.decode("utf-8", errors="replace")}
    if args.echo:
        for stream in (result["out"], result["err"]):
            if stream:
                log.info("[%s] %s", ctx.service, stream.rstrip())
    if args.check and proc.returncode != 0:
        tail = (result["err"] or result["out"]).strip().splitlines()[-3:]
        raise ActionFailed(f"run_command: {argv[0]} exited with {proc.returncode}: {' | '.join(tail)}")
    return result


async def log_message(args: LogArgs, ctx: ActionContext) -> None:
    log.log(logging.DEBUG if args.debug else logging.INFO, "[%s] %s", ctx.service, ctx.render(args.text))


REGISTRY: dict[str, Callable[[Any, ActionContext], Awaitable[Any]]] = {
    "write_file": write_file,
    "write_tempfile": write_tempfile,
    "mkdir": mkdir,
    "run_command": run_command,
    "log": log_message,
}


async def run_prestart(actions: list[Any], ctx: ActionContext) -> None:
    """Run the actions in order; a ``ref`` stores the result for later templates."""
    for index, action in enumerate(actions):
        try:
            result = await REGISTRY[action.action](action.args, ctx)
        except ActionFailed:
            raise
        except (OSError, template.TemplateError) as exc:
            raise ActionFailed(f"prestart[{index}] {action.action}: {exc}") from None
        if action.ref:
            ctx.variables[action.ref] = result
