# -*- test-case-name: tests.integration.test_vendor_e2e -*-
"""
Each vendor's calls end to end through the real SBC (issue 6, "Done when").

:class:`VendorCallTests` -- a SIPp UAC playing the vendor's PBX sends that vendor's INVITE to
an SBC whose trunk has ``vendor = "<vendor>"``; a SIPp UAS playing the agent host checks that
the INVITE arrived in the canonical form of docs/plugins.md §3 (Request-URI/To +E.164,
X-SBC-Trunk/-Vendor/-Original-Call-ID/-Vendor-Call-ID/-Callee/-Caller, identity per
P-Asserted-Identity and Privacy -- anonymous stays anonymous --, X-SBC-Redirecting, decoded
User-to-User, the vendor headers the plugin passes and none it does not, no PBX topology),
answers, and hangs up; the PBX side checks what the vendor needs on the SBC's 200 and BYE
(Teams: FQDN Contact, Record-Route and X-MS-SBC; Genesys: Record-Route, BYE along the route
set; Chime/Connect: BYE along Record-Route to Chime's private Contact; Twilio: no non-x-
custom headers).  A WebSocket subscriber checks that ``call.started`` carries the same
canonical headers.  Each vendor runs with the PBX over UDP and over TCP.

:class:`OutboundVendorTests` -- the agent host dials out through each vendor's trunk and the
vendor's PBX (SIPp UAS) checks the SBC's INVITE and BYE (Teams: user=phone, FQDN Contact
with transport=tls, Record-Route, X-MS-SBC; Telnyx: X-Telnyx-Token / P-Charge-Info options;
Chime/Connect: +E.164 Request-URI and P-Asserted-Identity; Twilio: a copied custom header
removed).  :class:`TeamsOptionsTests` -- OPTIONS both ways on a Teams trunk.

The INVITEs are built from ``tests/vendor_messages/<vendor>-INVITE-*.txt`` at test time
(:func:`pbx_invite`): the vendor's headers, User-Agent, number formats, identity, Privacy,
Diversion / History-Info, User-to-User and ``X-`` headers are kept; the addresses and ports
SIPp must own (Request-URI host, top Via, Contact, Record-Route, IP hosts in From/To, the
SDP's addresses and ports) become SIPp keywords, and so do Call-ID, branch and tags.  Lower
Via entries and Chime's private Contact are kept as the vendor wrote them: they are the PBX
topology that must not reach the agent host.  The generic trunk has no fixture: its INVITE
is written here (national numbers, Diversion, hex User-to-User, a spoofed ``X-SBC-`` header).

No TLS: Debian's SIPp is built without it, so vendors that need TLS (Teams, Zoom, Chime,
Connect, ...) get their headers checked over UDP and TCP.  The trunk's SRTP policy is the
vendor's example one (etc/examples/), and SDES offers stay SDES offers (no media is sent).

``[calls] copy_x_headers`` is off here, so that the ``X-`` headers reaching the agent host
are exactly those the vendor plugin passes (with the default, every ``X-`` header is copied
as well).

The SIPp sides check with ``<ereg ... check_it="true">`` (``check_it_inverse`` for what must
be absent), so a wrong or missing header makes SIPp fail the call and exit non-zero; after
both exit the test also checks that the SBC logged no traceback and no ``quirk-error``, and
(Twilio) walks every header the PBX received against Twilio's custom-header rule.  SIPp's
logs go to a work directory named in the failure message (kept when ``SBC_FLOWS_KEEP`` is
set).  Only processes started here are stopped, by their pid.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from attrs import Factory, evolve, frozen
from twisted.trial.unittest import SynchronousTestCase

from . import sipp
from .harness import FQDN, REPO, RunningSbc, free_media_port, free_port

MESSAGES = REPO / "tests" / "vendor_messages"
WS_LISTEN = Path(__file__).parent / "ws_listen.py"
HOST = "127.0.0.1"

#: Line boundary in SIPp's POSIX extended regular expressions (no REG_NEWLINE there: ``^``
#: and ``$`` only match at the ends of the whole message).
EOL = "[[:cntrl:]]"
#: Any text up to the end of the line.
REST = "[^[:cntrl:]]*"

_IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}"


def ere(text: str) -> str:
    """``text`` as a literal in a POSIX extended regular expression."""
    return re.sub(r"([.\[\]()*+?{}|^$\\])", r"\\\1", text)


def header_re(name: str, value: str) -> str:
    """A whole header line ``name: value`` (value literal)."""
    return f"{EOL}{ere(name)}: *{ere(value)}{EOL}"


def header_present_re(name: str) -> str:
    return f"{EOL}{ere(name)}:"


@frozen
class Check:
    """One regular expression a received message must match (or must not: ``absent``)."""

    regexp: str
    absent: bool = False
    search_in: str = "msg"

    def xml(self) -> str:
        kind = "check_it_inverse" if self.absent else "check_it"
        # double quotes only: SIPp's own XML parser does not read single-quoted attributes
        regexp = sipp.xml_attribute(self.regexp)
        return (f'      <ereg regexp="{regexp}" search_in="{self.search_in}" '
                f'{kind}="true" assign_to="chk"/>')


def has(name: str, value: str) -> Check:
    return Check(header_re(name, value))


def lacks(name: str) -> Check:
    return Check(header_present_re(name), absent=True)


@frozen
class Vendor:
    """What one vendor's call must look like end to end."""

    name: str
    #: file in tests/vendor_messages (None: :data:`GENERIC_INVITE`)
    fixture: str | None
    #: the called number the agent host must get (+E.164)
    callee: str
    #: the caller's +E.164 number, or None for an anonymous caller
    caller: str | None
    #: the number that must not appear anywhere at the agent host when anonymous
    hidden_number: str | None = None
    caller_name: str | None = None
    vendor_call_id: str | None = None
    redirecting: str | None = None
    uui: str | None = None
    #: vendor headers the plugin passes to the agent host, with their values
    passed: tuple[tuple[str, str], ...] = ()
    #: headers that must not reach the agent host
    not_passed: tuple[str, ...] = ()
    #: literal strings of the PBX's own topology kept in the INVITE (lower Via hosts, a
    #: private Contact) that must not reach the agent host
    topology: tuple[str, ...] = ()
    #: TOML lines of [trunk.vendor_options]
    options: str = ""
    #: trunk SRTP policy (the example trunk's)
    srtp: str = "optional"
    #: keep the PBX's Contact as written (in-dialog requests must follow Record-Route)
    private_contact: bool = False
    #: checks on the SBC's 200 OK / BYE toward the PBX (beyond those made for every vendor)
    on_200: tuple[Check, ...] = Factory(tuple)
    on_bye: tuple[Check, ...] = Factory(tuple)
    #: the agent's 200 and BYE carry a custom non-x- header (Twilio's rule is checked on them)
    agent_custom_headers: bool = False


