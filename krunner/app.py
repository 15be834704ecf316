"""Wires the runner together: sockets, reader loop, serial worker, signals, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import zmq
import zmq.asyncio

from .container_env import ContainerPaths, read_intrinsic_ports
from .dispatcher import Dispatcher
from .runner import Runner
from .runtimes.languages import Language
from .transport import ReplChannel

log = logging.getLogger("krunner")


async def _read_loop(channel: ReplChannel, dispatcher: Dispatcher) -> None:
    while True:
        try:
            message = await channel.receive()
        except zmq.ZMQError as exc:
            log.error("receive failed: %s", exc)
            await asyncio.sleep(0.05)
            continue
        if message is not None:
            dispatcher.dispatch(*message)


async def serve(language: Language, runtime_path: str | None) -> int:
    loop = asyncio.get_running_loop()
    paths = ContainerPaths()
    ports = read_intrinsic_ports(paths.intrinsic_ports_json)
    zctx = zmq.asyncio.Context()
    bind_host = os.environ.get("KRUNNER_BIND_HOST", "*")
    try:
        channel = ReplChannel(zctx, ports["replin"], ports["replout"], bind_host)
    except zmq.ZMQError as exc:
        log.error("cannot bind the REPL ports %d/%d: %s", ports["replin"], ports["replout"], exc)
        return 1
    runner = Runner(
        language,
        runtime_path,
        outbox=channel.outbox,
        zmq_context=zctx,
        paths=paths,
        pty_ports=(ports["ptyin"], ports["ptyout"]),
        intrinsic_ports={"sshd": ports["sshd"], "ttyd": ports["ttyd"]},
    )
    dispatcher = Dispatcher(runner, channel.outbox)

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    sender = loop.create_task(channel.outbox.run(), name="outbox")
    reader = loop.create_task(_read_loop(channel, dispatcher), name="reader")
    worker = loop.create_task(dispatcher.worker(), name="worker")
    init = loop.create_task(runner.init(), name="init")
    log.info("listening on %d/%d (runtime %s)", ports["replin"], ports["replout"], language.name)
    await stop.wait()

    log.info("shutting down")
    channel.inbound.close(linger=0)
    for task in (reader, worker, init):
        task.cancel()
    await asyncio.gather(reader, worker, init, return_exceptions=True)
    await dispatcher.cancel_background()
    await runner.shutdown()
    await channel.outbox.drained(timeout=0.5)
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sender
    channel.close()
    zctx.term()
    return 0
