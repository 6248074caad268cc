# -*- test-case-name: tests.integration.test_dtmf_e2e,tests.integration.test_srtp_e2e,tests.integration.test_auth_e2e,tests.integration.test_vendor_e2e,tests.integration.test_sipp_calls -*-
"""
SIPp scenario pieces and a UAC/UAS runner shared by the end-to-end tests.

The builders return XML text for a SIPp scenario file; :func:`scenario` wraps the pieces in
the ``<scenario>`` element.  Each message builder makes one ``<send>`` element whose message
sits in a CDATA section, one header a line, each line prefixed with ``indent`` (SIPp skips
the spaces at the start of a message line, so the indent is only for the reader).  Bodies
(SDP, INFO payloads) are put in as given: indent them yourself if you want them indented.

SIPp quirks that the pieces respect, and that text added around them must respect too:

* SIPp's own XML parser ignores single-quoted attributes: write every attribute with
  double quotes (a regular expression holding a ``"`` needs ``&quot;``, see
  :func:`xml_attribute`).
* ``[len]`` is the length of the body SIPp sends; a literal ``Content-Length: 0`` is kept
  as written.
* ``[routes]``, ``[next_url]`` and ``[peer_tag_param]`` are only known after a ``<recv
  ... rrs="true">`` of the dialog's 2xx.
* ``[media_port]`` is replaced on ``m=`` lines only.

:func:`run_pair` runs one SIPp UAS (the agent host) and one SIPp UAC (the PBX) against a
running SBC and checks that both exit 0, with everything needed to debug a failure (both
outputs and the SBC's log tail) in the message.

:func:`start_logged` starts one SIPp side that keeps its output, errors and message trace
in a work directory (for tests that read the trace afterwards), :func:`wait_all` bounds the
wait for the sides and :func:`side_report` puts each side's story in a failure message.

Only processes started here are ever stopped, by their own handle.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Iterable, Sequence
from xml.sax.saxutils import escape

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from .harness import RunningSbc, sipp_path

#: The indent of message lines inside CDATA in the indented scenarios.
INDENT = "      "
XML_DECLARATION = '<?xml version="1.0" encoding="ISO-8859-1" ?>'
DOCTYPE = '<!DOCTYPE scenario SYSTEM "sipp.dtd">'

#: The UAC's top Via (SIPp fills in its address, transport and a new branch).
VIA = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]"
#: The Request-URI and To of a UAC's initial INVITE (``-s <service>`` toward the remote host).
SERVICE_URI = "sip:[service]@[remote_ip]:[remote_port]"
#: The To tag a SIPp UAS puts on its responses to the initial INVITE.
UAS_TO_TAG = ";tag=[pid]SIPpTag01[call_number]"
#: The Contact of a SIPp UAS playing the agent host.
AGENT_CONTACT = "Contact: <sip:agent@[local_ip]:[local_port]>"

#: Static payload types (RFC 3551) the scenarios name.
STATIC_CODECS = {0: "PCMU/8000", 8: "PCMA/8000"}


def xml_attribute(value: str) -> str:
    """``value`` escaped for a double-quoted XML attribute, as SIPp needs it (``"`` becomes
    ``&quot;``; SIPp ignores single-quoted attributes)."""
    return escape(value, {'"': "&quot;"})


def scenario(name: str, body: str, *, doctype: bool = False) -> str:
    """A whole SIPp scenario document named ``name`` holding ``body`` (elements, each line
    ending in a newline)."""
    head = f"{XML_DECLARATION}\n" + (f"{DOCTYPE}\n" if doctype else "")
    return f'{head}<scenario name="{name}">\n{body}</scenario>\n'


def indented(text: str, indent: str = INDENT) -> str:
    """``text``'s lines each prefixed with ``indent``, without a final newline (a body
    that lines up with the indented header lines)."""
    return "\n".join(indent + line for line in text.rstrip("\n").split("\n"))


def sdp(user: str, payload_types: Sequence[int], extra_lines: Iterable[str] = (), *,
        telephone_event: int | None = None, events: str = "0-15", origin: str = "53655765 2353687637",
        session: str = "-", profile: str = "RTP/AVP") -> str:
    """An SDP body with one audio stream at SIPp's media address and port, ending in a newline.

    ``payload_types`` in the m= line, each with its rtpmap (``telephone_event`` is the one
    for RFC 4733 events, with ``a=fmtp:<pt> <events>``); then ``extra_lines`` (ptime, a
    direction, crypto, ...).  ``origin`` is the o= line's session id and version."""
    lines = [
        "v=0",
        f"o={user} {origin} IN IP[local_ip_type] [local_ip]",
        f"s={session}",
        "c=IN IP[media_ip_type] [media_ip]",
        "t=0 0",
        f"m=audio [media_port] {profile} " + " ".join(str(pt) for pt in payload_types),
    ]
    for pt in payload_types:
        encoding = "telephone-event/8000" if pt == telephone_event else STATIC_CODECS[pt]
        lines.append(f"a=rtpmap:{pt} {encoding}")
    if telephone_event is not None:
        lines.append(f"a=fmtp:{telephone_event} {events}")
    lines += extra_lines
    return "\n".join(lines) + "\n"