# ---------------------------------------------------------------------------- PBX side

GENERIC_INVITE = """\
INVITE sip:02079460018@203.0.113.10:5060 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.30:5060;branch=z9hG4bK-gen-1;rport
Via: SIP/2.0/UDP 10.20.30.40:5060;received=10.20.30.40;branch=z9hG4bK-gen-inner
Max-Forwards: 69
From: "Robin Park" <sip:01632960999@198.51.100.30>;tag=gen-1
To: <sip:02079460018@203.0.113.10>
Call-ID: generic-1@198.51.100.30
CSeq: 7 INVITE
Contact: <sip:01632960999@198.51.100.30:5060>
Record-Route: <sip:198.51.100.30:5060;lr>
P-Asserted-Identity: "Robin Park" <sip:01632960999@pbx.example.net>
Privacy: none
Diversion: <sip:02079460001@pbx.example.net>;reason=no-answer
User-to-User: 48656c6c6f206167656e74;encoding=hex
X-SBC-Caller: +15555550000
X-Pbx-Queue: sales
User-Agent: ExamplePBX/3.1
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE
Content-Type: application/sdp
Content-Length: 0

v=0
o=- 1001 1 IN IP4 198.51.100.31
s=-
c=IN IP4 198.51.100.31
t=0 0
m=audio 4000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
"""


def _fixture(vendor: Vendor) -> str:
    if vendor.fixture is None:
        return GENERIC_INVITE
    lines = (MESSAGES / vendor.fixture).read_text(encoding="utf-8").split("\n")
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines)


def _drop_transport(params: str) -> str:
    return re.sub(r";transport=[A-Za-z]+", "", params, flags=re.I)


def _ip_host(value: str, keyword_host: str) -> str:
    """IP-literal hosts (with their port) after ``@`` in ``value`` become SIPp keywords."""
    return re.sub(rf"@{_IPV4}(?::\d+)?", "@" + keyword_host, value)


def _contact(value: str, tparam: str = "") -> str:
    m = re.match(r"\s*(.*?)<sips?:(?:([^@>]+)@)?([^;>]+)([^>]*)>(.*)", value)
    if m is None:
        raise ValueError(f"cannot read Contact {value!r}")
    display, user, _host, params, rest = m.groups()
    user_part = f"{user}@" if user else ""
    return f"{display}<sip:{user_part}[local_ip]:[local_port]{_drop_transport(params)}{tparam}>{rest}"


def _record_route(value: str, tparam: str = "") -> str:
    m = re.match(r"\s*<sips?:([^;>]+)([^>]*)>(.*)", value)
    if m is None:
        raise ValueError(f"cannot read Record-Route {value!r}")
    _host, params, rest = m.groups()
    return f"<sip:[local_ip]:[local_port]{_drop_transport(params)}{tparam}>{rest}"


def _sdp(body: str, media_port: int) -> str:
    out = []
    for line in body.strip("\n").split("\n"):
        if line.startswith("o="):
            line = re.sub(rf"IN IP4 {_IPV4}$", "IN IP[local_ip_type] [local_ip]", line)
        elif line.startswith("c="):
            line = "c=IN IP[media_ip_type] [media_ip]"
        elif line.startswith("m=audio "):
            line = re.sub(r"^m=audio \d+", "m=audio [media_port]", line)
        elif line.startswith("a=rtcp:"):
            line = f"a=rtcp:{media_port + 1}"  # SIPp takes [media_port] on m= lines only
        out.append(line)
    return "\n".join(out) + "\n"


@frozen
class PbxInvite:
    """The vendor's INVITE as SIPp sends it, and what the PBX's ACK repeats."""

    text: str
    from_line: str
    to_line: str
    cseq: int
    late_offer: bool
    #: the hosts of the vendor's top Via, Contact and Record-Route that SIPp's address replaced
    replaced_hosts: tuple[str, ...] = ()


def pbx_invite(vendor: Vendor, media_port: int = 6000, tcp: bool = False) -> PbxInvite:
    """The vendor's INVITE with SIPp keywords for what SIPp owns (see the module doc);
    ``media_port``: SIPp's ``-mp`` (for an ``a=rtcp`` line); ``tcp``: the PBX sends over
    TCP (its Contact and Record-Route say ``transport=tcp``)."""
    tparam = ";transport=tcp" if tcp else ""
    text = _fixture(vendor).replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    m = re.match(r"INVITE (sips?):([^@;>]+)@([^;>?]+)(\S*) SIP/2\.0$", lines[0])
    if m is None:
        raise ValueError(f"{vendor.name}: cannot read {lines[0]!r}")
    _scheme, user, _host, params = m.groups()
    out = [f"INVITE sip:{user}@[remote_ip]:[remote_port]{_drop_transport(params)} SIP/2.0"]
    seen_via = False
    from_line = to_line = ""
    cseq = 1
    replaced: list[str] = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        value = value.strip()
        if key == "via":
            if not seen_via:
                replaced.append(value.split()[1].split(";")[0].rsplit(":", 1)[0])
                line = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]"
                seen_via = True
        elif key == "from":
            value = re.sub(r";tag=[^;]*", "", _ip_host(value, "[local_ip]:[local_port]"))
            line = from_line = f"From: {value};tag=[pid]SIPpTag00[call_number]"
        elif key == "to":
            line = to_line = f"To: {_ip_host(value, '[remote_ip]:[remote_port]')}"
        elif key == "call-id":
            line = "Call-ID: [call_id]"
        elif key == "cseq":
            cseq = int(value.split()[0])
        elif key == "contact":
            if not vendor.private_contact:
                replaced.append(re.sub(r".*<sips?:(?:[^@>]+@)?([^:;>]+).*", r"\1", value))
                line = f"Contact: {_contact(value, tparam)}"
        elif key == "record-route":
            replaced.append(re.sub(r".*<sips?:([^:;>]+).*", r"\1", value))
            line = f"Record-Route: {_record_route(value, tparam)}"
        elif key == "content-length":
            line = "Content-Length: [len]"
        out.append(line)
    if "[" in "".join(lines[1:]) or "]]>" in body:
        raise ValueError(f"{vendor.name}: the fixture would be read as SIPp keywords")
    late = not body.strip()
    if late:
        out = [ln for ln in out if not ln.lower().startswith("content-type")]
    return PbxInvite("\n".join(out) + "\n\n" + ("" if late else _sdp(body, media_port)), from_line, to_line, cseq, late,
                     tuple(dict.fromkeys(replaced)))


