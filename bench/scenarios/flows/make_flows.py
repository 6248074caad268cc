"""
Writes the SIPp scenario pairs of this directory (all but topology_*.xml and prack*.xml, kept by
hand): ``python3 bench/scenarios/flows/make_flows.py`` rewrites them in place.

Each flow is ``<flow>_pbx.xml`` (a UAC playing the PBX, sending to the SBC) and
``<flow>_agent.xml`` (a UAS playing the agent host).  The XML files are committed, so SIPp and
the tests (tests/integration/test_sipp_flows.py) never need this script; it only keeps the
twenty-odd scenarios consistent (same headers, SDP and checks) when one of them changes.

Conventions of the generated scenarios:

* the PBX sends in-dialog requests to the SBC's Contact ([next_url], rrs="true" on the 200)
  with the SBC's tag ([peer_tag_param]); CANCEL and the ACK of a non-2xx reuse the INVITE's
  branch ([branch-N], N worked out here from the element's position);
* the agent answers with [last_Via:] / [last_From:] / [last_To:] / [last_Call-ID:] /
  [last_CSeq:], adds its tag, and sends its own in-dialog requests to [next_url] with
  [routes] (rrs="true" on the INVITE), From/To swapped from the INVITE's ($from / $to);
* every check is an <ereg ... check_it="true"> (or check_it_inverse) whose match goes to
  the variable chk, referenced at the end as SIPp requires.
"""

import os
import re

OUT = os.path.dirname(os.path.abspath(__file__))

HEAD = '''<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
'''
TAIL = '''
  <!-- SIPp wants every assigned variable used: chk only holds regexp matches. -->
  <Reference variables="chk"/>

</scenario>
'''

PBX_SDP = '''
      v=0
      o=pbx 53655765 {ver} IN IP[local_ip_type] [local_ip]
      s=pbx
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {pt} 101
{maps}      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a={dir}
'''

AGENT_SDP = '''
      v=0
      o=agent 1 {ver} IN IP[local_ip_type] [local_ip]
      s=agent
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {pt} 101
{maps}      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a={dir}
'''


_MAPS = {"0": "PCMU/8000", "8": "PCMA/8000"}


def _maps(pt):
    return "".join(f"      a=rtpmap:{n} {_MAPS[n]}\n" for n in pt.split())


def pbx_sdp(ver=1, pt="0 8", dir="sendrecv"):
    return PBX_SDP.format(ver=ver, pt=pt, dir=dir, maps=_maps(pt))


def agent_sdp(ver=1, pt="0", dir="sendrecv"):
    return AGENT_SDP.format(ver=ver, pt=pt, dir=dir, maps=_maps(pt))


def cdata(text):
    return "    <![CDATA[\n\n" + text.rstrip("\n") + "\n\n    ]]>\n"


FROM_PBX = 'From: "PBX user" <sip:1000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]'
TO_SBC = 'To: <sip:[service]@[remote_ip]:[remote_port]>'


def pbx_invite(sdp=True, extra=""):
    body = pbx_sdp() if sdp else ""
    ctype = "      Content-Type: application/sdp\n" if sdp else ""
    length = "[len]" if sdp else "0"
    text = f'''      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      {FROM_PBX}
      {TO_SBC}
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:1000@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Allow: INVITE, ACK, CANCEL, BYE, UPDATE, INFO, MESSAGE
{extra}{ctype}      Content-Length: {length}
{body}'''
    return '  <send retrans="500">\n' + cdata(text) + "  </send>\n"


def pbx_request(method, cseq, body="", ctype="application/sdp", retrans=True, extra=""):
    """An in-dialog request from the PBX to the SBC's Contact ([next_url], needs rrs on the 200)."""
    ct = f"      Content-Type: {ctype}\n" if body else ""
    contact = ("      Contact: <sip:1000@[local_ip]:[local_port];transport=[transport]>\n"
               if method in ("INVITE", "UPDATE", "NOTIFY") else "")
    text = f'''      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      {FROM_PBX}
      {TO_SBC}[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
{contact}      Max-Forwards: 70
{extra}{ct}      Content-Length: {"[len]" if body else "0"}
{body}'''
    open_tag = '  <send retrans="500">\n' if retrans else "  <send>\n"
    return open_tag + cdata(text) + "  </send>\n"


def response(status, reason, body="", tag="", contact=True, ctype="application/sdp", extra="",
             retrans=False, cseq="[last_CSeq:]", via="[last_Via:]", contact_uri=None):
    """A response built from the last request received ([last_*] headers)."""
    ct = f"      Content-Type: {ctype}\n" if body else ""
    c = f"      Contact: <{contact_uri}>\n" if contact else ""
    text = f'''      SIP/2.0 {status} {reason}
      {via}
      [last_From:]
      [last_To:]{tag}
      [last_Call-ID:]
      {cseq}
{c}{extra}{ct}      Content-Length: {"[len]" if body else "0"}
{body}'''
    open_tag = '  <send retrans="500">\n' if retrans else "  <send>\n"
    return open_tag + cdata(text) + "  </send>\n"


AGENT_CONTACT = "sip:agentsecret@[local_ip]:[local_port];transport=[transport]"
PBX_CONTACT = "sip:1000@[local_ip]:[local_port];transport=[transport]"
AGENT_TAG = ";tag=[pid]SIPpTag01[call_number]"


def agent_response(status, reason, body="", tag=AGENT_TAG, contact_uri_override=None, **kw):
    return response(status, reason, body, tag=tag, contact_uri=contact_uri_override or AGENT_CONTACT, **kw)


def pbx_response(status, reason, body="", **kw):
    return response(status, reason, body, contact_uri=PBX_CONTACT, **kw)


def agent_request(method, cseq, body="", ctype="application/sdp", retrans=True):
    """An in-dialog request from the agent (the UAS): to the SBC's Contact with the route set
    learnt by rrs="true"; From/To are the INVITE's To/From captured in $to/$from."""
    ct = f"      Content-Type: {ctype}\n" if body else ""
    contact = f"      Contact: <{AGENT_CONTACT}>\n" if method in ("INVITE", "UPDATE") else ""
    text = f'''      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From:[$to]{AGENT_TAG}
      To:[$from]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
{contact}      Max-Forwards: 70
{ct}      Content-Length: {"[len]" if body else "0"}
{body}'''
    open_tag = '  <send retrans="500">\n' if retrans else "  <send>\n"
    return open_tag + cdata(text) + "  </send>\n"


def ereg(regexp, where="msg", inverse=False, header=None):
    regexp = regexp.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    h = f' header="{header}"' if header else ""
    check = "check_it_inverse" if inverse else "check_it"
    return f'      <ereg regexp="{regexp}" search_in="{where}"{h} {check}="true" assign_to="chk"/>\n'


