"""Append-only batch task log (``/home/work/.logs/task/…``), written off the event loop."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from pathlib import Path

log = logging.getLogger("krunner.tasklog")


class TaskLog:
    """Appends raw output chunks to a file from a dedicated writer thread."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[bytes | threading.Event | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if path is not None:
            self._thread = threading.Thread(target=self._writer, name="krunner-tasklog", daemon=True)
            self._thread.start()

    def write(self, data: bytes) -> None:
        if self._thread is not None:
            self._queue.put(data)

    async def settled(self, timeout: float = 2.0) -> None:
        """Wait (off the loop, at most *timeout* s) until what was written so far is flushed to the file,
        so a step's ``finished`` is sent only once its output is in the log."""
        if self._thread is None or not self._thread.is_alive():
            return
        marker = threading.Event()
        self._queue.put(marker)
        await asyncio.to_thread(marker.wait, timeout)

    def _writer(self) -> None:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "ab")
        except OSError as exc:
            log.warning("task log disabled: %s", exc)
            return
        with fh:
            while True:
                chunk = self._queue.get()
                if chunk is None:
                    return
                if isinstance(chunk, threading.Event):
                    fh.flush()
                    chunk.set()
                    continue
                fh.write(chunk)
                if self._queue.empty():
                    fh.flush()

    def close(self, timeout: float = 1.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