#: The PBX's answer in its ACK when it sent no offer (Genesys' late offer).
ACK_ANSWER = sipp.sdp("pbx", (0, 101), ("a=sendrecv",), telephone_event=101, origin="2 2", session="pbx")


def pbx_scenario(vendor: Vendor, invite: PbxInvite) -> str:
    """The PBX (SIPp UAC): the vendor's INVITE, checks on the SBC's 200 and on its BYE."""
    # Never the agent host's topology toward the PBX (its Contact user is "agentsecret").
    common = (Check("agentsecret", absent=True),)
    on_200 = "\n".join(c.xml() for c in (*common, *vendor.on_200))
    on_bye = "\n".join(c.xml() for c in (*common, *vendor.on_bye))
    head, _, body = invite.text.partition("\n\n")
    if invite.late_offer:
        ack = sipp.uac_ack(invite.from_line, invite.cseq, to=invite.to_line + "[peer_tag_param]",
                           content_type="application/sdp", body=ACK_ANSWER, indent="")
    else:
        ack = sipp.uac_ack(invite.from_line, invite.cseq, to=invite.to_line + "[peer_tag_param]", body="",
                           indent="")
    return sipp.scenario(f"{vendor.name} PBX", (
        sipp.send(head.split("\n"), body, retrans=True, indent="")
        + sipp.expect_responses(100, 180, 183)
        + f"""  <recv response="200" rrs="true">
    <action>
{on_200}
    </action>
  </recv>
"""
        + ack
        + f"""  <recv request="BYE">
    <action>
{on_bye}
    </action>
  </recv>
"""
        + sipp.uas_bye_answer(indent="")
        + '  <Reference variables="chk"/>\n'))


# ---------------------------------------------------------------------------- agent side

def agent_checks(vendor: Vendor, *, call_id: str, trunk: str, pbx_port: int) -> list[Check]:
    """What the INVITE at the agent host must (not) contain: the canonical form."""
    callee = ere(vendor.callee)
    checks = [
        Check(f"^INVITE sip:{callee}@"),
        Check(f"{EOL}To:{REST}<sip:{callee}@"),
        has("X-SBC-Trunk", trunk),
        has("X-SBC-Vendor", vendor.name),
        has("X-SBC-Original-Call-ID", call_id),
        has("X-SBC-Callee", vendor.callee),
        # the PBX's Call-ID is only in X-SBC-Original-Call-ID
        Check(f"{EOL}(Call-ID|i): *{ere(call_id)}", absent=True),
        # nothing of the PBX's topology: its SIPp address, lower Vias, private Contact
        Check(ere(f"{HOST}:{pbx_port}"), absent=True),
        *(Check(ere(t), absent=True) for t in vendor.topology),
    ]
    if vendor.caller is None:
        checks += [
            Check(f"{EOL}From:{REST}<sip:anonymous@"),
            has("P-Asserted-Identity", "<sip:anonymous@anonymous.invalid>"),
            has("Privacy", "id"),
            lacks("X-SBC-Caller"),
        ]
        if vendor.hidden_number:
            checks.append(Check(ere(vendor.hidden_number.lstrip("+")), absent=True))
    else:
        name = f'"{vendor.caller_name}" ' if vendor.caller_name else ""
        checks += [
            Check(f"{EOL}From:{REST}<sip:{ere(vendor.caller)}@"),
            has("X-SBC-Caller", vendor.caller),
            has("P-Asserted-Identity", f"{name}<sip:{vendor.caller}@{FQDN};user=phone>"),
            has("Privacy", "none"),
        ]
    for header, value in (("X-SBC-Vendor-Call-ID", vendor.vendor_call_id),
                          ("X-SBC-Redirecting", vendor.redirecting),
                          ("X-SBC-UUI", vendor.uui)):
        checks.append(has(header, value) if value is not None else lacks(header))
    checks += [has(name, value) for name, value in vendor.passed]
    checks += [lacks(name) for name in vendor.not_passed]
    # incoming X-SBC-* never survive (the generic INVITE spoofs X-SBC-Caller +15555550000)
    checks.append(Check("15555550000", absent=True))
    return checks


AGENT_SDP = sipp.sdp("agent", (0, 101), ("a=sendrecv",), telephone_event=101, origin="1 1", session="agent")
AGENT_CONTACT = "Contact: <sip:agentsecret@[local_ip]:[local_port]>"


def agent_scenario(vendor: Vendor, checks: list[Check]) -> str:
    """The agent host (SIPp UAS): checks the INVITE, answers 200, then hangs up."""
    custom = ["P-Agent-Note: wrap-up done", "X-Agent-Disposition: sale"] if vendor.agent_custom_headers else []
    on_invite = "\n".join(c.xml() for c in checks)
    bye = ["BYE [next_url] SIP/2.0", sipp.VIA, "[routes]", "From:[$to];tag=[pid]SIPpTag01[call_number]",
           "To:[$from]", "Call-ID: [call_id]", "CSeq: 1 BYE", "Max-Forwards: 70", *custom, "Content-Length: 0"]
    return sipp.scenario(f"{vendor.name} agent host", (
        f"""  <recv request="INVITE" crlf="true" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to"/>
{on_invite}
    </action>
  </recv>
"""
        + sipp.uas_answer("200 OK", AGENT_SDP, headers=(AGENT_CONTACT, *custom), indent="")
        + '  <recv request="ACK" crlf="true"/>\n  <pause milliseconds="300"/>\n'
        + sipp.send(bye, retrans=True, indent="")
        + '  <recv response="200" crlf="true"/>\n'
        + '  <Reference variables="chk,from,to"/>\n'))


# ---------------------------------------------------------------------------- the vendors

def _route_to_pbx(pbx_port: int) -> str:
    return f"{EOL}Route: *<sip:{ere(HOST)}:{pbx_port};lr"


