# -*- test-case-name: tests.test_sip_message -*-
"""Typed errors of the sans-IO SIP core.  The edge maps them to SIP responses once."""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error the SIP core raises on purpose."""


class SipParseError(SipError):
    """A message could not be parsed or fails a syntax/semantic check.

    ``status`` is the response a server should send for a request that fails this way
    (400 unless a more precise code applies: 505, 513, 416, 420, ...); ``reason`` is a short
    human text used as the reason phrase and in logs.  Responses that fail are dropped.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class MessageTooLarge(SipParseError):
    """A message (or a stream buffer) exceeds the configured maximum size."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds limit of {limit}", 513)
        self.size = size
        self.limit = limit
