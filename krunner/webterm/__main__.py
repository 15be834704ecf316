"""``python -m krunner.webterm [--port 7681] [--host 0.0.0.0] [--shell PATH] [--assets DIR] [--cwd DIR]``.

Serves until SIGTERM/SIGINT, then closes every connection, kills every shell and
exits 0.  Exits 2 with a one-line error if the assets are missing, the working
directory does not exist or the port cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from . import ASSETS_ENV, DEFAULT_ASSETS_DIR, DEFAULT_PORT, find_assets
from .server import AssetError, ServerConfig, WebTermServer, load_assets
from .shell import DEFAULT_HOME, shell_command, shell_environment

log = logging.getLogger("krunner.webterm")


class StartupError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m krunner.webterm",
        description="Web terminal speaking ttyd's HTTP + WebSocket protocol (one shell per connection).",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="0.0.0.0", help="listen address (default 0.0.0.0)")
    parser.add_argument(
        "--shell", default=None, metavar="PATH",
        help="run PATH for each connection (default: tmux -2 new-session -A -s main if tmux exists, "
        "else the first of /bin/zsh, /bin/bash, /bin/ash, /bin/sh)",
    )
    parser.add_argument(
        "--assets", type=Path, default=None, metavar="DIR",
        help=f"directory with xterm.js, xterm.css, addon-fit.js (default ${ASSETS_ENV} or {DEFAULT_ASSETS_DIR})",
    )
    parser.add_argument("--cwd", default=DEFAULT_HOME, help=f"shells' working directory (default {DEFAULT_HOME})")
    parser.add_argument("--title", default="", help="window title (default '<command> (<hostname>)')")
    parser.add_argument("--debug", action="store_true", help="verbose logging")
    return parser


def make_config(args: argparse.Namespace) -> ServerConfig:
    if not 0 <= args.port <= 65535:
        raise StartupError(f"invalid port {args.port}")
    assets_dir = args.assets or find_assets() or Path(DEFAULT_ASSETS_DIR)
    try:
        assets = load_assets(assets_dir)
    except (AssetError, OSError) as exc:
        raise StartupError(str(exc)) from exc
    if not os.path.isdir(args.cwd):
        raise StartupError(f"working directory {args.cwd} does not exist")
    if args.shell and not (os.path.isfile(args.shell) and os.access(args.shell, os.X_OK)):
        raise StartupError(f"shell {args.shell} is not an executable file")
    return ServerConfig(
        host=args.host,
        port=args.port,
        argv=tuple(shell_command(args.shell)),
        env=shell_environment(os.environ, args.shell),
        cwd=args.cwd,
        assets=assets,
        title=args.title,
    )


async def serve(config: ServerConfig) -> None:
    server = WebTermServer(config)
    try:
        await server.start()
    except OSError as exc:
        raise StartupError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("signal received; shutting down")
    finally:
        await server.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # websockets logs every connection and plain HTTP response at INFO; keep its warnings only
    logging.getLogger("websockets").setLevel(logging.DEBUG if args.debug else logging.WARNING)
    try:
        config = make_config(args)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(config))
    except StartupError as exc:
        print(f"krunner.webterm: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
