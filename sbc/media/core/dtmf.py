# -*- test-case-name: tests.test_media_dtmf -*-
"""
Keypresses -> agent events: an audit per key, and the buffered digits submitted as text.

The buffer is submitted when the submit key is pressed (the key itself is not part of the
text, and a submit key on an empty buffer submits nothing), when ``idle_timeout`` seconds
pass after the last key (every key restarts the wait), or when the caller starts speaking.
Timers are data: the driver schedules ``next_deadline()`` and calls ``handle_timer(now)``.
"""

from __future__ import annotations

from attrs import frozen

from sbc.media.core.rfc4733 import DIGITS

__all__ = ["DigitAudit", "DigitCollector", "DigitSubmit", "TRIGGER_IDLE", "TRIGGER_LENGTH", "TRIGGER_SPEECH"]

TRIGGER_IDLE = "idle"
TRIGGER_SPEECH = "speech"
#: Submitted because the buffer reached ``max_digits`` (a flood, not a person).
TRIGGER_LENGTH = "length"


@frozen
class DigitAudit:
    """One keypress, for the agent's audit event."""

    digit: str
    at: float


@frozen
class DigitSubmit:
    """Buffered digits submitted as one text input."""

    text: str
    trigger: str  # the submit key ("#"), "idle", "speech" or "length"
    at: float


class DigitCollector:
    """The digit buffer of one call."""

    def __init__(self, submit_key: str | None = "#", idle_timeout: float | None = 2.5, max_digits: int = 64) -> None:
        """
        ``submit_key`` is one of ``DIGITS`` (``a``-``d`` accepted) or ``""``/``None`` for none;
        ``idle_timeout`` is in seconds, ``None`` for no idle submission.  ValueError otherwise.
        """
        submit_key = (submit_key or "").upper()
        if submit_key != "" and (len(submit_key) != 1 or submit_key not in DIGITS):
            raise ValueError(f"submit key {submit_key!r} is not a DTMF digit")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(f"idle timeout {idle_timeout!r} must be positive")
        if max_digits < 1:
            raise ValueError(f"max_digits {max_digits!r} must be positive")
        self.submit_key = submit_key
        self.idle_timeout = idle_timeout
        self.max_digits = max_digits
        self._digits: list[str] = []
        self._deadline: float | None = None

    @property
    def buffering(self) -> bool:
        """Whether digits are buffered (voice activity detection need only run then)."""
        return bool(self._digits)

    def key(self, digit: str, now: float) -> list[DigitAudit | DigitSubmit]:
        """
        An audit for every key; a submit too when it is the submit key (or fills the buffer).

        If the idle deadline had already passed (the timer has not fired yet), the buffer is
        submitted as idle first, and this key starts a new one.
        """
        if len(digit) != 1 or digit not in DIGITS:
            raise ValueError(f"{digit!r} is not a DTMF digit")
        out: list[DigitAudit | DigitSubmit] = []
        overdue = self.handle_timer(now)
        if overdue is not None:
            out.append(overdue)
        out.append(DigitAudit(digit, now))
        if digit == self.submit_key:
            submit = self._submit(digit, now)
            if submit is not None:
                out.append(submit)
            return out
        self._digits.append(digit)
        if len(self._digits) >= self.max_digits:
            submit = self._submit(TRIGGER_LENGTH, now)
            assert submit is not None
            out.append(submit)
        elif self.idle_timeout is not None:
            self._deadline = now + self.idle_timeout
        return out

    def speech(self, now: float) -> DigitSubmit | None:
        """The caller started speaking: submit the buffer if it holds digits (as idle if overdue)."""
        return self.handle_timer(now) or self._submit(TRIGGER_SPEECH, now)

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next be called, or None."""
        return self._deadline if self._digits else None

    def handle_timer(self, now: float) -> DigitSubmit | None:
        """Submit the buffer if its idle deadline has passed."""
        if self._deadline is None or now < self._deadline:
            return None
        return self._submit(TRIGGER_IDLE, now)

    def clear(self) -> None:
        """Drop buffered digits without submitting them (the call ended)."""
        self._digits.clear()
        self._deadline = None

    def _submit(self, trigger: str, now: float) -> DigitSubmit | None:
        self._deadline = None
        if not self._digits:
            return None
        text = "".join(self._digits)
        self._digits.clear()
        return DigitSubmit(text, trigger, now)
