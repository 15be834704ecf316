"""The FIFO of serial ops (clean/build/exec/code) with a bounded look-ahead.

The dispatcher needs to know whether the next step of a batch is already on its
way before it ends the current step (see :mod:`krunner.batch_fold`), so unlike
:class:`asyncio.Queue` this queue can *peek*, optionally waiting a little for an
item to arrive.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, TypeVar

T = TypeVar("T")


class SerialQueue(Generic[T]):
    def __init__(self) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._changed = asyncio.Event()

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        self._changed.set()

    async def get(self) -> T:
        while not self._items:
            self._changed.clear()
            await self._changed.wait()
        return self._items.popleft()

    async def peek(self, timeout: float) -> T | None:
        """The head item without removing it; waits up to *timeout* s for one, else None."""
        if self._items:
            return self._items[0]
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        return self._items[0] if self._items else None
