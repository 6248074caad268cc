"""
Calls over TLS end to end, loopback only.

* Outbound: the SBC calls an agent host that listens on TLS only (a small SIP UAS in a thread
  of this test, Python's ssl).  The SBC verifies the agent's certificate against ``[tls] ca``
  and its name with service-identity, and presents ``[tls] client_certificate``, which the
  agent requires.  A certificate for another name fails the call cleanly: 503 to the caller,
  no INVITE reaches the agent.
* Inbound: Debian's SIPp has no TLS, so Kamailio (with its tls module) sits in front of a SIPp
  UAC: SIPp -> Kamailio over UDP -> the SBC over TLS, with Kamailio's client certificate
  (the trunk requires mutual TLS) -> a SIPp UAS agent host over UDP.  A second call stays up
  while the SBC reloads its certificate on SIGHUP.  Skipped when kamailio or sipp is missing.
* Trunk matching by certificate: an INVITE over TLS from an address outside the trunk's
  ``allow`` belongs to the trunk when the client certificate (verified by ``[tls] ca``)
  carries one of its ``match_tls_names``; another name or an unverified certificate: 403.

Only processes started here are stopped, by their pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ..tls_pki import Issued, issue, make_ca
from .harness import FQDN, RunningSbc, free_port, read_sip_message, sipp_path, status_of

SDP = ("v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def _header(message: bytes, name: str) -> str | None:
    for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode(errors="replace")
    return None


def _reply(request: bytes, status: str, *, to_tag: str = "agent1", extra: str = "", body: str = "") -> bytes:
    lines = [f"SIP/2.0 {status}"]
    for line in request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name = line.partition(b":")[0].strip().lower()
        if name in (b"via", b"from", b"call-id", b"cseq"):
            lines.append(line.decode(errors="replace"))
        elif name == b"to":
            to = line.decode(errors="replace")
            lines.append(to if ";tag=" in to else f"{to};tag={to_tag}")
    if extra:
        lines.append(extra)
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class TlsAgent:
    """A SIP UAS on TLS only: answers INVITE with 200 (SDP), BYE and OPTIONS with 200; asks for
    a client certificate signed by ``client_ca``.  Records what it received."""

    def __init__(self, cert: tuple[Path, Path], client_ca: Path) -> None:
        self.port = free_port(socket.SOCK_STREAM)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert)
        self.ctx.load_verify_locations(str(client_ca))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.received: list[bytes] = []
        self.client_names: list[str] = []
        self.handshake_errors: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._connection, args=(raw,), daemon=True).start()

    def _connection(self, raw: socket.socket) -> None:
        raw.settimeout(5)
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.handshake_errors.append(str(e))
            raw.close()
            return
        peer = conn.getpeercert() or {}
        self.client_names += [v for k, v in peer.get("subjectAltName", ()) if k == "DNS"]
        buf = bytearray()
        with conn:
            while not self._stop.is_set():
                try:
                    msg = read_sip_message(conn, buf, 0.5)
                except (ssl.SSLError, OSError):
                    return
                if msg is None:
                    if conn.fileno() < 0:
                        return
                    continue
                self.received.append(msg)
                method = msg.split(b" ", 1)[0]
                if method == b"INVITE":
                    contact = f"Contact: <sip:agent@127.0.0.1:{self.port};transport=tls>\r\nContent-Type: application/sdp"
                    body = SDP.replace("o=pbx", "o=agent").replace("40000", "40002")
                    conn.sendall(_reply(msg, "200 OK", extra=contact, body=body))
                elif method in (b"BYE", b"OPTIONS", b"CANCEL"):
                    conn.sendall(_reply(msg, "200 OK"))

    def methods(self) -> list[str]:
        return [m.split(b" ", 1)[0].decode() for m in self.received]


class UdpCaller:
    """A UAC over UDP (playing the PBX): INVITE, then ACK and BYE when answered."""

    def __init__(self, sbc_port: int) -> None:
        self.sbc_port = sbc_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def _send(self, text: str) -> None:
        self.sock.sendto(text.encode(), ("127.0.0.1", self.sbc_port))

    def _recv_final(self, cseq: str, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                return None
            status = status_of(data)
            if status is not None and status >= 200 and (_header(data, "CSeq") or "").endswith(cseq):
                return data
        return None

    def call(self, user: str = "agent", call_id: str = "tls-call-1", hold: float = 0.2,
             timeout: float = 20.0) -> tuple[int | None, int | None]:
        """(final status of the INVITE, final status of the BYE or None)."""
        h = f"127.0.0.1:{self.port}"
        common = (f"From: <sip:pbx@127.0.0.1>;tag=pbx1\r\nCall-ID: {call_id}\r\n"
                  f"Max-Forwards: 70\r\nContact: <sip:pbx@{h}>\r\n")
        self._send(f"INVITE sip:{user}@127.0.0.1:{self.sbc_port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {h};branch=z9hG4bK-{call_id}-1;rport\r\n{common}"
                   f"To: <sip:{user}@127.0.0.1>\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
                   f"Content-Length: {len(SDP)}\r\n\r\n{SDP}")
        final = self._recv_final("INVITE", timeout)
        status = status_of(final)
        if final is None or status is None or status >= 300:
            if final is not None:  # ACK for a non-2xx goes to the same transaction
                to = _header(final, "To")
                self._send(f"ACK sip:{user}@127.0.0.1:{self.sbc_port} SIP/2.0\r\n"
                           f"Via: SIP/2.0/UDP {h};branch=z9hG4bK-{call_id}-1;rport\r\n{common}"
                           f"To: {to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
            return status, None
        to = _header(final, "To")
        self._send(f"ACK sip:{user}@127.0.0.1:{self.sbc_port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {h};branch=z9hG4bK-{call_id}-2;rport\r\n{common}"
                   f"To: {to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
        time.sleep(hold)
        self._send(f"BYE sip:{user}@127.0.0.1:{self.sbc_port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {h};branch=z9hG4bK-{call_id}-3;rport\r\n{common}"
                   f"To: {to}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
        return status, status_of(self._recv_final("BYE", timeout))


class _Pki:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sbc-tls-call-"))
        self.ca = make_ca("Agent CA")
        self.ca_path = self.dir / "ca.pem"
        self.ca_path.write_bytes(self.ca.cert_pem)

    def write(self, issued: Issued, stem: str) -> tuple[Path, Path]:
        return issued.write(self.dir, stem)


class OutboundTls(SynchronousTestCase):
    def setUp(self) -> None:
        self.pki = _Pki()
        self.addCleanup(shutil.rmtree, self.pki.dir, True)
        self.client = self.pki.write(issue(self.pki.ca, FQDN), "sbc-client")

    def start(self, agent_cert: Issued) -> tuple[RunningSbc, TlsAgent]:
        agent = TlsAgent(self.pki.write(agent_cert, "agent"), self.pki.ca_path)
        self.addCleanup(agent.close)
        sbc = RunningSbc(
            agent_uri=f"sip:{{user}}@127.0.0.1:{agent.port};transport=tls",
            extra_toml=(f'[tls]\nca = "{self.pki.ca_path}"\nclient_certificate = "{self.client[0]}"\n'
                        f'client_private_key = "{self.client[1]}"\n'))
        sbc.start()
        self.addCleanup(sbc.stop)
        return sbc, agent

    def test_call_to_tls_agent(self) -> None:
        sbc, agent = self.start(issue(self.pki.ca, "agent.test.invalid", ips=("127.0.0.1",)))
        caller = UdpCaller(sbc.sip_port)
        self.addCleanup(caller.close)
        invite, bye = caller.call(call_id="tls-out-ok")
        detail = f"agent got {agent.methods()}, errors {agent.handshake_errors}\n{sbc.log_text()[-3000:]}"
        self.assertEqual((invite, bye), (200, 200), detail)
        deadline = time.monotonic() + 5  # the SBC answers the caller's BYE, then sends its own
        while time.monotonic() < deadline and "BYE" not in agent.methods():
            time.sleep(0.05)
        self.assertEqual(agent.methods()[:3], ["INVITE", "ACK", "BYE"], detail)
        self.assertIn(b"SIP/2.0/TLS", agent.received[0])
        self.assertEqual(agent.client_names, [FQDN])  # our client certificate was presented
        # A second call reuses the connection.
        self.assertEqual(caller.call(call_id="tls-out-ok-2")[0], 200, detail)
        self.assertEqual(len(agent.client_names), 1, detail)

    def test_wrong_name_fails_cleanly(self) -> None:
        sbc, agent = self.start(issue(self.pki.ca, "someone-else.test.invalid"))
        caller = UdpCaller(sbc.sip_port)
        self.addCleanup(caller.close)
        started = time.monotonic()
        invite, _ = caller.call(call_id="tls-out-wrong-name", timeout=15)
        detail = sbc.log_text()[-3000:]
        self.assertIn(invite, (480, 503), detail)
        self.assertLess(time.monotonic() - started, 10, "the call waited for a SIP timeout")
        self.assertNotIn("INVITE", agent.methods())
        self.assertEqual(sbc.health()["counters"].get("tls-connect-failed", 0) >= 1, True, detail)
        self.assertIn("TLS connection to 127.0.0.1", detail)

    def test_untrusted_agent_fails_cleanly(self) -> None:
        sbc, agent = self.start(issue(make_ca("Unknown CA"), "agent.test.invalid", ips=("127.0.0.1",)))
        caller = UdpCaller(sbc.sip_port)
        self.addCleanup(caller.close)
        invite, _ = caller.call(call_id="tls-out-untrusted", timeout=15)
        self.assertIn(invite, (480, 503), sbc.log_text()[-3000:])
        self.assertNotIn("INVITE", agent.methods())


KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
tcp_children=1
auto_aliases=no
enable_tls=yes
listen=udp:127.0.0.1:{udp_port}
listen=tls:127.0.0.1:{tls_port}
mpath="{modules}"
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "maxfwd.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "siputils.so"
modparam("tls", "config", "{tls_cfg}")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    # Everything SIPp sends (over UDP) goes to the SBC over TLS; what the SBC sends goes
    # where its Request-URI points (SIPp's Contact, over UDP).  No Record-Route: SIPp's
    # built-in scenarios send in-dialog requests to Kamailio anyway.
    if ($pr == "udp") {{
        $du = "sip:127.0.0.1:{sbc_tls_port};transport=tls";
    }}
    t_relay();
}}
"""

TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
certificate = {cert}
private_key = {key}

[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
ca_list = {server_ca}
certificate = {cert}
private_key = {key}
server_name = {fqdn}
"""


def _kamailio_modules() -> str | None:
    for d in ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/aarch64-linux-gnu/kamailio/modules",
              "/usr/lib/kamailio/modules", "/usr/lib64/kamailio/modules"):
        if Path(d, "tls.so").exists():
            return d
    return None


class KamailioFront(SynchronousTestCase):
    """SIPp (UDP) -> Kamailio -> TLS with a client certificate -> the SBC -> SIPp agent (UDP)."""

    def setUp(self) -> None:
        kamailio = shutil.which("kamailio")
        modules = _kamailio_modules()
        sipp = sipp_path()
        if kamailio is None or modules is None:
            raise SkipTest("kamailio with its tls module is not installed (Debian: kamailio kamailio-tls-modules)")
        if sipp is None:
            raise SkipTest("sipp is not installed (Debian package sip-tester)")
        self.sipp = sipp
        self.pki = _Pki()
        self.addCleanup(shutil.rmtree, self.pki.dir, True)
        server_ca = make_ca("SBC server CA")
        server_ca_path = self.pki.dir / "server-ca.pem"
        server_ca_path.write_bytes(server_ca.cert_pem)
        self.server_ca = server_ca
        self.sbc_cert = self.pki.write(issue(server_ca, FQDN, cn="first"), "sbc")
        pbx_cert = self.pki.write(issue(self.pki.ca, "pbx.test.invalid"), "pbx")
        self.agent_port = free_port()
        self.sbc = RunningSbc(tls=self.sbc_cert, trunk_toml=(
            '[[trunk]]\nname = "local"\nallow = ["127.0.0.1/32"]\n'
            f'agent_uri = "sip:{{user}}@127.0.0.1:{self.agent_port}"\n'
            f'tls_ca = "{self.pki.ca_path}"\nmatch_tls_names = ["pbx.test.invalid"]\n\n'))
        self.sbc.start()
        self.addCleanup(self.sbc.stop)
        assert self.sbc.tls_port is not None
        self.kam_udp = free_port()
        kam_tls = free_port(socket.SOCK_STREAM)
        tls_cfg = self.pki.dir / "tls.cfg"
        tls_cfg.write_text(TLS_CFG.format(cert=pbx_cert[0], key=pbx_cert[1], server_ca=server_ca_path, fqdn=FQDN))
        cfg = self.pki.dir / "kamailio.cfg"
        cfg.write_text(KAMAILIO_CFG.format(udp_port=self.kam_udp, tls_port=kam_tls, modules=modules,
                                           tls_cfg=tls_cfg, sbc_tls_port=self.sbc.tls_port))
        self.kam_log = self.pki.dir / "kamailio.log"
        with open(self.kam_log, "wb") as log:
            self.kam = subprocess.Popen(
                [kamailio, "-f", str(cfg), "-DD", "-E", "-m", "32", "-M", "8", "-Y", str(self.pki.dir),
                 "-w", str(self.pki.dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.addCleanup(self._stop_kamailio)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not self._kamailio_up():
            if self.kam.poll() is not None:
                self.fail("kamailio exited:\n" + self.kam_log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)

    def _kamailio_up(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", self.kam_udp))
            except OSError:
                return True  # kamailio holds the port
        return False

    def _stop_kamailio(self) -> None:
        if self.kam.poll() is None:
            os.kill(self.kam.pid, signal.SIGTERM)
            try:
                self.kam.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.kam.pid, signal.SIGKILL)
                self.kam.wait(10)

    def run_calls(self, calls: int, duration_ms: int, during: "object | None" = None) -> str:
        uas = subprocess.Popen(
            [self.sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(self.agent_port), "-m", str(calls),
             "-nostdin", "-timeout", "60s", "-timeout_error"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: uas.poll() is None and uas.kill())
        uac = subprocess.Popen(
            [self.sipp, "-sn", "uac", "-i", "127.0.0.1", "-p", str(free_port()), "-s", "agent", "-m", str(calls), "-r", "5",
             "-d", str(duration_ms), "-nostdin", "-timeout", "60s", "-timeout_error", "-recv_timeout", "10000",
             f"127.0.0.1:{self.kam_udp}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: uac.poll() is None and uac.kill())
        if callable(during):
            during()
        try:
            uac_out, _ = uac.communicate(timeout=90)
            uas_out, _ = uas.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            uac.kill()
            uas.kill()
            uac_out, _ = uac.communicate()
            uas_out, _ = uas.communicate()
        detail = (f"UAC exit {uac.returncode}\n{uac_out[-2000:]}\nUAS exit {uas.returncode}\n{uas_out[-2000:]}\n"
                  f"kamailio:\n{self.kam_log.read_text(errors='replace')[-2500:]}\nSBC:\n{self.sbc.log_text()[-3000:]}")
        self.assertEqual(uac.returncode, 0, detail)
        self.assertEqual(uas.returncode, 0, detail)
        return detail

    def test_calls_over_mutual_tls(self) -> None:
        self.run_calls(3, 200)
        health = self.sbc.health()
        self.assertEqual(health["counters"].get("tls-client-refused", 0), 0)

    def test_call_survives_certificate_reload(self) -> None:
        second = issue(self.server_ca, FQDN, cn="second")
        cert, key = self.sbc_cert
        assert self.sbc.proc is not None
        sbc = self.sbc

        def reload_mid_call() -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not sbc.health()["calls"]:
                time.sleep(0.1)
            self.assertEqual(sbc.health()["calls"], 1, "the call did not start")
            cert.write_bytes(second.cert_pem)
            key.write_bytes(second.key_pem)
            assert sbc.proc is not None
            os.kill(sbc.proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "TLS certificates reloaded" not in sbc.log_text():
                time.sleep(0.1)

        detail = self.run_calls(1, 4000, during=reload_mid_call)
        self.assertIn("TLS certificates reloaded", self.sbc.log_text(), detail)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        # New handshakes get the new certificate (the old connection carried the call through).
        assert self.sbc.tls_port is not None
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.sbc.tls_port), timeout=5),
                             server_hostname=FQDN) as s:
            der = s.getpeercert(binary_form=True)
        from cryptography import x509

        assert der is not None
        self.assertIn("CN=second", x509.load_der_x509_certificate(der).subject.rfc4514_string())


class NamedCertificate(SynchronousTestCase):
    """``match_tls_names`` in trunk matching: a TLS client whose certificate (verified by
    ``[tls] ca``) carries the trunk's name is that trunk's, whatever its address; another
    name gets 403 (no trunk)."""

    def setUp(self) -> None:
        self.pki = _Pki()
        self.addCleanup(shutil.rmtree, self.pki.dir, True)
        self.agent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.agent.bind(("127.0.0.1", 0))
        self.addCleanup(self.agent.close)
        agent_port = self.agent.getsockname()[1]
        self.sbc = RunningSbc(tls=self.pki.write(issue(self.pki.ca, FQDN), "sbc"), trunk_toml=(
            '[[trunk]]\nname = "partner"\nallow = ["192.0.2.0/24"]\n'
            f'agent_uri = "sip:{{user}}@127.0.0.1:{agent_port}"\nmatch_tls_names = ["pbx.partner.test.invalid"]\n\n'
            f'[tls]\nca = "{self.pki.ca_path}"\n\n'))
        self.sbc.start()
        self.addCleanup(self.sbc.stop)

    def invite_over_tls(self, cert: Issued, call_id: str) -> tuple[int | None, bytes | None]:
        """(final status seen by the caller within 3 s or None, the INVITE the agent got)."""
        cert_path, key_path = self.pki.write(cert, call_id)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(cert_path, key_path)
        assert self.sbc.tls_port is not None
        port = self.sbc.tls_port
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname=FQDN) as s:
            local = s.getsockname()[1]
            s.sendall((f"INVITE sip:agent@127.0.0.1:{port};transport=tls SIP/2.0\r\n"
                       f"Via: SIP/2.0/TLS 127.0.0.1:{local};branch=z9hG4bK-{call_id}\r\nMax-Forwards: 70\r\n"
                       f"From: <sip:pbx@partner.test.invalid>;tag=p1\r\nTo: <sip:agent@127.0.0.1>\r\n"
                       f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
                       f"Contact: <sip:pbx@127.0.0.1:{local};transport=tls>\r\nContent-Type: application/sdp\r\n"
                       f"Content-Length: {len(SDP)}\r\n\r\n{SDP}").encode())
            buf = bytearray()
            final = None
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                msg = read_sip_message(s, buf, max(0.05, deadline - time.monotonic()))
                if msg is None:
                    break
                status = status_of(msg)
                if status is not None and status >= 200:
                    final = status
                    break
                if status == 100:
                    break  # the call went on; the agent tells where
            self.agent.settimeout(3)
            try:
                got = self.agent.recv(65535)
            except socket.timeout:
                got = None
        return final, got

    def test_named_certificate_picks_the_trunk(self) -> None:
        final, got = self.invite_over_tls(issue(self.pki.ca, "pbx.partner.test.invalid"), "named-ok")
        self.assertIsNotNone(got, self.sbc.log_text()[-3000:])
        assert got is not None
        self.assertTrue(got.startswith(b"INVITE sip:agent@127.0.0.1"), got[:200])
        self.assertNotEqual(final, 403)

    def test_other_name_matches_no_trunk(self) -> None:
        final, got = self.invite_over_tls(issue(self.pki.ca, "someone.test.invalid"), "named-other")
        self.assertEqual(final, 403, self.sbc.log_text()[-3000:])
        self.assertIsNone(got)

    def test_unverified_certificate_matches_no_trunk(self) -> None:
        forged = issue(make_ca("Forger"), "pbx.partner.test.invalid")
        final, got = self.invite_over_tls(forged, "named-forged")
        self.assertEqual(final, 403, self.sbc.log_text()[-3000:])
        self.assertIsNone(got)