#: Twilio accepts these non-``x-`` custom headers (VENDORS.md §5); everything else it gets
#: must be a standard SIP header.
TWILIO_ALLOWED = frozenset({"user-to-user", "remote-party-id", "p-preferred-identity", "p-called-party-id"})
#: Standard headers (RFC 3261 and the extensions the SBC uses), written down here rather
#: than taken from the plugin under test.
STANDARD_HEADERS = frozenset(h.lower() for h in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Content-Type", "Content-Length",
    "Content-Disposition", "Record-Route", "Route", "Allow", "Supported", "Require", "Server",
    "User-Agent", "Session-Expires", "Min-SE", "Reason", "Accept", "Allow-Events", "RSeq", "Date",
    "Warning", "Retry-After", "Privacy", "P-Asserted-Identity", "Expires", "Timestamp", "Organization",
))

SBC_RR = f"{EOL}Record-Route: *<sip:{ere(FQDN)}:"


def vendors(pbx_port: int) -> dict[str, Vendor]:
    route = Check(_route_to_pbx(pbx_port))
    return {v.name: v for v in (
        Vendor(
            "teams", "teams-INVITE-in-1.txt", callee="+14255550100", caller="+12065550123",
            passed=(("X-MS-UserLocation", "internal"), ("X-MS-MediaPath", "sbc1.contoso.com")),
            options='x_ms_sbc = "AcmeE2E/SBC-test/9.9"\n', srtp="required",
            on_200=(
                Check(f"{EOL}Contact:{REST}<sip:([^@>]*@)?{ere(FQDN)}[:;>]"),
                Check(f"{EOL}Contact:{REST}transport=tls"),
                has("X-MS-SBC", "AcmeE2E/SBC-test/9.9"),
                Check(SBC_RR),
            ),
            on_bye=(has("X-MS-SBC", "AcmeE2E/SBC-test/9.9"), lacks("Replaces")),
        ),
        Vendor(
            "webex", "webex-INVITE-in-1.txt", callee="+14085550155", caller="+14085550199",
            caller_name="Pat Lee", vendor_call_id="1857962395-0303829486-2325384221-0775943771",
            redirecting="+14085550100",
            passed=(("Cisco-Guid", "1857962395-0303829486-2325384221-0775943771"),),
            options="plus_e164 = true\n",
        ),
        Vendor(
            "ringcentral", "ringcentral-INVITE-in-1.txt", callee="+16505550142", caller="+14155550177",
            caller_name="Sam Ortiz",
        ),
        Vendor(
            "zoom", "zoom-INVITE-in-1.txt", callee="+13125550188", caller="+16465550133",
            caller_name="Jordan Smith", vendor_call_id="0a8c5e7f2b4d6e8f",
            passed=(("X-Trace-ID", "0a8c5e7f2b4d6e8f"),), srtp="required",
        ),
        Vendor(
            "twilio", "twilio-INVITE-in-1.txt", callee="+15035550164", caller="+14155550123",
            vendor_call_id="CA8f2e4c6a0b1d3e5f7a9c8b6d4e2f0a1c", uui="ticket=48213",
            passed=(("X-Twilio-AccountSid", "AC0123456789abcdef0123456789abcdef"),
                    ("X-Twilio-CallSid", "CA8f2e4c6a0b1d3e5f7a9c8b6d4e2f0a1c"),
                    ("X-Twilio-VerStat", "TN-Validation-Passed-A"),
                    ("x-customer-tier", "gold")),
            agent_custom_headers=True,
            on_200=(Check(f"{EOL}P-Agent-Note:", absent=True),),
            on_bye=(Check(f"{EOL}P-Agent-Note:", absent=True),),
        ),
        Vendor(
            "telnyx", "telnyx-INVITE-in-1.txt", callee="+18005550136", caller="+13475550190",
            vendor_call_id="6466f69e-1dc8-4e81-980a-f33356672e32",
            passed=(("X-call_leg_id", "8e28a724-459b-4a83-8239-c75c66177f7c"),
                    ("X-call_session_id", "6466f69e-1dc8-4e81-980a-f33356672e32")),
            srtp="off",
        ),
        Vendor(
            "genesys", "genesys-INVITE-in-1.txt", callee="+18885550172", caller="+17735550146",
            caller_name="Alex Kim", vendor_call_id="083adbcd-f580-41af-83dd-eefbf5f60155",
            passed=(("x-inin-cnv", "083adbcd-f580-41af-83dd-eefbf5f60155"), ("x-inin-crn", "0a1f2e3d4c5b6a79")),
            on_200=(Check(SBC_RR),),
            on_bye=(route,),
        ),
        Vendor(
            "nice", "nice-INVITE-in-1.txt", callee="+16175550119", caller="+15085550163",
            caller_name="+15085550163",
        ),
        Vendor(
            "chime", "chime-INVITE-in-3.txt", callee="+16185558387", caller="+18155558245",
            redirecting="+18155550100", uui="amazon_chime_call_flow",
            passed=(("X-VoiceConnector-ID", "dr3rbaar376u5r4ntcnlq4"),
                    ("X-Amzn-TargetArn", "arn:aws:chime:us-east-1:111122223333:vc/dr3rbaar376u5r4ntcnlq4"),
                    ("X-RequestorEmail", "alice@example.com")),
            not_passed=("X-SMA-Max-Forwards",),
            topology=("10.0.61.12",), srtp="required", private_contact=True,
            # in-dialog requests go along Chime's Record-Route, to its private Contact
            on_bye=(Check("^BYE sip:10\\.0\\.61\\.12:5060;alias="), route),
        ),
        Vendor(
            "connect", "connect-INVITE-in-1.txt", callee="+16185558387", caller="+12065550155",
            vendor_call_id="b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            uui=('{"contactId":"b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d","customerPhoneNumber":"+12065550155",'
                 '"initialContactId":"0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a","initiationMethod":"INBOUND",'
                 '"queueName":"BasicQueue","systemPhoneNumber":"+18005550199"}'),
            passed=(("X-VoiceConnector-ID", "dr3rbaar376u5r4ntcnlq4"),
                    ("X-Amzn-ConnectContactId", "b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
                    ("X-Amzn-ConnectInitialContactId", "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"),
                    ("X-Amzn-SourceAccount", "111122223333"),
                    ("X-Amzn-SourceArn",
                     "arn:aws:connect:us-east-1:111122223333:instance/4f3e2d1c-0b9a-8f7e-6d5c-4b3a2f1e0d9c"),
                    ("X-Amzn-TargetArn", "arn:aws:chime:us-east-1:111122223333:vc/dr3rbaar376u5r4ntcnlq4")),
            topology=("10.0.52.88",), srtp="required", private_contact=True,
            on_bye=(Check("^BYE sip:10\\.0\\.52\\.88:5060;alias="), route),
        ),
        Vendor(
            "generic", None, callee="+442079460018", caller="+441632960999", caller_name="Robin Park",
            redirecting="+442079460001", uui="Hello agent",
            not_passed=("X-Pbx-Queue",),
            topology=("10.20.30.40",),
            options='country_code = "44"\n',
        ),
    )}


