"""The FIFO of serial ops (clean/build/exec/code) with a bounded look-ahead.

The dispatcher needs to know whether the next step of a batch is already on its
way before it ends the current step (see :mod:`krunner.batch_fold`), so unlike
:class:`asyncio.Queue` this queue can *peek*, optionally waiting a little for an
item to arrive. An ``interrupt`` cancels what is queued (:meth:`SerialQueue.cancel_pending`):
the items stay in order, so each still ends with its terminal record and a batch still folds.
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
        self._taken = 0  # items handed out by get() so far
        self._cancel_below = 0  # items numbered below this were cancelled while queued

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        self._changed.set()

    def cancel_pending(self) -> int:
        """Mark every queued item cancelled (items put later are not); returns how many."""
        self._cancel_below = self._taken + len(self._items)
        return len(self._items)

    async def get(self) -> tuple[T, bool]:
        """The next item and whether it was cancelled while it waited (see :meth:`cancel_pending`)."""
        while not self._items:
            self._changed.clear()
            await self._changed.wait()
        cancelled = self._taken < self._cancel_below
        self._taken += 1
        return self._items.popleft(), cancelled

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
