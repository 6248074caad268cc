# -*- test-case-name: tests.test_media_srtp -*-
"""SRTP/SRTCP for one side of a relayed call, over pylibsrtp (libsrtp 2).

An `SrtpEndpoint` holds two pylibsrtp sessions: one that unprotects what the peer sends (its
SDES key, ``ssrc_any_inbound``) and one that protects what we send it (our key,
``ssrc_any_outbound``).  Both accept any SSRC, so an SSRC change mid-call needs no new
signalling; each SSRC gets its own replay window and rollover counter inside libsrtp.

Failure handling, per direction:

* ``unprotect_rtp``/``unprotect_rtcp`` never raise.  A packet that fails authentication, is a
  replay or too old for the replay window, is malformed, too long, or arrives after the key's
  lifetime is spent gives ``None``; the caller drops it.  ``rejected`` counts them.
* ``protect_rtp``/``protect_rtcp`` raise `SrtpError` (and nothing else) for a packet they
  will not protect: one libsrtp cannot parse, one too long for pylibsrtp's 1500-byte buffer
  (1356 bytes of RTP, 1352 of RTCP), an RTP packet whose SSRC and sequence number were
  already protected (libsrtp refuses: encrypting a second, possibly different, packet under
  the same index would reuse keystream, and the plain side is unauthenticated), or once our
  key's lifetime is spent.  The caller drops the packet.

Both directions also cap how many distinct SSRCs they keep state for (``max_ssrcs``): libsrtp
adds a stream per SSRC and never forgets one, and an unauthenticated plain-RTP peer could
otherwise grow it without bound.  On the inbound side an SSRC only counts once a packet from
it has authenticated, so packets forged without the key cannot use up the cap.

Keep one endpoint for as long as both keys are unchanged (re-INVITEs that repeat the keys
must not build a new one: a fresh outbound session restarts the rollover counter and would
protect indexes already used).  When the peer alone changes its key, `update_inbound`
replaces the inbound session; when we need a new outbound session, generate a new key with
`sbc.media.core.sdes.new_keying` and build a new endpoint.

Keys never leave this module: nothing here logs, and repr() shows only the suites.
"""

from __future__ import annotations

from pylibsrtp import Error as _LibError
from pylibsrtp import Policy, Session

from sbc.media.core.sdes import KEY_LENGTHS, MAX_LIFETIME, SrtpKeying

__all__ = ["SrtpEndpoint", "SrtpError"]

_PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}

# RFC 3711 §9.2: SRTCP's index is 31 bits, so a key protects at most 2^31 SRTCP packets.
_MAX_RTCP = 2**31

_FAILURES = (_LibError, ValueError, TypeError)


class SrtpError(Exception):
    """A packet we will not protect (see the module docstring); drop it."""


def _session(keying: SrtpKeying, ssrc_type: int, window_size: int | None) -> Session:
    profile = _PROFILES.get(keying.suite)
    if profile is None or len(keying.key) != KEY_LENGTHS[keying.suite]:
        raise ValueError(f"unusable SRTP keying for suite {keying.suite!r}")
    policy = Policy(key=keying.key, ssrc_type=ssrc_type, srtp_profile=profile)
    if window_size is not None:
        policy.window_size = window_size
    return Session(policy)


def _budgets(keying: SrtpKeying) -> tuple[int, int]:
    lifetime = MAX_LIFETIME if keying.lifetime is None else keying.lifetime
    return lifetime, min(lifetime, _MAX_RTCP)