#: A second Teams call: forwarded in Teams (History-Info) from a caller who withheld the number.
TEAMS_ANONYMOUS = Vendor(
    "teams", "teams-INVITE-in-2.txt", callee="+14255550111", caller=None, hidden_number="+442071838750",
    redirecting="+14255550100", passed=(("X-MS-UserLocation", "external"),), srtp="required",
    on_200=(has("X-MS-SBC", "sbc-project/sbc/0.1"),), on_bye=(has("X-MS-SBC", "sbc-project/sbc/0.1"),),
)


# ---------------------------------------------------------------------------- running a call

def received_messages(log: Path) -> list[str]:
    """The messages a SIPp process received, from its ``-message_file``."""
    text = log.read_text(errors="replace") if log.exists() else ""
    out = []
    for block in re.split(r"\n-{20,}[^\n]*\n", "\n" + text):
        head, _, rest = block.partition("\n")
        if "message received" in head:
            out.append(rest.lstrip("\n"))
    return out


def header_names(message: str) -> list[str]:
    head = message.replace("\r\n", "\n").split("\n\n", 1)[0]
    return [line.split(":", 1)[0].strip() for line in head.split("\n")[1:] if ":" in line and line[:1] not in " \t"]


def assertTwilioHeaders(case: SynchronousTestCase, received: list[str], detail: str) -> None:
    """Every header of every message toward Twilio is an ``x-`` header, a standard one or
    one of Twilio's allowed custom headers."""
    for message in received:
        bad = [n for n in header_names(message)
               if not (n.lower().startswith("x-") or n.lower() in STANDARD_HEADERS or n.lower() in TWILIO_ALLOWED)]
        case.assertEqual(bad, [], f"non-x- custom headers toward Twilio in:\n{message}" + detail)