def recv(what, checks=(), optional=False, extra_attrs=""):
    kind = "request" if what.isalpha() else "response"
    opt = ' optional="true"' if optional else ""
    if not checks:
        return f'  <recv {kind}="{what}"{opt}{extra_attrs}/>\n'
    return (f'  <recv {kind}="{what}"{opt}{extra_attrs}>\n    <action>\n' + "".join(checks)
            + "    </action>\n  </recv>\n")


def comment(text):
    return "<!--\n" + text.strip("\n") + "\n-->\n"


def pause(ms):
    return f'  <pause milliseconds="{ms}"/>\n'


def pbx_ack_2xx(cseq=1, body=""):
    return pbx_request("ACK", cseq, body, retrans=False)


INVITE_BRANCH = "@INVITE_BRANCH@"


def pbx_ack_non2xx():
    """ACK for a non-2xx final: hop by hop, same branch as the INVITE ([branch-N], N worked
    out by scenario()), To with the tag of the response."""
    text = f'''      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={INVITE_BRANCH}
      {FROM_PBX}
      {TO_SBC}[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0'''
    return "  <send>\n" + cdata(text) + "  </send>\n"


CAPTURE_DIALOG = (
    '      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from"/>\n'
    '      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to"/>\n'
)


def bye_and_done_pbx(cseq):
    return pause(300) + pbx_request("BYE", cseq) + recv("200", extra_attrs=' crlf="true"')


def agent_bye_answer():
    return recv("BYE") + agent_response(200, "OK", tag="", contact=False)


def _branches(body):
    """Replace each INVITE_BRANCH with [branch-N]: SIPp's [branch] is derived from the
    element's index, so N elements back from element N is element 0, the INVITE."""
    out, index = [], 0
    for piece in re.split(r"(?m)^(?=  <(?:send|recv|pause|label|nop)\b)", body):
        if re.match(r"  <(?:send|recv|pause|nop)\b", piece):
            piece = piece.replace(INVITE_BRANCH, f"[branch-{index}]")
            index += 1
        out.append(piece)
    return "".join(out)


def scenario(path, name, doc, body):
    body = _branches(body)
    names = sorted(set(re.findall(r'assign_to="([^"]+)"', body)))
    tail = TAIL.replace('variables="chk"', f'variables="{",".join(names)}"') if names else "\n</scenario>\n"
    if names and names != ["chk"]:
        tail = tail.replace("chk only holds regexp matches", "chk only holds regexp matches")
    text = HEAD + comment(doc) + f'<scenario name="{name}">\n' + body + tail
    with open(path, "w") as f:
        f.write(text)



def p(name):
    return os.path.join(OUT, name)


# ------------------------------------------------------------------ late offer
scenario(p("late_offer_pbx.xml"), "PBX: late offer", """
  Late offer, PBX side.  The INVITE has no SDP; the 200 relayed from the agent must carry
  the agent's offer (s=agent, an m= line); the ACK carries the PBX's answer (s=pbx), which
  the SBC must relay in the agent's ACK (checked by late_offer_agent.xml).
""", pbx_invite(sdp=False)
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body"), ereg("m=audio ", "body"),
                   ereg("Content-Type: *application/sdp")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_request("ACK", 1, pbx_sdp(), retrans=False)
    + bye_and_done_pbx(2))

scenario(p("late_offer_agent.xml"), "Agent: late offer", """
  Late offer, agent side.  The INVITE must arrive without SDP (no m= line, Content-Length 0);
  the agent puts its offer in the 200 and checks that the SBC's ACK carries the PBX's answer
  (s=pbx, application/sdp): the ACK for a late-offer 2xx is end to end.
""", recv("INVITE", [ereg("m=audio", inverse=True), ereg("Content-Length: *0[[:space:]]")],
          extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", [ereg("s=pbx", "body"), ereg("m=audio ", "body"),
                   ereg("Content-Type: *application/sdp")], extra_attrs=' crlf="true"')
    + agent_bye_answer())

# ------------------------------------------------------------------ early media
scenario(p("early_media_pbx.xml"), "PBX: early media", """
  Early media, PBX side.  The agent answers 183 Session Progress with SDP, then 200: the PBX
  must receive the 183 with the agent's SDP (s=agent, an m= line, application/sdp), then the
  200, and the call completes with ACK and BYE.
""", pbx_invite()
    + recv("100", optional=True)
    + recv("183", [ereg("s=agent", "body"), ereg("m=audio ", "body"),
                   ereg("Content-Type: *application/sdp")])
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + bye_and_done_pbx(2))

scenario(p("early_media_agent.xml"), "Agent: early media", """
  Early media, agent side: 183 with the SDP answer, a short pause, then 200 with the same SDP.
""", recv("INVITE", [ereg("s=pbx", "body")], extra_attrs=' crlf="true"')
    + agent_response(183, "Session Progress", agent_sdp())
    + pause(300)
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + agent_bye_answer())

# ------------------------------------------------------------------ 180 without SDP
scenario(p("ringing_pbx.xml"), "PBX: 180 without SDP", """
  Ringing without SDP, PBX side.  The agent sends 180 without a body, then 200 with SDP: the
  PBX must get a 180 without body (Content-Length 0, no m= line), then the 200 with the SDP.
""", pbx_invite()
    + recv("100", optional=True)
    + recv("180", [ereg("m=audio", inverse=True), ereg("Content-Length: *0[[:space:]]")])
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + bye_and_done_pbx(2))

