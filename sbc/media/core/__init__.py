"""Pure media core: RTP, DTMF and voice activity, bytes and ``now`` in, events out."""

from sbc.media.core.dtmf import DigitAudit, DigitCollector, DigitSubmit  # H1
from sbc.media.core.g711 import alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear  # H1
from sbc.media.core.goertzel import InbandDtmfDetector, dtmf_digit  # H1
from sbc.media.core.info import parse_dtmf_info  # H1
from sbc.media.core.rfc4733 import DIGITS, Keypress, TelephoneEventDecoder  # H1
from sbc.media.core.rtp import RtpPacket, build_rtp, is_rtcp, parse_rtp  # H1
from sbc.media.core.vad import VoiceActivityDetector  # H1

__all__ = [
    # H1
    "DIGITS",
    "DigitAudit",
    "DigitCollector",
    "DigitSubmit",
    "InbandDtmfDetector",
    "Keypress",
    "RtpPacket",
    "TelephoneEventDecoder",
    "VoiceActivityDetector",
    "alaw_to_linear",
    "build_rtp",
    "dtmf_digit",
    "is_rtcp",
    "linear_to_alaw",
    "linear_to_ulaw",
    "parse_dtmf_info",
    "parse_rtp",
    "ulaw_to_linear",
]
