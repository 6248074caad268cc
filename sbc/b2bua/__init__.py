# -*- test-case-name: tests.test_b2bua -*-
"""The back-to-back user agent: every PBX call (A leg) bridged to the agent host (B leg).

Sans-IO: :class:`~sbc.b2bua.core.B2bua` is driven by ``(message, peer, now)`` and by timers
given as data; it imports nothing from Twisted.
"""

from sbc.b2bua.call import Call
from sbc.b2bua.core import B2bua, B2buaNotice, DEFAULT_COPY_HEADERS, LiteralResolver, Resolver

__all__ = ["B2bua", "B2buaNotice", "Call", "DEFAULT_COPY_HEADERS", "LiteralResolver", "Resolver"]
