# -*- test-case-name: tests.test_transport -*-
"""Rate-limited logging: a flood of junk must not become a flood of log lines."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger


class RateLimitedLog:
    """
    Emit at most ``burst`` events per ``window`` seconds for each key; when a window closes
    with suppressed events, the next event for that key carries ``suppressed=N``.
    """

    def __init__(self, log: Logger, clock: IReactorTime, *, burst: int = 10,
                 window: float = 10.0) -> None:
        self._log = log
        self._clock = clock
        self._burst = burst
        self._window = window
        self._state: dict[str, list[float | int]] = {}  # key -> [window_start, emitted, suppressed]

    def emit(self, key: str, fmt: str, **fields: Any) -> bool:
        now = self._clock.seconds()
        state = self._state.get(key)
        if state is None or now - state[0] >= self._window:
            suppressed = int(state[2]) if state is not None else 0
            self._state[key] = [now, 1, 0]
            if suppressed:
                fmt += " ({suppressed} similar events suppressed)"
                fields["suppressed"] = suppressed
            self._log.info(fmt, **fields)
            return True
        if state[1] < self._burst:
            state[1] += 1
            self._log.info(fmt, **fields)
            return True
        state[2] += 1
        return False