scenario(p("ringing_agent.xml"), "Agent: 180 without SDP", """
  Ringing without SDP, agent side: 180 with no body, a pause, then 200 with SDP.
""", recv("INVITE", [ereg("s=pbx", "body")], extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + pause(300)
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + agent_bye_answer())

# ------------------------------------------------------------------ rejections
for status, reason, checks, doc in [
    (486, "Busy Here", [], "486 Busy Here from the agent passes through unchanged."),
    (603, "Decline", [], "603 Decline from the agent passes through unchanged."),
    (503, "Service Unavailable", [ereg("Retry-After: *[0-9]+")],
     "500 from the agent reaches the PBX as 503 with a Retry-After (RFC 3261 §21.5.4)."),
]:
    fname = {486: "reject_486", 603: "reject_603", 503: "reject_500"}[status]
    sent, sent_reason = {486: (486, "Busy Here"), 603: (603, "Decline"),
                         503: (500, "Server Internal Error")}[status]
    scenario(p(f"{fname}_agent.xml"), f"Agent: rejects with {sent}", f"""
  Rejection, agent side: 180, then {sent} {sent_reason}, then the SBC's hop-by-hop ACK for it
  (same CSeq number as the INVITE).  The PBX side is {fname}_pbx.xml.
""", recv("INVITE", extra_attrs=' crlf="true"')
        + agent_response(180, "Ringing")
        + pause(200)
        + agent_response(sent, sent_reason, contact=False)
        + recv("ACK", [ereg("CSeq: *1 ACK")], extra_attrs=' crlf="true"'))
    scenario(p(f"{fname}_pbx.xml"), f"PBX: agent rejects -> {status}", f"""
  Rejection, PBX side: {doc}
  The PBX ACKs the final response hop by hop (same branch as the INVITE: [branch-N]).
  The agent side is {fname}_agent.xml.
""", pbx_invite()
        + recv("100", optional=True) + recv("180", optional=True)
        + recv(str(status), checks + [ereg("agentsecret", inverse=True)])
        + pbx_ack_non2xx())

# ------------------------------------------------------------------ no answer at all
scenario(p("no_answer_agent.xml"), "Agent: never answers", """
  The agent host never answers (not even 100 Trying): the INVITE is received and ignored.
  The SBC's client transaction times out (Timer B, 64*T1; the test sets T1 to 0.05 s, so
  3.2 s); the pause outlasts it and every UDP retransmission of the INVITE.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + pause(5000))

scenario(p("no_answer_pbx.xml"), "PBX: agent never answers", """
  The agent host never answers, PBX side: 100 Trying at once, then 480 Temporarily
  Unavailable with Retry-After once the SBC's Timer B fires (408 is mapped to 480), ACKed
  hop by hop.
""", pbx_invite()
    + recv("100")
    + recv("480", [ereg("Retry-After: *[0-9]+")])
    + pbx_ack_non2xx())

# ------------------------------------------------------------------ CANCEL
scenario(p("cancel_pbx.xml"), "PBX: CANCEL while ringing", """
  CANCEL from the PBX while the agent rings.  The CANCEL reuses the INVITE's branch
  ([branch-N] from element N: the INVITE is element 0) and its CSeq number; the PBX
  must get 200 for the CANCEL and 487 for the INVITE, which it ACKs hop by hop.
""", pbx_invite()
    + recv("100", optional=True)
    + recv("180")
    + pause(300)
    + '  <send>\n' + cdata(f'''      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={INVITE_BRANCH}
      {FROM_PBX}
      {TO_SBC}
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0''') + "  </send>\n"
    + recv("200", [ereg("CSeq: *1 CANCEL")])
    + recv("487", [ereg("CSeq: *1 INVITE")])
    + pbx_ack_non2xx())

scenario(p("cancel_agent.xml"), "Agent: CANCELled while ringing", """
  CANCEL while ringing, agent side: 180, then the SBC's CANCEL (same CSeq number as the
  INVITE), answered 200; the INVITE is then answered 487 and the SBC ACKs it.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + recv("CANCEL", [ereg("CSeq: *1 CANCEL")])
    + agent_response(200, "OK", contact=False)
    + agent_response(487, "Request Terminated", contact=False, cseq="CSeq: [last_cseq_number] INVITE")
    + recv("ACK", [ereg("CSeq: *1 ACK")], extra_attrs=' crlf="true"'))

# ------------------------------------------------------------------ BYE from the agent
scenario(p("agent_bye_pbx.xml"), "PBX: agent hangs up", """
  The agent hangs up, PBX side: after the call is up the PBX receives the SBC's BYE (with
  nothing of the agent's topology) and answers 200.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + recv("BYE", [ereg("agentsecret", inverse=True), ereg("To:[^[:cntrl:]]*;tag=[0-9]+SIPpTag00[0-9]+")])
    + pbx_response(200, "OK", contact=False))

scenario(p("agent_bye_agent.xml"), "Agent: hangs up", """
  The agent hangs up: after the ACK it sends BYE to the SBC's Contact ([next_url]) along
  the route set ([routes], from rrs="true" on the INVITE), From/To swapped (captured from
  the INVITE), and expects 200.
""", recv("INVITE", [CAPTURE_DIALOG], extra_attrs=' crlf="true" rrs="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + pause(500)
    + agent_request("BYE", 1)
    + recv("200", [ereg("CSeq: *1 BYE")], extra_attrs=' crlf="true"'))

# ------------------------------------------------------------------ no answer while ringing
scenario(p("ringing_timeout_pbx.xml"), "PBX: agent rings and never answers", """
  The agent rings but never answers, PBX side: 180, then, when the SBC's no-answer timeout
  fires (the test sets [calls] no_answer_timeout to 2 s), 480 Temporarily Unavailable,
  ACKed hop by hop.
""", pbx_invite()
    + recv("100", optional=True)
    + recv("180")
    + recv("480", [ereg("agentsecret", inverse=True)])
    + pbx_ack_non2xx())

scenario(p("ringing_timeout_agent.xml"), "Agent: rings and never answers", """
  The agent rings but never answers, agent side: 180, then the SBC gives up at its no-answer
  timeout and CANCELs; the CANCEL is answered 200, the INVITE 487, and the SBC ACKs that.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + recv("CANCEL", [ereg("CSeq: *1 CANCEL")])
    + agent_response(200, "OK", contact=False)
    + agent_response(487, "Request Terminated", contact=False, cseq="CSeq: [last_cseq_number] INVITE")
    + recv("ACK", [ereg("CSeq: *1 ACK")], extra_attrs=' crlf="true"'))

# ------------------------------------------------------------------ hold / resume
scenario(p("hold_pbx.xml"), "PBX: hold and resume with re-INVITE", """
  Hold and resume from the PBX.  Once the call is up the PBX sends a re-INVITE with
  a=sendonly (hold); the agent's 200 must carry its answer a=recvonly; ACK.  Then a second
  re-INVITE with a=sendrecv (resume), answered a=sendrecv; ACK; BYE.  Every in-dialog
  request goes to the SBC's Contact ([next_url]) with the SBC's tag ([peer_tag_param]).
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + pause(300)
    + pbx_request("INVITE", 2, pbx_sdp(ver=2, dir="sendonly"))
    + recv("100", optional=True)
    + recv("200", [ereg("CSeq: *2 INVITE"), ereg("a=recvonly", "body"), ereg("s=agent", "body"),
                   ereg("agentsecret", inverse=True)])
    + pbx_ack_2xx(2)
    + pause(300)
    + pbx_request("INVITE", 3, pbx_sdp(ver=3, dir="sendrecv"))
    + recv("100", optional=True)
    + recv("200", [ereg("CSeq: *3 INVITE"), ereg("a=sendrecv", "body"), ereg("s=agent", "body")])
    + pbx_ack_2xx(3)
    + bye_and_done_pbx(4))

scenario(p("hold_agent.xml"), "Agent: held and resumed", """
  Hold and resume, agent side: after the call is up, a re-INVITE offering a=sendonly must
  arrive (answered a=recvonly, then ACKed), then one offering a=sendrecv (answered
  a=sendrecv, ACKed), then BYE.  The re-INVITEs carry the agent's tag already, so the 200s
  copy [last_To:] as is.
""", recv("INVITE", [ereg("a=sendrecv", "body")], extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("INVITE", [ereg("a=sendonly", "body"), ereg("s=pbx", "body"),
                      ereg("To:[^[:cntrl:]]*;tag=[0-9]+SIPpTag01[0-9]+")])
    + agent_response(200, "OK", agent_sdp(ver=2, dir="recvonly"), tag="", retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("INVITE", [ereg("a=sendrecv", "body"), ereg("s=pbx", "body")])
    + agent_response(200, "OK", agent_sdp(ver=3, dir="sendrecv"), tag="", retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + agent_bye_answer())

# ------------------------------------------------------------------ UPDATE from the agent
scenario(p("update_pbx.xml"), "PBX: UPDATE from the agent", """
  UPDATE from the agent host, PBX side: once the call is up the PBX must receive an UPDATE
  with the agent's new offer (PCMA only: RTP/AVP 8 101), with nothing of the agent's
  topology, and answers 200 with its own SDP; then it hangs up.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + recv("UPDATE", [ereg("s=agent", "body"), ereg("m=audio [0-9]+ RTP/AVP 8 101", "body"),
                      ereg("Content-Type: *application/sdp"), ereg("agentsecret", inverse=True)])
    + pbx_response(200, "OK", pbx_sdp(ver=2, pt="8"))
    + bye_and_done_pbx(2))

