"""Routes each inbound op: serial FIFO queue, inline, or background task.

Guarantees (stronger than upstream, same wire format):

* every serial op (clean/build/exec/code) ends with exactly one terminal record,
  whatever happens inside it, except that the steps of one batch end as one run
  (:mod:`krunner.batch_fold`);
* every op that expects a reply gets exactly one, also for a malformed payload
  (the reply then carries an ``error`` field);
* unknown ops are logged and ignored; an exception in one op never stops the
  reader or the worker;
* nothing slow runs inline, so the reader always stays responsive to
  ``status``, ``input`` and ``interrupt``;
* ``interrupt`` stops the running op *and* cancels every serial op queued before it (each
  still ends with its terminal record, exit code :data:`EXIT_CANCELLED`), like a Jupyter
  kernel aborting queued cells: a run that blocks (``input()``, ``sleep``) can never hold
  back an op sent after the interrupt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import reprlib
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from .batch_fold import FOLLOWUP_GRACE_SECONDS, NEXT_STEP, BatchFold
from .heap_trim import LARGE_PAYLOAD, HeapTrimmer
from .protocol import (
    EXIT_CANCELLED,
    EXIT_INTERNAL_ERROR,
    SERIAL_OPS,
    TERMINAL_RECORD,
    AppsResult,
    CompleteRequest,
    CompletionPayload,
    EventRequest,
    ModelServiceResult,
    Op,
    Record,
    ServiceResult,
    StartServiceRequest,
    encode_json,
    encode_status,
    exit_payload,
    parse_json_payload,
    validation_message,
)
from .runner import Runner
from .serial_queue import SerialQueue
from .transport import Outbox

log = logging.getLogger("krunner.dispatcher")


class Dispatcher:
    def __init__(self, runner: Runner, outbox: Outbox) -> None:
        self.runner = runner
        self.outbox = outbox
        self.queue: SerialQueue[tuple[Op, bytes]] = SerialQueue()
        self.batch = BatchFold()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.heap = HeapTrimmer()
        self._handlers: dict[Op, Callable[[bytes], None]] = {
            Op.INPUT: self._on_input,
            Op.INTERRUPT: self._on_interrupt,
            Op.STATUS: self._on_status,
            Op.GET_APPS: self._on_get_apps,
            Op.COMPLETE: lambda p: self._spawn(self._on_complete(p), "complete", len(p)),
            Op.EVENT: lambda p: self._spawn(self._on_event(p), "event", len(p)),
            Op.START_SERVICE: lambda p: self._spawn(self._on_start_service(p), "start-service", len(p)),
            Op.SHUTDOWN_SERVICE: lambda p: self._spawn(self._on_shutdown_service(p), "shutdown-service", len(p)),
            Op.START_MODEL_SERVICE: lambda p: self._spawn(self._on_start_model_service(p), "start-model-service", len(p)),
        }

    # -- entry point from the reader ---------------------------------------------------------

    def dispatch(self, token: str, payload: bytes) -> None:
        try:
            op = Op(token)
        except ValueError:
            log.warning("ignoring unknown op %r (%d payload bytes)", token[:64], len(payload))
            op = None
        if op is not None:
            try:
                if op in SERIAL_OPS:
                    self.queue.put_nowait((op, payload))
                else:
                    self._handlers[op](payload)
            except Exception:
                log.exception("op %s failed", op.value)
        if len(payload) >= LARGE_PAYLOAD and op not in SERIAL_OPS:
            self.heap.soon()  # done with it (a background op trims again when it ends)
        else:
            self.heap.count_message()

    def _spawn(self, coro: Awaitable[Any], name: str, size: int = 0) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if size >= LARGE_PAYLOAD:
                self.heap.soon()
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed: %r", name, t.exception())

        task.add_done_callback(done)

    async def cancel_background(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the serial worker -------------------------------------------------------------------

    async def worker(self) -> None:
        while True:
            (op, payload), cancelled = await self.queue.get()
            exit_code: int | None = EXIT_INTERNAL_ERROR
            try:
                if cancelled:
                    exit_code = EXIT_CANCELLED
                    self.outbox.send(Record.STDERR, f"[krunner] {op.value} not run: interrupted while queued\n".encode())
                else:
                    exit_code = await self.runner.run_serial(op, payload)
            except asyncio.CancelledError:
                self._end_run(op, exit_code)
                raise
            except BaseException as exc:  # includes SystemExit from a misbehaving runtime
                log.exception("%s failed inside the runner", op.value)
                self.outbox.send(Record.STDERR, f"[krunner] internal error during {op.value}: {exc!r}\n".encode())
            if len(payload) >= LARGE_PAYLOAD:
                payload = b""
                self.heap.soon()
            if await self._continues_batch(op):
                self.batch.fold(op, exit_code)
            else:
                self._end_run(op, exit_code)

    def _end_run(self, op: Op, exit_code: int | None) -> None:
        self.outbox.send(TERMINAL_RECORD[op], exit_payload(exit_code, self.batch.take() or None))

    async def _continues_batch(self, op: Op) -> bool:
        """True when the next step of this batch is queued (see :mod:`krunner.batch_fold`)."""
        follow = NEXT_STEP.get(op)
        if follow is None:
            return False
        head = await self.queue.peek(FOLLOWUP_GRACE_SECONDS)
        return head is not None and head[0] is follow

    # -- inline ops --------------------------------------------------------------------------

    def _on_interrupt(self, _payload: bytes) -> None:
        cancelled = self.queue.cancel_pending()
        if cancelled:
            log.info("interrupt: %d queued op(s) cancelled", cancelled)
        self.runner.interrupt()

    def _on_input(self, payload: bytes) -> None:
        self.runner.feed_input(payload.decode("utf-8", errors="replace"))

    def _on_status(self, _payload: bytes) -> None:
        self.outbox.send(Record.STATUS, encode_status(self.runner.started_at))

    def _on_get_apps(self, payload: bytes) -> None:
        try:
            name = payload.decode("utf-8").strip()
            if name.startswith('"'):
                name = str(json.loads(name))
            result = self.runner.services.get_apps(name)
        except (UnicodeDecodeError, ValueError) as exc:
            result = AppsResult(status="failed", data=[], error=f"bad get-apps payload: {exc}")
        self.outbox.send(Record.APPS_RESULT, encode_json(result))

    # -- background ops ----------------------------------------------------------------------

    async def _reply(
        self,
        record: Record,
        what: str,
        failed: Callable[[str], BaseModel],
        work: Callable[[], Awaitable[BaseModel]],
    ) -> None:
        """Run ``work`` and send exactly one ``record``: its result, or ``failed(reason)``."""
        result = failed("internal error")
        try:
            result = await work()
        except ValidationError as exc:
            result = failed(f"bad {what} request: {validation_message(exc)}")
        except ValueError as exc:
            result = failed(f"bad {what} request: {exc}")
        except Exception as exc:
            log.exception("%s failed", what)
            result = failed(f"{what} failed: {exc}")
        finally:
            self.outbox.send(record, encode_json(result))

    async def _on_complete(self, payload: bytes) -> None:
        async def work() -> CompletionPayload:
            request = CompleteRequest.model_validate(parse_json_payload(payload))
            return CompletionPayload(suggestions=await self.runner.complete(request.text, request.cursor))

        await self._reply(
            Record.COMPLETION, "complete", lambda why: CompletionPayload(suggestions=[], error=why), work
        )

    async def _on_event(self, payload: bytes) -> None:
        try:
            event = EventRequest.model_validate(parse_json_payload(payload))
        except (ValueError, ValidationError) as exc:
            log.error("ignoring malformed event: %s", exc)
            return
        if event.type == "oom":
            log.warning("the agent reports that a process in this container was killed for running out of memory")
        else:
            log.info("event %s: %s", reprlib.repr(event.type), reprlib.repr(event.data))

    async def _on_start_service(self, payload: bytes) -> None:
        async def work() -> ServiceResult:
            request = StartServiceRequest.model_validate(parse_json_payload(payload))
            return await self.runner.services.start(request)

        await self._reply(
            Record.SERVICE_RESULT, "start-service", lambda why: ServiceResult(status="failed", error=why), work
        )

    async def _on_shutdown_service(self, payload: bytes) -> None:
        try:
            raw = parse_json_payload(payload)
        except ValueError:
            raw = payload.decode("utf-8", errors="replace").strip()
        if not isinstance(raw, str) or not raw:
            log.error("ignoring shutdown-service: expected a service name, got %s", reprlib.repr(raw))
            return
        await self.runner.services.shutdown(raw)

    async def _on_start_model_service(self, payload: bytes) -> None:
        async def work() -> ModelServiceResult:
            config = parse_json_payload(payload)
            if not isinstance(config, dict):
                raise ValueError("expected a JSON object")
            return await self.runner.models.start(config)

        await self._reply(
            Record.MODEL_SERVICE_RESULT,
            "start-model-service",
            lambda why: ModelServiceResult(status="failed", error=why),
            work,
        )
