# -*- test-case-name: tests.test_sip_slim -*-
"""Slim copies of requests that are kept long after they were handled.

A confirmed call keeps its INVITEs for hours (CDR fields, a late PRACK, a fork's 2xx), and an
INVITE transaction keeps its request for 64*T1 after the 2xx only to absorb retransmissions.
Neither reads the body, most headers, the raw bytes or the parsed views any more: a slim copy
keeps the start line and a few headers, a tenth of the parsed message.
"""

from __future__ import annotations

from typing import AbstractSet

from sbc.sip.message import Request, copy_views, without_raw

__all__ = ["IDENTITY", "slim_request"]

#: What identifies a request's dialog and transaction: From, To, Call-ID, CSeq, and Contact
#: (the target it named).
IDENTITY = frozenset({"from", "to", "call-id", "cseq", "contact"})


def slim_request(request: Request, keep: AbstractSet[str] = IDENTITY) -> Request:
    """``request`` with only its headers whose key (lower-case, long form) is in ``keep``, in
    their order, and no body: a new message without raw bytes, which shares the header
    values of ``request`` and the views it had parsed from the kept headers."""
    slim = Request(request.method, request.uri,
                   tuple(without_raw(h) for h in request.headers if h.key in keep),
                   version=request.version)
    copy_views(request, slim, [name for name, key in _VIEWS if key in keep])
    return slim


#: Parsed views and the header each is read from.
_VIEWS = (("from_", "from"), ("to", "to"), ("call_id", "call-id"), ("cseq", "cseq"), ("contacts", "contact"),
          ("contact_star", "contact"))