scenario(p("update_agent.xml"), "Agent: sends UPDATE", """
  UPDATE from the agent host (a codec change to PCMA), sent after the ACK to the SBC's
  Contact ([next_url], [routes] from rrs="true"), From/To swapped (captured from the
  INVITE).  The 200 must carry the PBX's answer (s=pbx, RTP/AVP 8).  Then the PBX hangs up.
""", recv("INVITE", [CAPTURE_DIALOG], extra_attrs=' crlf="true" rrs="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + pause(300)
    + agent_request("UPDATE", 1, agent_sdp(ver=2, pt="8"))
    + recv("200", [ereg("CSeq: *1 UPDATE"), ereg("s=pbx", "body"), ereg("m=audio [0-9]+ RTP/AVP 8 101", "body")])
    + agent_bye_answer())

# ------------------------------------------------------------------ INFO and MESSAGE from the PBX
DTMF = """
      Signal=5
      Duration=160
"""
TEXT = """
      hello agent
"""
VENDOR_DATA = """
      ticket=5
      queue=160
"""

scenario(p("info_message_pbx.xml"), "PBX: INFO and MESSAGE in dialog", """
  In-dialog INFO (application/x-vendor-data) and MESSAGE (text/plain) from the PBX: each
  must be answered 200 by the agent through the SBC.  Then the PBX hangs up.  (DTMF INFO
  from the PBX is not relayed: it becomes agent events, see the DTMF tests.)
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + pause(200)
    + pbx_request("INFO", 2, VENDOR_DATA, ctype="application/x-vendor-data")
    + recv("200", [ereg("CSeq: *2 INFO")])
    + pbx_request("MESSAGE", 3, TEXT, ctype="text/plain")
    + recv("200", [ereg("CSeq: *3 MESSAGE")])
    + bye_and_done_pbx(4))

scenario(p("info_message_agent.xml"), "Agent: receives INFO and MESSAGE", """
  In-dialog INFO and MESSAGE, agent side: both must arrive with their Content-Type and body
  intact (ticket=5 / queue=160; "hello agent"), inside the B leg's dialog (the agent's
  tag in To); each is answered 200.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("INFO", [ereg("Content-Type: *application/x-vendor-data"), ereg("ticket=5", "body"),
                    ereg("queue=160", "body"), ereg("To:[^[:cntrl:]]*;tag=[0-9]+SIPpTag01[0-9]+")])
    + agent_response(200, "OK", tag="", contact=False)
    + recv("MESSAGE", [ereg("Content-Type: *text/plain"), ereg("hello agent", "body"),
                       ereg("To:[^[:cntrl:]]*;tag=[0-9]+SIPpTag01[0-9]+")])
    + agent_response(200, "OK", tag="", contact=False)
    + agent_bye_answer())

# ------------------------------------------------------------------ 200 crosses the CANCEL
scenario(p("cancel_race_pbx.xml"), "PBX: CANCEL crossed by the agent's 200", """
  CANCEL from the PBX crossed by the agent's 200, PBX side: exactly as in cancel_pbx.xml,
  the PBX must get 200 for the CANCEL and 487 for the INVITE: the call is not connected.
""", pbx_invite()
    + recv("100", optional=True)
    + recv("180")
    + pause(300)
    + '  <send>\n' + cdata(f'''      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={INVITE_BRANCH}
      {FROM_PBX}
      {TO_SBC}
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0''') + "  </send>\n"
    + recv("200", [ereg("CSeq: *1 CANCEL")])
    + recv("487", [ereg("CSeq: *1 INVITE")])
    + pbx_ack_non2xx())

