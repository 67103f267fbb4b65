"""Results leave in inventory order, and a slow target cannot make the scan hoard.

A target may start only while its position is within ``size`` of the next result
to leave. One target that takes its full timeouts therefore holds at most ``size``
finished results behind it, however long the inventory: the scan slows down behind
it instead of filling memory.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

T = TypeVar("T")


class OrderedWindow(Generic[T]):
    def __init__(self, channel: trio.MemorySendChannel[T], size: int) -> None:
        if size < 1:
            raise ValueError("the window must hold at least one result")
        self._channel = channel
        self._size = size
        self._waiting: dict[int, T] = {}
        self._next = 0
        self._advanced = trio.Event()

    @property
    def held(self) -> int:
        """Finished results waiting for an earlier one (for tests and benchmarks)."""
        return len(self._waiting)

    async def admit(self, position: int) -> None:
        """Wait until ``position`` is inside the window."""
        while position >= self._next + self._size:
            await self._advanced.wait()

    async def deliver(self, position: int, result: T) -> None:
        """Hand on ``result`` once every result before it has left."""
        self._waiting[position] = result
        while self._next in self._waiting:
            await self._channel.send(self._waiting.pop(self._next))
            self._next += 1
            self._advanced.set()
            self._advanced = trio.Event()