def send(lines: Iterable[str], body: str | None = None, *, retrans: bool = False, indent: str = INDENT) -> str:
    """One ``<send>`` element: the start line and headers ``lines``, an empty line, and
    ``body`` if given.  ``retrans``: retransmit every 500 ms until answered (UDP requests
    and 2xx to INVITE)."""
    text = "\n".join(indent + line for line in lines) + "\n"
    if body is not None:
        text += "\n" + body
    tag = '<send retrans="500">' if retrans else "<send>"
    return f"  {tag}\n    <![CDATA[\n{text}\n    ]]>\n  </send>\n"


def _content(content_type: str | None) -> list[str]:
    if content_type is None:
        return ["Content-Length: 0"]
    return [f"Content-Type: {content_type}", "Content-Length: [len]"]


# -- UAS side ----------------------------------------------------------------------------------

def uas_answer(status: str = "200 OK", sdp: str | None = None, *, headers: Sequence[str] = (AGENT_CONTACT,),
               to_tag: bool = True, retrans: bool | None = None, indent: str = INDENT) -> str:
    """A UAS's response to the last request: ``status`` (e.g. ``"180 Ringing"``), the
    request's Via, From, To (with the UAS's tag when ``to_tag``), Call-ID and CSeq, then
    ``headers``; with ``sdp`` an application/sdp body.  Retransmitted when ``retrans``
    (by default: a 2xx)."""
    lines = ["SIP/2.0 " + status, "[last_Via:]", "[last_From:]", "[last_To:]" + (UAS_TO_TAG if to_tag else ""),
             "[last_Call-ID:]", "[last_CSeq:]", *headers,
             *_content(None if sdp is None else "application/sdp")]
    if retrans is None:
        retrans = status.startswith("2")
    return send(lines, sdp, retrans=retrans, indent=indent)


def uas_bye_answer(indent: str = INDENT) -> str:
    """The UAS's 200 OK to a BYE (or any in-dialog request): no body, sent once."""
    return uas_answer("200 OK", headers=(), to_tag=False, retrans=False, indent=indent)


# -- UAC side ----------------------------------------------------------------------------------

def uac_from(display: str, user: str) -> str:
    """The UAC's From header line, with SIPp's per-call tag."""
    return f"From: {display} <sip:{user}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]"


def uac_invite(from_: str, contact_user: str, body: str, *, cseq: int = 1, authentication: bool = False,
               headers: Sequence[str] = (), indent: str = INDENT) -> str:
    """The UAC's initial INVITE to ``-s <service>`` at the remote host with an SDP ``body``;
    ``authentication``: answer the last challenge (``[authentication]``, SIPp's ``-au``/
    ``-ap``); ``headers`` go after Max-Forwards."""
    lines = [f"INVITE {SERVICE_URI} SIP/2.0", VIA, from_, f"To: <{SERVICE_URI}>", "Call-ID: [call_id]",
             f"CSeq: {cseq} INVITE", f"Contact: <sip:{contact_user}@[local_ip]:[local_port]>",
             *(["[authentication]"] if authentication else []), "Max-Forwards: 70", *headers,
             *_content("application/sdp")]
    return send(lines, body, retrans=True, indent=indent)


def uac_request(method: str, cseq: int, from_: str, *, uri: str = "[next_url]", via: str = VIA,
                to: str = "[last_To:]", routes: bool = True, content_type: str | None = None,
                body: str | None = None, retrans: bool = True, indent: str = INDENT) -> str:
    """An in-dialog request from the UAC (by default to the remote target along the route
    set the 2xx gave).  Without ``content_type`` it says ``Content-Length: 0``."""
    lines = [f"{method} {uri} SIP/2.0", via, from_, to, *(["[routes]"] if routes else []), "Call-ID: [call_id]",
             f"CSeq: {cseq} {method}", "Max-Forwards: 70", *_content(content_type)]
    return send(lines, body, retrans=retrans, indent=indent)


def uac_ack(from_: str, cseq: int = 1, **kwargs: object) -> str:
    """The UAC's ACK (never retransmitted); ``kwargs`` as for :func:`uac_request`."""
    return uac_request("ACK", cseq, from_, retrans=False, **kwargs)  # type: ignore[arg-type]


def uac_bye(from_: str, cseq: int, **kwargs: object) -> str:
    """The UAC's BYE (retransmitted until answered); ``kwargs`` as for :func:`uac_request`."""
    return uac_request("BYE", cseq, from_, **kwargs)  # type: ignore[arg-type]


def expect_responses(*optional: int) -> str:
    """``<recv>`` elements for provisional responses that may or may not come."""
    return "".join(f'  <recv response="{code}" optional="true"/>\n' for code in optional)


# -- running SIPp ------------------------------------------------------------------------------

