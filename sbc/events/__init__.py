# -*- test-case-name: tests.test_events_schema -*-
"""Agent events (pure, no Twisted): see :mod:`sbc.events.schema`."""

from sbc.events.schema import (
    DTMF_KEYS,
    AgentEvent,
    CallEnded,
    CallStarted,
    DtmfEventReceived,
    TextSubmitted,
    encode,
    to_json,
)

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
