# -*- test-case-name: tests.test_sip_timers -*-
"""
Keyed one-shot deadlines for sans-IO transaction users, as data.

A TU (the B2BUA, the demo agent) keeps its call timers here: ``set`` replaces a key's
deadline, ``cancel`` drops it, ``next_deadline`` is what the driver schedules, and
``pop_due(now)`` hands back one due key at a time so that work done for one timer may set
or cancel others.  Deletion is lazy: a replaced or cancelled entry stays in the heap until it
reaches the top, and the heap is rebuilt when dead entries outnumber live ones four to one.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, Hashable, TypeVar

__all__ = ["TimerHeap"]

K = TypeVar("K", bound=Hashable)


class TimerHeap(Generic[K]):
    __slots__ = ("_live", "_heap", "_seq")

    def __init__(self) -> None:
        # key -> the sequence number of its live heap entry (unique per ``set``; the int object
        # is the one in the heap entry, so a live timer costs one heap tuple and a dict slot)
        self._live: dict[K, int] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def set(self, key: K, when: float) -> None:
        """Arm (or re-arm) ``key`` to fire at ``when``."""
        seq = next(self._seq)
        self._live[key] = seq
        heapq.heappush(self._heap, (when, seq, key))

    def cancel(self, key: K) -> None:
        if self._live.pop(key, None) is not None:
            self._compact()

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            when, seq, key = heap[0]
            if self._live.get(key) == seq:
                return when
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> K | None:
        """The earliest key due at ``now`` (removed), or None."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, seq, key = heapq.heappop(heap)
            if self._live.get(key) == seq:
                del self._live[key]
                return key
        return None

    def _compact(self) -> None:
        heap = self._heap
        if len(heap) > 64 and len(heap) > 4 * len(self._live):
            live = self._live
            self._heap = [e for e in heap if live.get(e[2]) == e[1]]
            heapq.heapify(self._heap)