def require_sipp() -> str:
    """The sipp executable; skips the test when SIPp is not installed."""
    sipp = sipp_path()
    if sipp is None:
        raise SkipTest("sipp is not installed (Debian package sip-tester)")
    return sipp


def udp_port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something is bound to UDP ``port`` on ``host`` (e.g. SIPp has started)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def finish(proc: subprocess.Popen[str], timeout: float) -> str:
    """Wait up to ``timeout`` seconds for ``proc`` (killed after that) and return its output."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def run_pair(case: SynchronousTestCase, sbc: RunningSbc, *, uac: Sequence[str], uas: Sequence[str],
             transport: str = "u1", calls: int = 1, timeout: int = 60, uac_ip: str = "127.0.0.1",
             cwd: Path | None = None, stop_sbc: bool = False) -> str:
    """Run a SIPp UAS and then a SIPp UAC toward ``sbc``'s SIP port, ``calls`` calls over
    ``transport`` (SIPp's ``u1``/``t1``), and check that both exit 0.

    ``uas``/``uac``: each side's scenario and own options (``-sf``/``-sn``, ``-p``, ``-s``,
    media options, ...); this adds the local address (``uac_ip`` for the UAC), ``-t``, ``-m``,
    ``-nostdin`` and ``-timeout <timeout>s -timeout_error``.  The UAC gets ``timeout`` + 30 s
    to finish, the UAS 30 s more.  ``stop_sbc``: stop the SBC before reading its log (the
    whole log, e.g. for checks on what it wrote).  Returns the failure detail (exit codes,
    the ends of both outputs, the SBC log's tail) for the caller's later checks."""
    sipp = require_sipp()
    common = ["-t", transport, "-m", str(calls), "-nostdin", "-timeout", f"{timeout}s", "-timeout_error"]
    uas_proc = subprocess.Popen(
        [sipp, *uas, "-i", "127.0.0.1", *common],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, cwd=cwd)
    case.addCleanup(lambda: uas_proc.poll() is None and uas_proc.kill())
    uac_done = subprocess.run(
        [sipp, *uac, "-i", uac_ip, *common, f"127.0.0.1:{sbc.sip_port}"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout + 30, cwd=cwd)
    uas_out = finish(uas_proc, 30)
    if stop_sbc:
        sbc.stop()
    detail = (f"UAC exit {uac_done.returncode}\n{uac_done.stdout[-2500:]}\n{uac_done.stderr[-1500:]}\n"
              f"UAS exit {uas_proc.returncode}\n{uas_out[-2500:]}\nSBC log:\n{sbc.log_text()[-3000:]}")
    case.assertEqual(uac_done.returncode, 0, detail)
    case.assertEqual(uas_proc.returncode, 0, detail)
    return detail


# -- SIPp sides that log to a work directory ---------------------------------------------------

def tail(path: Path, limit: int = 3000) -> str:
    """The last ``limit`` characters of the file at ``path``, or ``(none)``."""
    try:
        return path.read_text(errors="replace")[-limit:]
    except FileNotFoundError:
        return "(none)"


def start_logged(case: SynchronousTestCase, sipp_exe: str, work: Path, name: str, args: Sequence[str], *,
                 remote: str | None = None, listen_port: int | None = None, ip: str = "127.0.0.1",
                 timeout: int = 30) -> subprocess.Popen[bytes]:
    """Start SIPp on the scenario ``work/<name>.xml`` for one call, with ``args`` (ports,
    transport, ...) and, for a UAC, the ``remote`` host:port.  Its output goes to
    ``<name>.out``, its errors to ``<name>_errors.log`` and every message it sends or
    receives to ``<name>_messages.log`` (see :func:`side_report`).  ``listen_port``: wait
    (10 s at most) until SIPp has bound that UDP port, so that a peer started next finds it."""
    out = open(work / f"{name}.out", "w")
    case.addCleanup(out.close)
    proc = subprocess.Popen(
        [sipp_exe, "-sf", str(work / f"{name}.xml"), *args, "-i", ip, "-m", "1", "-nostdin",
         "-timeout", f"{timeout}s", "-timeout_error", "-trace_err", "-trace_msg",
         "-error_file", str(work / f"{name}_errors.log"), "-message_file", str(work / f"{name}_messages.log"),
         *([remote] if remote else [])],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=work)
    case.addCleanup(lambda: proc.poll() is None and proc.kill())
    if listen_port is not None:
        deadline = time.monotonic() + 10
        while not udp_port_taken(listen_port, ip) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    return proc


def wait_all(*procs: tuple[subprocess.Popen[bytes], float]) -> None:
    """Wait for each process in turn, up to its own limit in seconds; kill it after that."""
    for proc, limit in procs:
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def side_report(work: Path, name: str, label: str, proc: subprocess.Popen[bytes]) -> str:
    """What a failure message says about a :func:`start_logged` side: its exit status, the
    end of its output and of its error log."""
    return (f"== {label} exit {proc.returncode}\n{tail(work / f'{name}.out', 1200)}\n"
            f"== {label} errors\n{tail(work / f'{name}_errors.log')}\n")
