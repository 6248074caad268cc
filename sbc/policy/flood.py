# -*- test-case-name: tests.test_policy_flood -*-
"""
Flood control per source address: a token bucket on requests, refusal strikes that lead to
a temporary ban, and the state behind them in tables of bounded size.

:class:`FloodGuard` is pure: every method takes ``now`` (seconds, any monotonic origin) and
returns a verdict; the transports act on it and count it.  What a source costs:

* ``banned(host, now)``: one dict lookup (the drop path for banned sources, before parsing);
* ``take(host, now)``: one token from the source's bucket (``rate`` per second, at most
  ``burst`` saved up); a request without a token is refused (``rate-limited``);
* ``strike(host, now)``: one refusal counted against the source; ``threshold`` strikes
  within ``window`` seconds ban it for ``ban_duration`` seconds (``banned``).

Every table is an insertion-ordered dict capped at ``max_sources`` entries, the oldest entry
evicted first (no reordering on use: that would cost every request a delete and an insert),
so a flood from many sources costs bounded memory; at worst an evicted source starts again
with a full bucket and no strikes.  Only sources the allowlist admitted reach these tables.

No Twisted, no I/O.
"""

from __future__ import annotations

from attrs import frozen

__all__ = ["FloodGuard", "FloodSettings"]


@frozen
class FloodSettings:
    """The limits (the ``[security]`` section carries them).  ``rate`` 0: no request limit;
    ``threshold`` 0: no bans."""

    rate: float = 1000.0
    burst: int = 2000
    threshold: int = 200
    window: float = 10.0
    ban_duration: float = 60.0
    max_sources: int = 65_536


def _evict(table: dict, limit: int) -> None:  # type: ignore[type-arg]
    while len(table) >= limit:
        del table[next(iter(table))]


class FloodGuard:
    """Per-source rate limits and bans (see the module docstring)."""

    def __init__(self, settings: FloodSettings = FloodSettings()) -> None:
        self.settings = settings
        self._limit = max(1, settings.max_sources)
        # host -> [tokens, last refill time]
        self._buckets: dict[str, list[float]] = {}
        # host -> [window start, strikes]
        self._strikes: dict[str, list[float]] = {}
        # host -> banned until
        self._bans: dict[str, float] = {}
        #: Bans made so far (for logs and tests).
        self.bans_made = 0

    def configure(self, settings: FloodSettings) -> None:
        """New limits (SIGHUP); bans in force stay, buckets start over."""
        self.settings = settings
        self._limit = max(1, settings.max_sources)
        self._buckets.clear()
        self._strikes.clear()
        if not settings.threshold:
            self._bans.clear()

    # -- bans ------------------------------------------------------------------------------

    def banned(self, host: str, now: float) -> bool:
        """Is ``host`` banned right now?  An expired ban is forgotten here."""
        until = self._bans.get(host)
        if until is None:
            return False
        if now < until:
            return True
        del self._bans[host]
        return False

    def banned_until(self, host: str) -> float | None:
        return self._bans.get(host)

    def ban(self, host: str, now: float, duration: float | None = None) -> float:
        """Ban ``host`` from ``now`` (for ``duration``, default the settings'); returns until when."""
        until = now + (self.settings.ban_duration if duration is None else duration)
        bans = self._bans
        if host in bans:
            del bans[host]
        else:
            _evict(bans, self._limit)
        bans[host] = until
        self._strikes.pop(host, None)
        self._buckets.pop(host, None)
        self.bans_made += 1
        return until

    @property
    def ban_count(self) -> int:
        return len(self._bans)

    # -- request rate ----------------------------------------------------------------------

    def take(self, host: str, now: float) -> bool:
        """One request from ``host``: True if its bucket had a token (the request may go on)."""
        s = self.settings
        rate = s.rate
        if rate <= 0:
            return True
        buckets = self._buckets
        bucket = buckets.get(host)
        if bucket is None:
            _evict(buckets, self._limit)
            buckets[host] = [s.burst - 1.0, now]
            return s.burst >= 1
        tokens = bucket[0] + (now - bucket[1]) * rate
        if tokens > s.burst:
            tokens = float(s.burst)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False

    # -- abuse -----------------------------------------------------------------------------

    def strike(self, host: str, now: float) -> bool:
        """A refusal counted against ``host``; True when this one bans it."""
        s = self.settings
        if s.threshold <= 0:
            return False
        strikes = self._strikes
        entry = strikes.get(host)
        if entry is None or now - entry[0] >= s.window:
            if entry is not None:
                del strikes[host]
            else:
                _evict(strikes, self._limit)
            strikes[host] = entry = [now, 0.0]
        entry[1] += 1
        if entry[1] >= s.threshold:
            self.ban(host, now)
            return True
        return False

    def sizes(self) -> dict[str, int]:
        """Entries per table (each at most ``max_sources``)."""
        return {"buckets": len(self._buckets), "strikes": len(self._strikes), "bans": len(self._bans)}