class VendorCallTests(SynchronousTestCase):
    """One vendor's call end to end (see the module documentation)."""

    def run_call(self, pick: Callable[[int], Vendor], transport: str = "u1") -> None:
        """One call of the vendor ``pick(pbx_port)`` gives (the PBX's SIPp port is in its
        checks), the PBX side over ``transport`` (SIPp's "u1" or "t1"; the agent host is
        always on UDP)."""
        sipp_exe = sipp.require_sipp()
        pbx_port = free_port()
        agent_port = free_port()
        vendor = pick(pbx_port)
        trunk = f"{vendor.name}-e2e"
        trunk_toml = (
            f'[[trunk]]\nname = "{trunk}"\nvendor = "{vendor.name}"\n'
            f'allow = ["127.0.0.1/32", "::1/128"]\nagent_uri = "sip:{{user}}@{HOST}:{agent_port}"\n'
            f'srtp = "{vendor.srtp}"\n'
            + (f"\n[trunk.vendor_options]\n{vendor.options}" if vendor.options else "")
        )
        sbc = RunningSbc(trunk_toml=trunk_toml, extra_toml="\n[calls]\ncopy_x_headers = false\n").start()
        self.addCleanup(sbc.stop)
        work = Path(tempfile.mkdtemp(prefix=f"vendor-{vendor.name}-"))
        call_id = f"e2e-{vendor.name}-{secrets.token_hex(4)}-1"
        pbx_media = free_media_port()
        invite = pbx_invite(vendor, pbx_media, tcp=transport == "t1")
        (work / "pbx.xml").write_text(pbx_scenario(vendor, invite))
        (work / "agent.xml").write_text(
            agent_scenario(vendor, agent_checks(vendor, call_id=call_id, trunk=trunk, pbx_port=pbx_port)))

        # A WebSocket subscriber to /v1/events: call.started must carry the same canonical
        # headers as the INVITE the agent host gets.
        events_file = work / "events.jsonl"
        ws = subprocess.Popen(
            [sys.executable, str(WS_LISTEN), f"ws://127.0.0.1:{sbc.admin_port}/v1/events", str(events_file), "40"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: ws.poll() is None and ws.kill())
        line = ws.stdout.readline() if ws.stdout is not None else ""
        if line.strip() != "connected":
            self.fail(f"WebSocket client: {line}{ws.stdout.read() if ws.stdout else ''}")

        agent = sipp.start_logged(self, sipp_exe, work, "agent",
                                  ["-p", str(agent_port), "-mp", str(free_media_port()), "-t", "u1"], listen_port=agent_port)
        pbx = sipp.start_logged(
            self, sipp_exe, work, "pbx",
            ["-p", str(pbx_port), "-mp", str(pbx_media), "-s", vendor.callee, "-t", transport,
             "-cid_str", call_id.rsplit("-", 1)[0] + "-%u", "-recv_timeout", "15000"],
            remote=f"{HOST}:{sbc.sip_port}")
        sipp.wait_all((pbx, 60), (agent, 15))
        deadline = time.monotonic() + 10
        events: list[dict] = []
        while time.monotonic() < deadline:
            events = ([json.loads(ln) for ln in events_file.read_text().splitlines() if ln.strip()]
                      if events_file.exists() else [])
            if any(e.get("type") == "call.ended" for e in events):
                break
            time.sleep(0.1)
        ws.kill()
        ws.wait()
        sbc.stop()
        log = sbc.log_text()
        detail = (f"\n== {vendor.name} ({vendor.fixture or 'generic INVITE'}) over "
                  f"{'TCP' if transport == 't1' else 'UDP'}; work dir {work}\n"
                  + sipp.side_report(work, "pbx", "PBX", pbx) + sipp.side_report(work, "agent", "agent", agent)
                  + f"== SBC log\n{log[-4000:]}")
        self.assertEqual(pbx.returncode, 0, "PBX-side SIPp failed" + detail)
        self.assertEqual(agent.returncode, 0, "agent-side SIPp failed" + detail)
        self.assertNotIn("Traceback", log, "SBC logged a traceback" + detail)
        self.assertNotIn("quirk-error", log, "a vendor plugin hook failed" + detail)
        self.assertNotIn("internal-error", log, "SBC logged an internal error" + detail)
        # The vendor's own signalling addresses (top Via, Contact, Record-Route of the
        # original message) nowhere at the agent host -- except inside the Diversion and
        # History-Info headers, which [calls] copy_headers copies as the PBX wrote them.
        invites = [m for m in received_messages(work / "agent_messages.log") if m.startswith("INVITE ")]
        self.assertEqual(len(invites), 1, detail)
        lines = [ln for ln in invites[0].split("\n")
                 if ln.split(":", 1)[0].strip().lower() not in ("diversion", "history-info")]
        for host in invite.replaced_hosts:
            leaked = [ln for ln in lines if host in ln]
            self.assertEqual(leaked, [], f"the PBX's address {host} reached the agent host" + detail)
        # call.started: the canonical caller/callee and the same canonical header list
        started = [e for e in events if e.get("type") == "call.started"]
        self.assertEqual(len(started), 1, f"call.started events: {events}" + detail)
        event = started[0]
        self.assertEqual((event["trunk"], event["vendor"], event["direction"], event["callee"], event["caller"]),
                         (trunk, vendor.name, "inbound", vendor.callee, vendor.caller or ""), detail)
        at_agent = [(n.strip(), v.strip()) for n, _, v in
                    (ln.partition(":") for ln in invites[0].replace("\r\n", "\n").split("\n\n")[0].split("\n")[1:])]
        in_event = [(h["name"], h["value"]) for h in event["headers"]]
        canonical = [(n, v) for n, v in at_agent if n.lower().startswith("x-sbc-")
                     or n.lower() in ("p-asserted-identity", "privacy")]
        self.assertEqual([h for h in in_event if h in canonical], canonical,
                         f"call.started headers {in_event}" + detail)
        for header in in_event:
            self.assertIn(header, at_agent, "a call.started header the agent host did not get" + detail)
        received = received_messages(work / "pbx_messages.log")
        self.assertTrue(any(m.startswith("BYE ") for m in received), "the PBX got no BYE" + detail)
        if vendor.name == "twilio":
            assertTwilioHeaders(self, received, detail)
        if not os.environ.get("SBC_FLOWS_KEEP"):
            shutil.rmtree(work, ignore_errors=True)  # kept when the call failed


def _vendor_test(name: str, transport: str):  # type: ignore[no-untyped-def]
    def test(self: VendorCallTests) -> None:
        self.run_call(lambda pbx_port: vendors(pbx_port)[name], transport)

    over = "TCP" if transport == "t1" else "UDP"
    test.__name__ = f"test_{name}" + ("_tcp" if transport == "t1" else "")
    test.__doc__ = (f"A {name} INVITE over {over} reaches the agent host canonical; the {name} PBX "
                    "gets what it needs.")
    return test


VENDORS = ("teams", "webex", "ringcentral", "zoom", "twilio", "telnyx", "genesys", "nice", "chime", "connect",
           "generic")
for _name in VENDORS:
    for _transport in ("u1", "t1"):
        _test = _vendor_test(_name, _transport)
        setattr(VendorCallTests, _test.__name__, _test)


def test_teams_forwarded_anonymous(self: VendorCallTests) -> None:
    """A Teams call forwarded in Teams from a withheld number: the agent host gets an
    anonymous caller (the number nowhere), the redirecting number from History-Info."""
    self.run_call(lambda pbx_port: TEAMS_ANONYMOUS)


VendorCallTests.test_teams_forwarded_anonymous = test_teams_forwarded_anonymous  # type: ignore[attr-defined]


def test_teams_srtp_suite(self: VendorCallTests) -> None:
    """Teams offers AES_CM_128_HMAC_SHA1_32 as crypto tag 0 before AES_CM_128_HMAC_SHA1_80 as
    tag 1; Microsoft requires _80, so the SBC's answer must be tag 1 with _80 (VENDORS.md §1,
    Media)."""
    def pick(pbx_port: int) -> Vendor:
        teams = vendors(pbx_port)["teams"]
        return evolve(teams, on_200=(
            Check("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:", search_in="body"),
            Check("AES_CM_128_HMAC_SHA1_32", absent=True, search_in="body"),
        ))
    self.run_call(pick)


VendorCallTests.test_teams_srtp_suite = test_teams_srtp_suite  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- Teams OPTIONS

class TeamsOptionsTests(SynchronousTestCase):
    """OPTIONS both ways on a Teams trunk: Microsoft's ping gets a 200 with the SBC's FQDN in
    Contact and X-MS-SBC; the SBC's own pings toward the Teams peer carry the same."""

    def start_sbc(self, peer_port: int | None = None) -> RunningSbc:
        peer = (f'peer_uri = "sip:{HOST}:{peer_port}"\noptions_interval = 0.5\n' if peer_port else "")
        sbc = RunningSbc(trunk_toml=(
            '[[trunk]]\nname = "teams-e2e"\nvendor = "teams"\nallow = ["127.0.0.1/32", "::1/128"]\n'
            f'agent_uri = "sip:{{user}}@{HOST}:{free_port()}"\n{peer}')).start()
        self.addCleanup(sbc.stop)
        return sbc

    def assertTeamsHeaders(self, message: str, sbc: RunningSbc) -> None:
        """Contact with the SBC's FQDN (never an IP) and X-MS-SBC: Vendor/Model/Version."""
        self.assertRegex(message, rf"\r\nContact: *<sip:([^@>]*@)?{re.escape(FQDN)}[:;>]",
                         message + sbc.log_text()[-2000:])
        self.assertRegex(message, r"\r\nX-MS-SBC: *[^/\r\n]+/[^/\r\n]+/[^/\r\n]+\r\n", message)

    def test_microsofts_ping_answered(self) -> None:
        """docs/vendors.md: Contact with the FQDN and X-MS-SBC on every response toward
        Teams, "the 200 OK to Microsoft's OPTIONS included".  (Over UDP here: over TLS the
        Contact would also say transport=tls.)"""
        from .harness import udp_exchange

        sbc = self.start_sbc()
        lines = (MESSAGES / "teams-OPTIONS-in-1.txt").read_text(encoding="utf-8").split("\n")
        text = "\r\n".join(ln for ln in lines if not ln.startswith("#")).strip() + "\r\n\r\n"
        text = re.sub(r"^OPTIONS \S+", f"OPTIONS sip:{FQDN}:{sbc.sip_port}", text)
        text = text.replace("SIP/2.0/TLS 52.114.16.74:5061", f"SIP/2.0/UDP {HOST}:9")
        reply = udp_exchange(text.encode(), sbc.sip_port, timeout=5)
        self.assertIsNotNone(reply, "no answer to Microsoft's OPTIONS")
        assert reply is not None
        answer = reply.decode("utf-8", "replace")
        self.assertTrue(answer.startswith("SIP/2.0 200 "), answer)
        self.assertTeamsHeaders(answer, sbc)

    def test_pings_toward_teams(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind((HOST, 0))
            peer.settimeout(15)
            sbc = self.start_sbc(peer.getsockname()[1])
            try:
                data, _ = peer.recvfrom(65536)
            except socket.timeout:
                self.fail("no OPTIONS toward the Teams peer\n" + sbc.log_text()[-3000:])
            ping = data.decode("utf-8", "replace")
            self.assertTrue(ping.startswith("OPTIONS "), ping)
            self.assertTeamsHeaders(ping, sbc)
            # the plugin's Contact toward Teams: the TLS port, transport=tls (even on this UDP ping)
            self.assertRegex(ping, rf"\r\nContact: *<sip:{re.escape(FQDN)}:5061;transport=tls>\r\n")


# ---------------------------------------------------------------------------- calls toward the vendor

@frozen
class Outbound:
    """The agent host dials out through a vendor's trunk: what the vendor must get."""

    vendor: str
    #: the Request-URI user the agent host dials
    dialled: str
    #: checks on the SBC's INVITE and BYE toward the vendor's PBX
    on_invite: tuple[Check, ...] = ()
    on_bye: tuple[Check, ...] = ()
    options: str = ""
    srtp: str = "optional"
    #: more configuration after the trunk (other tables)
    extra_toml: str = ""
    #: more header lines in the agent host's INVITE
    agent_headers: str = ""
    #: the PBX's Contact in its 200 (Chime: a private address, reached along Record-Route)
    pbx_contact: str = "<sip:pbx@[local_ip]:[local_port]>"
    #: the PBX's 200 carries its own Record-Route entry
    record_route: bool = False


#: Every trunk dials +E.164 and digits-only international numbers (Chime's test dials those).
DIAL = "dial = ['\\+?[1-9][0-9]{6,14}']\n"
PBX_CRYPTO_KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"


def outbound_pbx_scenario(out: Outbound) -> str:
    """The vendor's PBX answering the SBC's INVITE (SIPp UAS): checks it, answers 200 (SDES
    when offered SRTP, echoing the offered _80 tag), then gets the SBC's BYE."""
    on_invite = "\n".join(c.xml() for c in (Check("agentsecret", absent=True), *out.on_invite))
    on_bye = "\n".join(c.xml() for c in (Check("agentsecret", absent=True), *out.on_bye))
    rr = ["[last_Record-Route:]", "Record-Route: <sip:[local_ip]:[local_port];lr>"] if out.record_route else []

    def answer(profile: str, crypto: tuple[str, ...]) -> str:
        body = sipp.sdp("pbx", (0, 101), (*crypto, "a=sendrecv"), telephone_event=101, origin="1 1",
                        session="pbx", profile=profile)
        return sipp.uas_answer("200 OK", body, headers=(*rr, f"Contact: {out.pbx_contact}"), indent="")

    # Each branch waits for the ACK right after its 200: a <nop> between them could be the
    # step SIPp is at when a fast ACK arrives, which it takes as unexpected.
    plain = answer("RTP/AVP", ())
    sdes = answer("RTP/SAVP", (f"a=crypto:[$tag] AES_CM_128_HMAC_SHA1_80 inline:{PBX_CRYPTO_KEY}",))
    return sipp.scenario(f"{out.vendor} PBX answering", (
        f"""  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="a=crypto:([0-9]+) AES_CM_128_HMAC_SHA1_80 " search_in="body" assign_to="savp,tag"/>
{on_invite}
    </action>
  </recv>
  <nop next="srtp" test="savp"/>
{plain}  <recv request="ACK" crlf="true" next="answered"/>
  <label id="srtp"/>
{sdes}  <recv request="ACK" crlf="true"/>
  <label id="answered"/>
  <recv request="BYE">
    <action>
{on_bye}
    </action>
  </recv>
"""
        + sipp.uas_bye_answer(indent="")
        + '  <Reference variables="chk,savp,tag"/>\n'))


def outbound_agent_scenario(out: Outbound) -> str:
    """The agent host dialling out (SIPp UAC): INVITE, ACK, then it hangs up."""
    caller = sipp.uac_from('"Agent"', "+13125550100")
    to = f"To: <{sipp.SERVICE_URI}>[peer_tag_param]"
    return sipp.scenario(f"agent host dialling {out.vendor}", (
        sipp.uac_invite(caller, "agentsecret", AGENT_SDP, headers=out.agent_headers.splitlines(), indent="")
        + sipp.expect_responses(100, 180, 183)
        + '  <recv response="200" rrs="true"/>\n'
        + sipp.uac_ack(caller, 1, to=to, indent="")
        + '  <pause milliseconds="300"/>\n'
        + sipp.uac_bye(caller, 2, to=to, indent="")
        + '  <recv response="200"/>\n'))


def outbound_calls(pbx_port: int) -> dict[str, Outbound]:
    route = Check(_route_to_pbx(pbx_port))
    e164 = "[[:cntrl:]]Contact:" + REST + "<sip:([^@>]*@)?" + ere(FQDN)
    return {o.vendor: o for o in (
        Outbound(
            "teams", "+14255550100", srtp="required", options='x_ms_sbc = "AcmeE2E/SBC-test/9.9"\n',
            on_invite=(
                Check("^INVITE sip:\\+14255550100@" + ere(HOST) + f":{pbx_port}[^ ]*;user=phone"),
                Check(f"{EOL}Contact:{REST}<sip:([^@>]*@)?{ere(FQDN)}:5061;transport=tls>"),
                has("X-MS-SBC", "AcmeE2E/SBC-test/9.9"),
                Check(SBC_RR),
                lacks("Replaces"),
                Check(f"{EOL}From:{REST}@{ere(FQDN)}"),
            ),
            on_bye=(has("X-MS-SBC", "AcmeE2E/SBC-test/9.9"),),
        ),
        Outbound("webex", "+14085550155", on_invite=(Check(e164),)),
        Outbound("ringcentral", "+16505550142", on_invite=(Check(e164),)),
        Outbound("zoom", "+13125550188", srtp="required", on_invite=(Check(e164),)),
        Outbound(
            "twilio", "+15035550164",
            # the core copies P-Agent-Note; Twilio's rule must take it out again
            extra_toml='\n[calls]\ncopy_headers = ["P-Asserted-Identity", "Privacy", "User-to-User", "P-Agent-Note"]\n',
            agent_headers="P-Agent-Note: outbound campaign 7\nUser-to-User: 6f7264657231;encoding=hex\n",
            on_invite=(Check(f"{EOL}P-Agent-Note:", absent=True),
                       has("User-to-User", "6f7264657231;encoding=hex")),
        ),
        Outbound(
            "telnyx", "+18005550136",
            options='telnyx_token = "tok-e2e-5150"\np_charge_info = "+13125550100"\n',
            on_invite=(has("X-Telnyx-Token", "tok-e2e-5150"),
                       has("P-Charge-Info", "<sip:+13125550100@sip.telnyx.com>")),
        ),
        Outbound("genesys", "+18885550172", record_route=True, on_invite=(Check(SBC_RR),), on_bye=(route,)),
        Outbound("nice", "+16175550119", on_invite=(Check(e164),)),
        Outbound(
            "chime", "18155558245", srtp="required", record_route=True,
            pbx_contact="<sip:10.0.58.47:5060;alias=10.0.58.47~5060~1>",
            agent_headers="P-Asserted-Identity: <sip:16185558387@agent.invalid>\n",
            on_invite=(Check("^INVITE sip:\\+18155558245@"),
                       Check(f"{EOL}P-Asserted-Identity:{REST}<sip:\\+16185558387@")),
            on_bye=(Check("^BYE sip:10\\.0\\.58\\.47:5060;alias="), route),
        ),
        Outbound(
            "connect", "18155558245", srtp="required", record_route=True,
            pbx_contact="<sip:10.0.52.88:5060;alias=10.0.52.88~5060~2>",
            on_invite=(Check("^INVITE sip:\\+18155558245@"),),
            on_bye=(Check("^BYE sip:10\\.0\\.52\\.88:5060;alias="), route),
        ),
        Outbound("generic", "+442079460018", on_invite=(Check(e164),)),
    )}


class OutboundVendorTests(SynchronousTestCase):
    """The agent host dials out through each vendor's trunk: the SBC's INVITE and BYE toward
    the vendor carry what it needs (Teams: FQDN Contact and Record-Route, X-MS-SBC,
    user=phone; Genesys: Record-Route, BYE along the route set; Twilio: no non-x- custom
    headers; Telnyx: token and P-Charge-Info options; Chime/Connect: +E.164 Request-URI and
    P-Asserted-Identity, BYE along Record-Route to a private Contact)."""

    def run_outbound(self, out: Outbound) -> None:
        sipp_exe = sipp.require_sipp()
        pbx_port = free_port()
        out = outbound_calls(pbx_port)[out.vendor]  # the checks name the PBX's port
        trunk_toml = (
            f'[[trunk]]\nname = "{out.vendor}-e2e"\nvendor = "{out.vendor}"\n'
            f'allow = ["192.0.2.1/32"]\nagent_uri = "sip:{{user}}@192.0.2.1:5060"\n'
            f'peer_uri = "sip:{{user}}@{HOST}:{pbx_port}"\n' + DIAL +
            f'options_interval = 0\nsrtp = "{out.srtp}"\n'
            + (f"\n[trunk.vendor_options]\n{out.options}" if out.options else "")
        )
        sbc = RunningSbc(trunk_toml=trunk_toml,
                         extra_toml='\n[agent]\nallow = ["127.0.0.1/32"]\noptions_interval = 0\n'
                         + out.extra_toml).start()
        self.addCleanup(sbc.stop)
        work = Path(tempfile.mkdtemp(prefix=f"vendor-out-{out.vendor}-"))
        (work / "pbx.xml").write_text(outbound_pbx_scenario(out))
        (work / "agent.xml").write_text(outbound_agent_scenario(out))
        pbx = sipp.start_logged(self, sipp_exe, work, "pbx",
                                ["-p", str(pbx_port), "-mp", str(free_media_port()), "-t", "u1"], listen_port=pbx_port)
        agent = sipp.start_logged(
            self, sipp_exe, work, "agent",
            ["-p", str(free_port()), "-mp", str(free_media_port()), "-t", "u1", "-s", out.dialled, "-recv_timeout", "15000"],
            remote=f"{HOST}:{sbc.sip_port}")
        sipp.wait_all((agent, 60), (pbx, 15))
        sbc.stop()
        log = sbc.log_text()
        detail = (f"\n== agent host dialling {out.vendor}; work dir {work}\n"
                  + sipp.side_report(work, "agent", "agent", agent) + sipp.side_report(work, "pbx", "PBX", pbx)
                  + f"== SBC log\n{log[-4000:]}")
        self.assertEqual(agent.returncode, 0, "agent-side SIPp failed" + detail)
        self.assertEqual(pbx.returncode, 0, "PBX-side SIPp failed" + detail)
        self.assertNotIn("Traceback", log, "SBC logged a traceback" + detail)
        self.assertNotIn("quirk-error", log, "a vendor plugin hook failed" + detail)
        received = received_messages(work / "pbx_messages.log")
        self.assertTrue(any(m.startswith("INVITE ") for m in received), "the PBX got no INVITE" + detail)
        self.assertTrue(any(m.startswith("BYE ") for m in received), "the PBX got no BYE" + detail)
        if out.vendor == "twilio":
            assertTwilioHeaders(self, received, detail)
        if not os.environ.get("SBC_FLOWS_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def _outbound_test(name: str):  # type: ignore[no-untyped-def]
    def test(self: OutboundVendorTests) -> None:
        self.run_outbound(outbound_calls(0)[name])

    test.__name__ = f"test_{name}"
    test.__doc__ = f"The agent host dials out through a {name} trunk; the {name} PBX gets what it needs."
    return test


for _name in VENDORS:
    _test = _outbound_test(_name)
    setattr(OutboundVendorTests, _test.__name__, _test)
