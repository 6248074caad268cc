"""Pure media core: RTP, DTMF and voice activity, bytes and ``now`` in, events out."""

from sbc.media.core.dtmf import DigitAudit, DigitCollector, DigitSubmit  # H1
from sbc.media.core.info import parse_dtmf_info  # H1
from sbc.media.core.rfc4733 import DIGITS, Keypress, TelephoneEventDecoder  # H1
from sbc.media.core.rtp import RtpPacket, build_rtp, is_rtcp, parse_rtp  # H1

__all__ = [
    # H1
    "DIGITS",
    "DigitAudit",
    "DigitCollector",
    "DigitSubmit",
    "Keypress",
    "RtpPacket",
    "TelephoneEventDecoder",
    "build_rtp",
    "is_rtcp",
    "parse_dtmf_info",
    "parse_rtp",
]
