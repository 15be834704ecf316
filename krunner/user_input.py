"""User input: one pending prompt at a time, answered by the next ``input`` op.

Unlike upstream (RE-14), input is scoped to the prompt that is waiting: text
that arrives while nothing waits is dropped, an interrupt releases a pending
prompt, and batch programs reach the broker through a unix socket whose request
carries the password flag and whose reply is not length-capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from .protocol import Record, waiting_input_payload
from .transport import Outbox

log = logging.getLogger("krunner.input")

REQUEST_LINE_TIMEOUT = 2.0
MAX_REQUEST_LINE = 64 * 1024


class InputCancelled(Exception):
    """The pending prompt was released by an interrupt or by the end of its run."""


class RunnerInputBroker:
    """The runner's side: one prompt at a time, announced to the agent and answered by its
    ``input`` op (the REPL child's side is ``python_child.user_input.ChildInputBroker``)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._pending: asyncio.Future[str] | None = None
        self._lock = asyncio.Lock()
        #: called right before ``waiting-input`` is sent (flushes the prompt text first)
        self.before_prompt: Callable[[], None] | None = None

    @property
    def waiting(self) -> bool:
        return self._pending is not None and not self._pending.done()

    async def request(self, *, password: bool) -> str:
        """Announce ``waiting-input`` and wait for the next ``input`` op."""
        async with self._lock:
            if self.before_prompt is not None:
                self.before_prompt()
            fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._pending = fut
            self._outbox.send(Record.WAITING_INPUT, waiting_input_payload(password))
            try:
                return await fut
            except asyncio.CancelledError:
                if fut.cancelled():
                    raise InputCancelled() from None
                raise
            finally:
                self._pending = None

    def feed(self, text: str) -> bool:
        """Answer the pending prompt; returns False (and drops the text) if none waits."""
        if self.waiting:
            assert self._pending is not None
            self._pending.set_result(text)
            return True
        log.info("dropping input: no prompt is waiting (%d chars)", len(text))
        return False

    def cancel(self) -> None:
        if self.waiting:
            assert self._pending is not None
            self._pending.cancel()


class InputSocketServer:
    """Serves ``input()`` of batch programs on ``/tmp/bai-user-input.sock``.

    Request: one JSON line ``{"prompt": str, "password": bool}`` (a client that
    sends nothing is treated as a plain prompt, like upstream's).  Reply: the
    user's text, then EOF.  A cancelled prompt closes the connection with no data.
    """

    def __init__(self, path: Path, broker: RunnerInputBroker | None) -> None:
        self.path = path
        self.broker = broker
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def _read_request(self, reader: asyncio.StreamReader) -> dict[str, object]:
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_LINE_TIMEOUT)
        except (asyncio.TimeoutError, ValueError):
            return {}
        if not line or len(line) > MAX_REQUEST_LINE:
            return {}
        try:
            req = json.loads(line)
        except ValueError:
            return {}
        return req if isinstance(req, dict) else {}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.broker is None:
                writer.write(b"<user-input is unsupported>")
                return
            req = await self._read_request(reader)
            try:
                text = await self.broker.request(password=bool(req.get("password", False)))
            except InputCancelled:
                return
            writer.write(text.encode("utf-8"))
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.debug("input socket client went away: %s", exc)
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