class SrtpEndpoint:
    """The SRTP contexts for one side of a call.

    ``inbound`` is the peer's keying (from its ``a=crypto``): we unprotect with it.
    ``outbound`` is ours (from `new_keying`): we protect with it.  Raises ValueError for a
    keying of an unknown suite or a wrong key length.  ``window_size`` is the replay window
    (libsrtp: 64..32767; default 128).
    """

    __slots__ = (
        "_rx",
        "_tx",
        "_rx_rtp_left",
        "_rx_rtcp_left",
        "_tx_rtp_left",
        "_tx_rtcp_left",
        "_rx_ssrcs",
        "_tx_ssrcs",
        "_max_ssrcs",
        "_window_size",
        "inbound_suite",
        "outbound_suite",
        "rejected",
    )

    def __init__(
        self,
        inbound: SrtpKeying,
        outbound: SrtpKeying,
        *,
        max_ssrcs: int = 64,
        window_size: int | None = None,
    ) -> None:
        self._window_size = window_size
        self._max_ssrcs = max_ssrcs
        self._tx = _session(outbound, Policy.SSRC_ANY_OUTBOUND, window_size)
        self._tx_rtp_left, self._tx_rtcp_left = _budgets(outbound)
        self._tx_ssrcs: set[bytes] = set()
        self.outbound_suite = outbound.suite
        self.rejected = 0
        self._set_inbound(inbound)

    def _set_inbound(self, inbound: SrtpKeying) -> None:
        self._rx = _session(inbound, Policy.SSRC_ANY_INBOUND, self._window_size)
        self._rx_rtp_left, self._rx_rtcp_left = _budgets(inbound)
        self._rx_ssrcs: set[bytes] = set()
        self.inbound_suite = inbound.suite

    def update_inbound(self, inbound: SrtpKeying) -> None:
        """The peer changed its key (a new offer or answer): unprotect with the new one from now on."""
        self._set_inbound(inbound)

    def __repr__(self) -> str:
        return f"<SrtpEndpoint in={self.inbound_suite} out={self.outbound_suite} rejected={self.rejected}>"

    # -- receiving: never raises ---------------------------------------------------------

    def unprotect_rtp(self, data: bytes) -> bytes | None:
        """The RTP packet inside an SRTP packet from the peer, or None (dropped, counted)."""
        if data.__class__ is not bytes:
            data = bytes(data)
        ssrc = data[8:12]
        if self._rx_rtp_left <= 0 or (ssrc not in self._rx_ssrcs and len(self._rx_ssrcs) >= self._max_ssrcs):
            self.rejected += 1
            return None
        try:
            plain: bytes = self._rx.unprotect(data)
        except _FAILURES:
            self.rejected += 1
            return None
        self._rx_rtp_left -= 1
        self._rx_ssrcs.add(ssrc)
        return plain

    def unprotect_rtcp(self, data: bytes) -> bytes | None:
        """The RTCP compound packet inside an SRTCP packet from the peer, or None."""
        if data.__class__ is not bytes:
            data = bytes(data)
        ssrc = data[4:8]
        if self._rx_rtcp_left <= 0 or (ssrc not in self._rx_ssrcs and len(self._rx_ssrcs) >= self._max_ssrcs):
            self.rejected += 1
            return None
        try:
            plain: bytes = self._rx.unprotect_rtcp(data)
        except _FAILURES:
            self.rejected += 1
            return None
        self._rx_rtcp_left -= 1
        self._rx_ssrcs.add(ssrc)
        return plain

    # -- sending: raises SrtpError only ----------------------------------------------------

    def protect_rtp(self, data: bytes) -> bytes:
        """The SRTP packet for an RTP packet we send to the peer.  Raises `SrtpError`."""
        if data.__class__ is not bytes:
            data = bytes(data)
        ssrc = data[8:12]
        new = ssrc not in self._tx_ssrcs
        if new and len(self._tx_ssrcs) >= self._max_ssrcs:
            raise SrtpError("too many SSRCs")
        if self._tx_rtp_left <= 0:
            raise SrtpError("SRTP key lifetime spent")
        try:
            protected: bytes = self._tx.protect(data)
        except _FAILURES as e:
            raise SrtpError(str(e)) from None
        self._tx_rtp_left -= 1
        if new:
            self._tx_ssrcs.add(ssrc)
        return protected

    def protect_rtcp(self, data: bytes) -> bytes:
        """The SRTCP packet for an RTCP compound packet we send to the peer.  Raises `SrtpError`."""
        if data.__class__ is not bytes:
            data = bytes(data)
        ssrc = data[4:8]
        new = ssrc not in self._tx_ssrcs
        if new and len(self._tx_ssrcs) >= self._max_ssrcs:
            raise SrtpError("too many SSRCs")
        if self._tx_rtcp_left <= 0:
            raise SrtpError("SRTCP key lifetime spent")
        try:
            protected: bytes = self._tx.protect_rtcp(data)
        except _FAILURES as e:
            raise SrtpError(str(e)) from None
        self._tx_rtcp_left -= 1
        if new:
            self._tx_ssrcs.add(ssrc)
        return protected
