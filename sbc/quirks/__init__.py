# -*- test-case-name: tests.test_quirks_interface -*-
"""Vendor quirk plugins (issue 6): the interface, the plugin-facing message, the canonical
call toward the agent host and the chain that runs a trunk's plugins.

Pure (zope.interface, attrs, the standard library and sbc.sip/sbc.policy); only
:mod:`sbc.quirks.loader` imports ``twisted.plugin``, and it is not imported here.
"""

from .canonical import CONTRACT_HEADERS, CanonicalCall
from .interface import IVendorQuirk, QuirkBase, QuirkContext, VendorDefaults, header_matches
from .message import SipMessage, from_sip, to_sip

__all__ = [
    "CONTRACT_HEADERS",
    "CanonicalCall",
    "IVendorQuirk",
    "QuirkBase",
    "QuirkContext",
    "SipMessage",
    "VendorDefaults",
    "from_sip",
    "header_matches",
    "to_sip",
]