scenario(p("cancel_race_agent.xml"), "Agent: answers although CANCELled", """
  The race where the agent's 200 crosses the SBC's CANCEL (RFC 3261 §9.1), agent side: the
  CANCEL is answered 200 but the INVITE is answered 200 OK as if it had been sent just before
  the CANCEL arrived.  The SBC must ACK that 200 and hang the call up with BYE at once.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + recv("CANCEL", [ereg("CSeq: *1 CANCEL")])
    + agent_response(200, "OK", contact=False)
    + agent_response(200, "OK", agent_sdp(), cseq="CSeq: [last_cseq_number] INVITE", retrans=True)
    + recv("ACK", [ereg("CSeq: *1 ACK")], extra_attrs=' crlf="true"')
    + recv("BYE", [ereg("CSeq: *2 BYE")])
    + agent_response(200, "OK", tag="", contact=False))

# ------------------------------------------------------------------ offerless re-INVITE
scenario(p("reinvite_no_sdp_pbx.xml"), "PBX: re-INVITE without SDP", """
  Offerless re-INVITE from the PBX (RFC 3261 §14.1: the 200 carries the offer, the ACK the
  answer).  The 200 must carry the agent's new offer (s=agent); the PBX answers in its ACK
  (s=pbx), which the agent side checks it receives (the o= line is the SBC's own: media is anchored).
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + pause(300)
    + pbx_request("INVITE", 2)
    + recv("100", optional=True)
    + recv("200", [ereg("CSeq: *2 INVITE"), ereg("s=agent", "body"), ereg("m=audio [0-9]+ RTP/AVP", "body")])
    + pbx_request("ACK", 2, pbx_sdp(ver=2), retrans=False)
    + bye_and_done_pbx(3))

scenario(p("reinvite_no_sdp_agent.xml"), "Agent: re-INVITE without SDP", """
  Offerless re-INVITE, agent side: the re-INVITE must arrive without SDP; the agent offers
  in its 200 (version 2) and the SBC's ACK must carry the PBX's answer (s=pbx, version 2).
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("INVITE", [ereg("m=audio", inverse=True), ereg("Content-Length: *0[[:space:]]"),
                      ereg("CSeq: *[0-9]+ INVITE")])
    + agent_response(200, "OK", agent_sdp(ver=2), tag="", retrans=True)
    + recv("ACK", [ereg("s=pbx", "body"), ereg("m=audio [0-9]+ RTP/AVP", "body"),
                   ereg("Content-Type: *application/sdp")], extra_attrs=' crlf="true"')
    + agent_bye_answer())

# ------------------------------------------------------------------ re-INVITE from the agent
scenario(p("agent_hold_pbx.xml"), "PBX: held and resumed by the agent", """
  Hold and resume from the agent host, PBX side: the SBC relays the agent's re-INVITE
  offering a=sendonly (the PBX answers a=recvonly), then one offering a=sendrecv (answered
  a=sendrecv); each 2xx must be ACKed.  Nothing of the agent's topology may show.  Then
  the PBX hangs up.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + recv("INVITE", [ereg("a=sendonly", "body"), ereg("s=agent", "body"), ereg("agentsecret", inverse=True),
                      ereg("To:[^[:cntrl:]]*;tag=[0-9]+SIPpTag00[0-9]+")])
    + pbx_response(200, "OK", pbx_sdp(ver=2, dir="recvonly"), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("INVITE", [ereg("a=sendrecv", "body"), ereg("s=agent", "body")])
    + pbx_response(200, "OK", pbx_sdp(ver=3), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + bye_and_done_pbx(2))

scenario(p("agent_hold_agent.xml"), "Agent: holds and resumes", """
  Hold and resume from the agent host: re-INVITEs to the SBC's Contact ([next_url],
  [routes] from rrs="true"), From/To swapped (captured from the INVITE): first a=sendonly,
  answered a=recvonly; then a=sendrecv; each 200 is ACKed.  Then the PBX hangs up.
""", recv("INVITE", [CAPTURE_DIALOG], extra_attrs=' crlf="true" rrs="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + pause(300)
    + agent_request("INVITE", 1, agent_sdp(ver=2, dir="sendonly"))
    + recv("100", optional=True)
    + recv("200", [ereg("CSeq: *1 INVITE"), ereg("a=recvonly", "body"), ereg("s=pbx", "body")])
    + agent_request("ACK", 1, retrans=False)
    + pause(300)
    + agent_request("INVITE", 2, agent_sdp(ver=3))
    + recv("100", optional=True)
    + recv("200", [ereg("CSeq: *2 INVITE"), ereg("a=sendrecv", "body"), ereg("s=pbx", "body")])
    + agent_request("ACK", 2, retrans=False)
    + agent_bye_answer())

# ------------------------------------------------------------------ UPDATE from the PBX
scenario(p("pbx_update_pbx.xml"), "PBX: sends UPDATE", """
  UPDATE from the PBX (codec change to PCMA) once the call is up: the 200 must carry the
  agent's answer (s=agent, RTP/AVP 8).  Then the PBX hangs up.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + pause(300)
    + pbx_request("UPDATE", 2, pbx_sdp(ver=2, pt="8"))
    + recv("200", [ereg("CSeq: *2 UPDATE"), ereg("s=agent", "body"), ereg("m=audio [0-9]+ RTP/AVP 8 101", "body")])
    + bye_and_done_pbx(3))

scenario(p("pbx_update_agent.xml"), "Agent: receives UPDATE", """
  UPDATE from the PBX, agent side: the UPDATE must carry the PBX's new offer (s=pbx,
  RTP/AVP 8 101); the agent answers 200 with PCMA.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("UPDATE", [ereg("s=pbx", "body"), ereg("m=audio [0-9]+ RTP/AVP 8 101", "body"),
                      ereg("Content-Type: *application/sdp")])
    + agent_response(200, "OK", agent_sdp(ver=2, pt="8"), tag="")
    + agent_bye_answer())

# ------------------------------------------------------------------ glare
scenario(p("glare_pbx.xml"), "PBX: re-INVITE meets the agent's re-INVITE", """
  re-INVITE glare, PBX side: the PBX puts the call on hold (a=sendonly).  While its
  re-INVITE is pending on the B leg the agent sends its own re-INVITE, which the SBC must
  refuse with 491 (RFC 3261 §14.2) instead of relaying it: this side would fail on an
  unexpected INVITE.  The PBX's re-INVITE is then answered (a=recvonly) normally.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + pause(300)
    + pbx_request("INVITE", 2, pbx_sdp(ver=2, dir="sendonly"))
    + recv("100", optional=True)
    + recv("200", [ereg("CSeq: *2 INVITE"), ereg("a=recvonly", "body")])
    + pbx_ack_2xx(2)
    + bye_and_done_pbx(3))

scenario(p("glare_agent.xml"), "Agent: re-INVITE glare", """
  re-INVITE glare, agent side: on the SBC's re-INVITE (hold) the agent does not answer at
  once but sends its own re-INVITE; the SBC must answer it 491 Request Pending, which the
  agent ACKs hop by hop.  The agent then answers the SBC's re-INVITE (its Via and CSeq were
  captured in $rvia / $rcseq) with a=recvonly.
""", recv("INVITE", [CAPTURE_DIALOG], extra_attrs=' crlf="true" rrs="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("INVITE", [ereg("a=sendonly", "body"),
                      '      <ereg regexp=".*" search_in="hdr" header="Via:" assign_to="rvia"/>\n',
                      '      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="rcseq"/>\n'])
    + agent_request("INVITE", 1, agent_sdp(ver=2, pt="8"))
    + recv("100", optional=True)
    + recv("491", [ereg("CSeq: *1 INVITE")])
    + '  <send>\n' + cdata('''      ACK [next_url] SIP/2.0
      [last_Via:]
      [routes]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0''') + "  </send>\n"
    + '  <send retrans="500">\n' + cdata(f'''      SIP/2.0 200 OK
      Via:[$rvia]
      From:[$from]
      To:[$to]{AGENT_TAG}
      Call-ID: [call_id]
      CSeq: [$rcseq] INVITE
      Contact: <{AGENT_CONTACT}>
      Content-Type: application/sdp
      Content-Length: [len]
{agent_sdp(ver=2, dir="recvonly")}''') + "  </send>\n"
    + recv("ACK", extra_attrs=' crlf="true"')
    + agent_bye_answer())

# ------------------------------------------------------------------ INFO from the agent
scenario(p("agent_info_pbx.xml"), "PBX: INFO from the agent", """
  In-dialog INFO from the agent host (application/dtmf-relay, digit 9), PBX side: it must
  arrive with Content-Type and body, inside the A leg's dialog (the PBX's tag in To), and is
  answered 200.  Then the PBX hangs up.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + recv("INFO", [ereg("Content-Type: *application/dtmf-relay"), ereg("Signal=9", "body"),
                    ereg("To:[^[:cntrl:]]*;tag=[0-9]+SIPpTag00[0-9]+"), ereg("agentsecret", inverse=True)])
    + pbx_response(200, "OK", contact=False)
    + bye_and_done_pbx(2))

scenario(p("agent_info_agent.xml"), "Agent: sends INFO", """
  In-dialog INFO from the agent host (a DTMF digit), sent to the SBC's Contact with the
  route set and From/To swapped; the PBX's 200 must come back.  Then the PBX hangs up.
""", recv("INVITE", [CAPTURE_DIALOG], extra_attrs=' crlf="true" rrs="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + pause(300)
    + agent_request("INFO", 1, DTMF.replace("Signal=5", "Signal=9"), ctype="application/dtmf-relay")
    + recv("200", [ereg("CSeq: *1 INFO")])
    + agent_bye_answer())

# ------------------------------------------------------------------ Record-Route on both legs
def record_route_pbx(echo):
    check = [ereg("Record-Route: *<sip:[^>]*;pbxproxy=1>")] if echo else []
    return (pbx_invite(extra="      Record-Route: <sip:[local_ip]:[local_port];transport=[transport];lr;pbxproxy=1>\n")
            + recv("100", optional=True) + recv("180", optional=True)
            + recv("200", check + [ereg("agentproxy", inverse=True)], extra_attrs=' rrs="true" rtd="true"')
            + pbx_ack_2xx()
            + recv("INFO", [ereg("^INFO sip:1000@"), ereg("Route: *<sip:[^>]*;pbxproxy=1>"),
                            ereg("agentproxy", inverse=True)])
            + pbx_response(200, "OK", contact=False)
            + bye_and_done_pbx(2))


scenario(p("record_route_pbx.xml"), "PBX: Record-Route on the A leg", """
  Record-Route on the A leg (RFC 3261 §12.1.1, §12.2.1.1), PBX side.  The PBX's INVITE
  carries a Record-Route of its edge proxy (the PBX's own address, marked pbxproxy=1): the
  SBC's in-dialog requests toward the PBX (the relayed INFO) must carry it as Route, with
  the PBX's Contact as Request-URI.  The agent side records a route too (agentproxy=1):
  nothing of it may reach the PBX.  (record_route_echo_pbx.xml also checks that the SBC
  copies the Record-Route into its 200.)
""", record_route_pbx(False))

scenario(p("record_route_echo_pbx.xml"), "PBX: Record-Route copied into the 200", """
  As record_route_pbx.xml, and the SBC, the UAS of the A leg, must copy the INVITE's
  Record-Route into its 200 (RFC 3261 §12.1.1: "the UAS MUST copy all Record-Route header
  field values from the request into the response"), so that the PBX's own route set
  (§12.1.2) keeps its edge proxy in the path of its ACK and BYE.
  The agent side is record_route_agent.xml.
""", record_route_pbx(True))

scenario(p("record_route_agent.xml"), "Agent: Record-Route on the B leg", """
  Record-Route on the B leg (RFC 3261 §12.1.2, §12.2.1.1), agent side.  The agent's 200
  carries a Record-Route of its own proxy (the agent's own address, marked agentproxy=1): the
  SBC, the UAC of the B leg, must send the ACK and the BYE with it as Route, to the agent's
  Contact as Request-URI.  The PBX's Record-Route (pbxproxy=1) must not reach the agent.
  The agent sends an INFO in between, which the PBX side checks arrives with its own Route.
""", recv("INVITE", [CAPTURE_DIALOG, ereg("pbxproxy", inverse=True), ereg("Record-Route:", inverse=True)],
          extra_attrs=' crlf="true" rrs="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True,
                     extra="      Record-Route: <sip:[local_ip]:[local_port];transport=[transport];lr;agentproxy=1>\n")
    + recv("ACK", [ereg("^ACK sip:agentsecret@"), ereg("Route: *<sip:[^>]*;agentproxy=1>")],
           extra_attrs=' crlf="true"')
    + pause(300)
    + agent_request("INFO", 1, DTMF, ctype="application/dtmf-relay")
    + recv("200", [ereg("CSeq: *1 INFO")])
    + recv("BYE", [ereg("^BYE sip:agentsecret@"), ereg("Route: *<sip:[^>]*;agentproxy=1>"),
                   ereg("pbxproxy", inverse=True)])
    + agent_response(200, "OK", tag="", contact=False))

# ------------------------------------------------------------------ IPv6 on both legs
scenario(p("ipv6_pbx.xml"), "PBX: call over IPv6", """
  A call over IPv6 (both peers on ::1), PBX side: SDP both ways, then the agent hangs up.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body"), ereg("agentsecret", inverse=True)],
           extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + recv("BYE", [ereg("agentsecret", inverse=True)])
    + pbx_response(200, "OK", contact=False))

def ipv6_agent(family_checks):
    checks = [ereg("Via: *SIP/2.0/[A-Z]+ *[[][0-9a-fA-F:]+[]]"),
              ereg("Contact: *<sip:[^>]*[[][0-9a-fA-F:]+[]]")] if family_checks else []
    return (recv("INVITE", [CAPTURE_DIALOG, ereg("s=pbx", "body")] + checks,
                 extra_attrs=' crlf="true" rrs="true"')
            + agent_response(180, "Ringing")
            + agent_response(200, "OK", agent_sdp(), retrans=True)
            + recv("ACK", extra_attrs=' crlf="true"')
            + pause(300)
            + agent_request("BYE", 1)
            + recv("200", [ereg("CSeq: *1 BYE")], extra_attrs=' crlf="true"'))


scenario(p("ipv6_agent.xml"), "Agent: call over IPv6", """
  A call over IPv6 (both peers on ::1), agent side: SDP both ways, then the agent hangs up.
  (ipv6_family_agent.xml also checks the address family of the SBC's Via and Contact.)
""", ipv6_agent(False))

scenario(p("ipv6_family_agent.xml"), "Agent: IPv6 Via and Contact", """
  As ipv6_agent.xml, and since the SBC reaches the agent host over IPv6, the Via sent-by
  and the Contact of its INVITE must be IPv6 addresses ([...]) the agent can answer and send
  its in-dialog requests to: an IPv4 address only works by accident here, because SIPp
  sends everything back to where the INVITE came from and loopback is dual-stack.
  The PBX side is ipv6_pbx.xml.
""", ipv6_agent(True))

# ------------------------------------------------------------------ late ACK
scenario(p("slow_ack_pbx.xml"), "PBX: ACKs late", """
  The PBX ACKs the 200 only after 2 s.  Over UDP the SBC retransmits its 200 meanwhile
  (RFC 3261 §13.3.1.4) and must not give up on the call; the agent's 200 retransmissions
  are absorbed by the SBC, which ACKs the agent only once the PBX's ACK arrives (ACK end
  to end).  SIPp answers the 200 retransmissions it sees during the pause itself.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pause(2000)
    + pbx_ack_2xx()
    + bye_and_done_pbx(2))

scenario(p("slow_ack_agent.xml"), "Agent: waits for a late ACK", """
  Late ACK, agent side: the 200 is retransmitted (retrans="500") until the SBC's ACK, which
  must come once, after the PBX's late ACK, and then the PBX hangs up.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + agent_bye_answer())

# ------------------------------------------------------------------ 3xx from the agent
scenario(p("reject_302_agent.xml"), "Agent: redirects with 302", """
  Redirection, agent side: 302 Moved Temporarily with a Contact (user "elsewhere"), which
  the SBC must not follow; then the SBC's hop-by-hop ACK.  The PBX side is reject_302_pbx.xml.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(302, "Moved Temporarily", contact=True, contact_uri_override="sip:elsewhere@[local_ip]:[local_port]")
    + recv("ACK", [ereg("CSeq: *1 ACK")], extra_attrs=' crlf="true"'))

scenario(p("reject_302_pbx.xml"), "PBX: agent redirects -> 480", """
  Redirection, PBX side: a 3xx from the agent host is not followed and reaches the PBX as
  480 Temporarily Unavailable, without the agent's redirect target (user "elsewhere").
""", pbx_invite()
    + recv("100", optional=True)
    + recv("480", [ereg("elsewhere", inverse=True), ereg("agentsecret", inverse=True)])
    + pbx_ack_non2xx())

# ------------------------------------------------------------------ CANCEL after 100 only
def pbx_cancel():
    return '  <send>\n' + cdata(f'''      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={INVITE_BRANCH}
      {FROM_PBX}
      {TO_SBC}
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0''') + "  </send>\n"


def agent_cancelled():
    """CANCEL answered 200, the INVITE answered 487 (same CSeq number), the SBC's ACK."""
    return (recv("CANCEL", [ereg("CSeq: *1 CANCEL")])
            + agent_response(200, "OK", contact=False)
            + agent_response(487, "Request Terminated", contact=False, cseq="CSeq: [last_cseq_number] INVITE")
            + recv("ACK", [ereg("CSeq: *1 ACK")], extra_attrs=' crlf="true"'))


scenario(p("cancel_after_100_pbx.xml"), "PBX: CANCEL before any ringing", """
  CANCEL from the PBX while the agent host has only answered 100 Trying (no early dialog):
  200 for the CANCEL, 487 for the INVITE, ACK.
""", pbx_invite()
    + recv("100")
    + pause(500)
    + pbx_cancel()
    + recv("200", [ereg("CSeq: *1 CANCEL")])
    + recv("487", [ereg("CSeq: *1 INVITE")])
    + pbx_ack_non2xx())

scenario(p("cancel_after_100_agent.xml"), "Agent: CANCELled after 100 Trying", """
  CANCEL after 100 Trying only, agent side: 100 (no To tag), then the SBC's CANCEL.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + response(100, "Trying", contact=False)
    + agent_cancelled())

# ------------------------------------------------------------------ CANCEL before any provisional
scenario(p("cancel_early_pbx.xml"), "PBX: CANCEL before the agent answers anything", """
  CANCEL from the PBX before the agent host has sent any response at all: the PBX gets 200
  and 487 at once; the SBC must hold its own CANCEL until the agent's first provisional
  response (RFC 3261 §9.1), see cancel_early_agent.xml.
""", pbx_invite()
    + recv("100")
    + pause(200)
    + pbx_cancel()
    + recv("200", [ereg("CSeq: *1 CANCEL")])
    + recv("487", [ereg("CSeq: *1 INVITE")])
    + pbx_ack_non2xx())

scenario(p("cancel_early_agent.xml"), "Agent: slow first response, then CANCELled", """
  CANCEL before any provisional response, agent side: the agent is silent for 1.5 s (the
  PBX cancels meanwhile), then rings.  A CANCEL arriving during the silence would abort
  the call here (RFC 3261 §9.1: a CANCEL MUST NOT be sent before a provisional response);
  it must come after the 180.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + pause(1500)
    + agent_response(180, "Ringing")
    + agent_cancelled())

# ------------------------------------------------------------------ REFER
def agent_refer():
    text = f'''      REFER [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From:[$to]{AGENT_TAG}
      To:[$from]
      Call-ID: [call_id]
      CSeq: 1 REFER
      Contact: <{AGENT_CONTACT}>
      Refer-To: <sip:transfer-target@192.0.2.7>
      Referred-By: <sip:agentsecret@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0'''
    return '  <send retrans="500">\n' + cdata(text) + "  </send>\n"


scenario(p("refer_refused_pbx.xml"), "PBX: REFER from the agent refused", """
  REFER from the agent host toward a trunk that does not allow transfers (the default,
  allow_refer = false), PBX side: nothing reaches the PBX (an unexpected REFER would fail
  the call here) and the call goes on until the PBX hangs up.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + pause(1200)
    + pbx_request("BYE", 2)
    + recv("200", extra_attrs=' crlf="true"'))

scenario(p("refer_refused_agent.xml"), "Agent: REFER refused", """
  REFER from the agent host, refused cleanly by the SBC when the trunk does not allow
  transfers: any of 403, 405, 501 or 603 is accepted; the dialog must survive (the PBX's BYE
  still arrives in it afterwards).
""", recv("INVITE", [CAPTURE_DIALOG], extra_attrs=' crlf="true" rrs="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + pause(300)
    + agent_refer()
    + recv("403", optional=True, extra_attrs=' next="refused"')
    + recv("405", optional=True, extra_attrs=' next="refused"')
    + recv("501", optional=True, extra_attrs=' next="refused"')
    + recv("603")
    + '  <label id="refused"/>\n'
    + agent_bye_answer())

scenario(p("refer_relayed_pbx.xml"), "PBX: REFER from the agent relayed", """
  REFER from the agent host toward a trunk with allow_refer = true, PBX side: the REFER
  arrives in the A leg's dialog with the Refer-To of the agent (the transfer target), and
  without the agent's topology; the PBX accepts it (202) and reports the outcome with a
  NOTIFY (Event: refer, message/sipfrag 200 OK), then hangs up.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + recv("REFER", [ereg("Refer-To: *<sip:transfer-target@192\\.0\\.2\\.7>"),
                     ereg("To:[^[:cntrl:]]*;tag=[0-9]+SIPpTag00[0-9]+"), ereg("agentsecret", inverse=True)])
    + pbx_response(202, "Accepted", contact=True)
    + pause(200)
    + pbx_request("NOTIFY", 2, "\n      SIP/2.0 200 OK\n", ctype="message/sipfrag",
                  extra="      Event: refer\n      Subscription-State: terminated;reason=noresource\n")
    + recv("200", [ereg("CSeq: *2 NOTIFY")])
    + bye_and_done_pbx(3))

scenario(p("refer_relayed_agent.xml"), "Agent: REFER relayed", """
  REFER from the agent host toward a trunk with allow_refer = true, agent side: the REFER
  is answered 202 (from the PBX), then the PBX's NOTIFY (Event: refer, message/sipfrag)
  arrives and is answered 200; then the PBX hangs up.
""", recv("INVITE", [CAPTURE_DIALOG], extra_attrs=' crlf="true" rrs="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + pause(300)
    + agent_refer()
    + recv("202", [ereg("CSeq: *1 REFER")])
    + recv("NOTIFY", [ereg("Event: *refer"), ereg("Content-Type: *message/sipfrag"),
                      ereg("SIP/2.0 200", "body")])
    + agent_response(200, "OK", tag="", contact=False)
    + agent_bye_answer())

# ------------------------------------------------------------------ session timers (RFC 4028)
ST_HEADERS = ("      Supported: timer\n"
              "      Session-Expires: 90;refresher=uac\n"
              "      Min-SE: 90\n")

scenario(p("session_timer_pbx.xml"), "PBX: session timer, PBX refreshes", """
  Session timers on the A leg (RFC 4028), PBX side.  The PBX supports timers and asks for
  90 s with itself as refresher: the SBC's 200 must grant it (Session-Expires: 90 with
  refresher=uac, §9) and carry Require: timer.  After a second the PBX refreshes with a
  re-INVITE (same SDP version: no change), which must be answered 200 with Session-Expires
  again; the call then ends normally.
""", pbx_invite(extra=ST_HEADERS)
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("Session-Expires: *90 *;[^[:cntrl:]]*refresher=uac"),
                   ereg("Require:[^[:cntrl:]]*timer")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + pause(1000)
    + pbx_request("INVITE", 2, pbx_sdp(), extra=ST_HEADERS)
    + recv("100", optional=True)
    + recv("200", [ereg("CSeq: *2 INVITE"), ereg("Session-Expires: *[0-9]+")])
    + pbx_ack_2xx(2)
    + bye_and_done_pbx(3))

scenario(p("session_timer_agent.xml"), "Agent: session timer on the A leg only", """
  Session timers, agent side.  The agent does not support timers.  The SBC negotiates each
  leg on its own, so the PBX's refresh may or may not become a re-INVITE or UPDATE toward
  the agent: either is answered 200 (and a re-INVITE's 200 ACKed); then the PBX hangs up.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("INVITE", optional=True, extra_attrs=' next="refresh"')
    + recv("UPDATE", optional=True, extra_attrs=' next="update"')
    + recv("BYE", extra_attrs=' next="bye"')
    + '  <label id="refresh"/>\n'
    + agent_response(200, "OK", agent_sdp(), tag="", retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("BYE", extra_attrs=' next="bye"')
    + '  <label id="update"/>\n'
    + agent_response(200, "OK", agent_sdp(), tag="")
    + recv("BYE")
    + '  <label id="bye"/>\n'
    + agent_response(200, "OK", tag="", contact=False))

scenario(p("session_timer_422_pbx.xml"), "PBX: session interval too small", """
  Session timers: the PBX asks for 60 s, below the SBC's Min-SE: 422 Session Interval Too
  Small with a Min-SE of at least 90 (RFC 4028 §8.1); nothing reaches the agent host.
""", pbx_invite(extra="      Supported: timer\n      Session-Expires: 60\n")
    + recv("100", optional=True)
    + recv("422", [ereg("Min-SE: *(9[0-9]|[1-9][0-9][0-9]+)")])
    + pbx_ack_non2xx())

scenario(p("session_timer_422_agent.xml"), "Agent: never called", """
  Session interval too small, agent side: the SBC refuses the PBX's INVITE itself, so this
  side must receive nothing.  The test stops it once the PBX side is done and checks that
  it saw no message (were an INVITE relayed, its 500 would also fail the PBX side).
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(500, "Should Not Be Called", contact=False))

# ------------------------------------------------------------------ an INVITE over 1300 bytes
PADDING = "".join(f"      a=x-pad{n:02d}:{'p' * 40}\n" for n in range(30))
BIG_SDP = pbx_sdp().replace("      a=sendrecv\n", PADDING + "      a=sendrecv\n")


def big_pbx_invite():
    return pbx_invite().replace(pbx_sdp(), BIG_SDP)


scenario(p("large_invite_pbx.xml"), "PBX: INVITE larger than 1300 bytes", """
  An INVITE whose SDP makes it larger than 1300 bytes (30 padding attributes), PBX side:
  the call must complete.  Toward a UDP agent host the SBC's INVITE is larger than 1300
  bytes too, so RFC 3261 §18.1.1 has it try TCP first and, if the connection is refused,
  retry over UDP (this agent host listens on UDP only, as many do).
""", big_pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + bye_and_done_pbx(2))

scenario(p("large_invite_agent.xml"), "Agent: receives a large INVITE", """
  A large INVITE, agent side: the whole SDP must arrive (the last padding attribute too).
""", recv("INVITE", [ereg("a=x-pad29:p+", "body"), ereg("a=sendrecv", "body")], extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + agent_bye_answer())

# ------------------------------------------------------------------ in-dialog requests refused
scenario(p("in_dialog_errors_pbx.xml"), "PBX: in-dialog requests refused by the agent", """
  In-dialog failures do not end the call, PBX side: a re-INVITE offering only G.729 is
  refused by the agent with 488, which the PBX must receive (and ACK hop by hop, on the
  re-INVITE's branch: [last_Via:] of the 488); an INFO with a body the agent does not take
  gets the agent's 415.  The call is still up: the PBX's BYE is answered 200.
""", pbx_invite()
    + recv("100", optional=True) + recv("180", optional=True)
    + recv("200", [ereg("s=agent", "body")], extra_attrs=' rrs="true" rtd="true"')
    + pbx_ack_2xx()
    + pause(300)
    + pbx_request("INVITE", 2, pbx_sdp(ver=2).replace("RTP/AVP 0 8 101", "RTP/AVP 18 101")
                  .replace("      a=rtpmap:0 PCMU/8000\n      a=rtpmap:8 PCMA/8000\n",
                           "      a=rtpmap:18 G729/8000\n"))
    + recv("100", optional=True)
    + recv("488", [ereg("CSeq: *2 INVITE")])
    + '  <send>\n' + cdata(f'''      ACK [next_url] SIP/2.0
      [last_Via:]
      {FROM_PBX}
      {TO_SBC}[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0''') + "  </send>\n"
    + pause(200)
    + pbx_request("INFO", 3, "\n      <xml>not for you</xml>\n", ctype="application/x-unknown+xml")
    + recv("415", [ereg("CSeq: *3 INFO")])
    + bye_and_done_pbx(4))

scenario(p("in_dialog_errors_agent.xml"), "Agent: refuses in-dialog requests", """
  In-dialog failures, agent side: the re-INVITE (G.729 only) is refused 488 and the SBC's
  ACK for it arrives; the INFO is refused 415; then the PBX's BYE still arrives in the dialog.
""", recv("INVITE", extra_attrs=' crlf="true"')
    + agent_response(180, "Ringing")
    + agent_response(200, "OK", agent_sdp(), retrans=True)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("INVITE", [ereg("RTP/AVP 18 101", "body")])
    + agent_response(488, "Not Acceptable Here", tag="", contact=False)
    + recv("ACK", extra_attrs=' crlf="true"')
    + recv("INFO", [ereg("Content-Type: *application/x-unknown[+]xml")])
    + agent_response(415, "Unsupported Media Type", tag="", contact=False)
    + agent_bye_answer())
