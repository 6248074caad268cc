# -*- test-case-name: tests.test_events_schema -*-
"""The events the SBC sends to the agent host, and their JSON form.

Pure values: no Twisted, no I/O.  The B2BUA builds them, :class:`sbc.agent.hub.EventHub`
fans them out, and every channel (WebSocket, webhook, SIP INFO) sends the bytes of
:func:`encode`.

Shapes (one JSON object per event; every event carries the SBC's ``call_id``):

``DtmfEventReceived`` -- one per keypress, shaped as the agent host's own API shapes it::

    {"type": "input_audio_buffer.dtmf_event_received", "event": "5",
     "received_at": 1730000000, "call_id": "..."}

``received_at`` is integer unix seconds (wall clock, rounded down).

``TextSubmitted`` -- the buffered digits submitted as one user text input::

    {"type": "conversation.item.create",
     "item": {"type": "message", "role": "user",
              "content": [{"type": "input_text", "text": "1234"}]},
     "call_id": "...", "trigger": "#"}

``trigger`` is the submit key that was pressed, ``"idle"`` or ``"speech"``.  The object has
no time field: agent hosts may forward it verbatim to an API that rejects unknown members.

``CallStarted`` / ``CallEnded`` -- call lifecycle::

    {"type": "call.started", "call_id": "...", "at": 1730000000.125, "trunk": "pbx1",
     "vendor": "generic", "direction": "inbound", "caller": "...", "callee": "...",
     "headers": [{"name": "From", "value": "..."}, ...]}
    {"type": "call.ended", "call_id": "...", "at": 1730000042.5, "reason": "bye from a",
     "duration": 41.9, "a_status": 200, "b_status": 200}

``at`` is unix seconds (wall clock) with millisecond precision; ``duration`` (seconds from
answer to end) and the final SIP statuses of each leg may be ``null``.

Construction validates types (``TypeError``) and values (``ValueError``: non-finite times,
a digit that is not a DTMF key); a negative duration becomes 0.  :func:`to_json` and :func:`encode`
never raise for a constructed event: strings that cannot be encoded as UTF-8 (lone
surrogates from a ``surrogateescape`` decode) are sent with ``?`` in their place.
"""

from __future__ import annotations

import json
import math
from typing import Any, Union

from attrs import field, frozen

__all__ = [
    "DTMF_KEYS",
    "AgentEvent",
    "CallEnded",
    "CallStarted",
    "DtmfEventReceived",
    "TextSubmitted",
    "encode",
    "to_json",
]

DTMF_KEYS = frozenset("0123456789*#ABCD")


def _str(instance: object, attribute: Any, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be str, not {type(value).__name__}")


def _time(instance: object, attribute: Any, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{attribute.name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, not {value!r}")


def _optional_time(instance: object, attribute: Any, value: object) -> None:
    if value is not None:
        _time(instance, attribute, value)


def _clamp_duration(value: object) -> object:
    """A negative duration (the wall clock stepped back mid-call) is sent as 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return 0.0
    return value


def _optional_status(instance: object, attribute: Any, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{attribute.name} must be an int or None, not {type(value).__name__}")


def _dtmf_key(instance: object, attribute: Any, value: object) -> None:
    _str(instance, attribute, value)
    if value not in DTMF_KEYS:
        raise ValueError(f"{attribute.name} must be one of 0-9 * # A-D, not {value!r}")


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    """Converter: any iterable of (name, value) string pairs to a tuple of tuples."""
    if isinstance(value, (str, bytes)):
        raise TypeError("headers must be (name, value) pairs, not a string")
    try:
        pairs = tuple(tuple(pair) for pair in value)  # type: ignore[attr-defined]
    except TypeError:
        raise TypeError("headers must be an iterable of (name, value) pairs") from None
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(part, str) for part in pair):
            raise TypeError("each header must be a (name, value) pair of str")
    return pairs  # type: ignore[return-value]


@frozen
class DtmfEventReceived:
    """One keypress, reported as an audit event (whatever its source)."""

    call_id: str = field(validator=_str)
    event: str = field(validator=_dtmf_key)
    received_at: float = field(validator=_time)   # unix seconds, wall clock


@frozen
class TextSubmitted:
    """Buffered digits submitted as one text input; ``trigger`` says why."""

    call_id: str = field(validator=_str)
    text: str = field(validator=_str)
    trigger: str = field(validator=_str)           # the submit key, "idle" or "speech"
    at: float = field(validator=_time)             # unix seconds, wall clock (not sent)


@frozen
class CallStarted:
    """A call was accepted; ``headers`` are the normalised SIP headers of the caller's INVITE."""

    call_id: str = field(validator=_str)
    at: float = field(validator=_time)
    trunk: str = field(validator=_str)
    vendor: str = field(validator=_str)
    direction: str = field(validator=_str)         # "inbound" | "outbound"
    caller: str = field(validator=_str)
    callee: str = field(validator=_str)
    headers: tuple[tuple[str, str], ...] = field(converter=_headers, factory=tuple)


@frozen
class CallEnded:
    """A call ended; ``reason`` is the SBC's end reason (as in the CDR)."""

    call_id: str = field(validator=_str)
    at: float = field(validator=_time)
    reason: str = field(validator=_str)
    duration: float | None = field(default=None, converter=_clamp_duration, validator=_optional_time)
    a_status: int | None = field(default=None, validator=_optional_status)
    b_status: int | None = field(default=None, validator=_optional_status)


AgentEvent = Union[DtmfEventReceived, TextSubmitted, CallStarted, CallEnded]


def _seconds(value: float) -> float:
    return round(float(value), 3)


def to_json(event: AgentEvent) -> dict[str, Any]:
    """The event as a JSON-ready dict (see the module docstring for the shapes).

    Raises ``TypeError`` for anything that is not an :data:`AgentEvent`.
    """
    if isinstance(event, DtmfEventReceived):
        return {
            "type": "input_audio_buffer.dtmf_event_received",
            "event": event.event,
            "received_at": math.floor(event.received_at),
            "call_id": event.call_id,
        }
    if isinstance(event, TextSubmitted):
        return {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": event.text}],
            },
            "call_id": event.call_id,
            "trigger": event.trigger,
        }
    if isinstance(event, CallStarted):
        return {
            "type": "call.started",
            "call_id": event.call_id,
            "at": _seconds(event.at),
            "trunk": event.trunk,
            "vendor": event.vendor,
            "direction": event.direction,
            "caller": event.caller,
            "callee": event.callee,
            "headers": [{"name": name, "value": value} for name, value in event.headers],
        }
    if isinstance(event, CallEnded):
        return {
            "type": "call.ended",
            "call_id": event.call_id,
            "at": _seconds(event.at),
            "reason": event.reason,
            "duration": None if event.duration is None else _seconds(event.duration),
            "a_status": event.a_status,
            "b_status": event.b_status,
        }
    raise TypeError(f"not an agent event: {type(event).__name__}")


def encode(event: AgentEvent) -> bytes:
    """Compact UTF-8 JSON for one event (no trailing newline).

    Raises ``TypeError`` for anything that is not an :data:`AgentEvent`.
    """
    text = json.dumps(to_json(event), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8", errors="replace")
