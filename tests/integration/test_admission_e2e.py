"""
Admission at the edge, end to end over loopback against a real SBC process:

* SIPp calling from 127.0.0.1 (inside the trunk's allow) completes its calls;
* SIPp bound to 127.0.0.2 (outside every allowlist) gets nothing back: its OPTIONS and its
  INVITE time out, and the SBC counts and logs ``source-not-allowed``;
* OPTIONS and SIPp calls from ::1 (allowed) are answered; with ::1 outside the allowlist
  OPTIONS gets nothing;
* a TCP connection from 127.0.0.2 is closed at once, before anything is sent; a TLS one
  before the handshake;
* with ``max_calls_per_source = 2`` a third concurrent call from 127.0.0.1 gets 503;
* a junk flood from one allowed source (127.0.0.3) gets it banned while SIPp's calls from
  127.0.0.1 all complete.

Only processes started here are stopped, by their own pid.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from .harness import REPO, RunningSbc, free_port, options_request, sipp_path, status_of, udp_exchange

NO_MEDIA = "\n[media]\nenabled = false\n"


def udp_from(source: str, data: bytes, port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bytes | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.sendto(data, (host, port))
        try:
            return s.recvfrom(70000)[0]
        except (socket.timeout, ConnectionRefusedError):
            return None


def need_sipp() -> str:
    sipp = sipp_path()
    if sipp is None:
        raise SkipTest("sipp is not installed (Debian package sip-tester)")
    return sipp


class AdmissionEndToEnd(SynchronousTestCase):
    def start(self, **kw: object) -> RunningSbc:
        sbc = RunningSbc(**kw).start()  # type: ignore[arg-type]
        self.addCleanup(sbc.stop)
        return sbc

    def sipp_calls(self, sbc_port: int, agent_port: int, calls: int, rate: int, source: str = "127.0.0.1",
                   timeout: str = "60s", recv_timeout: str = "10000") -> tuple[subprocess.CompletedProcess[str], str]:
        sipp = need_sipp()
        uas = subprocess.Popen(
            [sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(agent_port), "-m", str(calls), "-nostdin",
             "-timeout", timeout, "-timeout_error"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: uas.poll() is None and uas.kill())
        uac = subprocess.run(
            [sipp, "-sn", "uac", "-i", source, "-s", "agent", "-m", str(calls), "-r", str(rate), "-nostdin",
             "-timeout", timeout, "-timeout_error", "-recv_timeout", recv_timeout, f"127.0.0.1:{sbc_port}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        try:
            uas_out, _ = uas.communicate(timeout=5 if uac.returncode else 30)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas_out, _ = uas.communicate()
        return uac, uas_out

    def test_allowed_source_calls_and_outsider_gets_nothing(self) -> None:
        need_sipp()
        agent_port = free_port()
        sbc = self.start(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}", extra_toml=NO_MEDIA)
        uac, uas_out = self.sipp_calls(sbc.sip_port, agent_port, 10, 10)
        detail = f"{uac.stdout[-2000:]}\n{uas_out[-1500:]}\n{sbc.log_text()[-2000:]}"
        self.assertEqual(uac.returncode, 0, detail)
        # SIPp from 127.0.0.2: its INVITE gets nothing at all (no 100, no final) and times out.
        outsider, _ = self.sipp_calls(sbc.sip_port, free_port(), 1, 1, source="127.0.0.2", timeout="6s",
                                      recv_timeout="3000")
        self.assertNotEqual(outsider.returncode, 0, outsider.stdout[-2000:])
        self.assertRegex(outsider.stdout, r"Failed call\s+\|\s+\d+\s+\|\s+1")
        self.assertIsNone(udp_from("127.0.0.2", options_request(sbc.sip_port), sbc.sip_port))
        counters = sbc.health()["counters"]
        self.assertGreaterEqual(counters.get("source-not-allowed", 0), 2)
        self.assertIn("source-not-allowed from udp:127.0.0.2", sbc.log_text())
        # The allowed source is still answered.
        self.assertEqual(status_of(udp_from("127.0.0.1", options_request(sbc.sip_port), sbc.sip_port)), 200)

    def test_ipv6(self) -> None:
        agent_port = free_port()
        sbc = self.start(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}", extra_toml=NO_MEDIA)
        reply = udp_exchange(options_request(sbc.sip_port, host="::1"), sbc.sip_port, host="::1")
        self.assertEqual(status_of(reply), 200)
        if sipp_path() is not None:  # SIPp calling from ::1 completes its calls
            uas = subprocess.Popen(
                [need_sipp(), "-sn", "uas", "-i", "127.0.0.1", "-p", str(agent_port), "-m", "3", "-nostdin",
                 "-timeout", "30s", "-timeout_error"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
            self.addCleanup(lambda: uas.poll() is None and uas.kill())
            uac = subprocess.run(
                [need_sipp(), "-sn", "uac", "-i", "::1", "-s", "agent", "-m", "3", "-r", "3", "-nostdin",
                 "-timeout", "30s", "-timeout_error", f"[::1]:{sbc.sip_port}"],
                capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
            uas.communicate(timeout=30)
            self.assertEqual(uac.returncode, 0, uac.stdout[-2000:] + sbc.log_text()[-2000:])
            self.assertRegex(uac.stdout, r"Successful call\s+\|\s+\d+\s+\|\s+3")
        v4_only = self.start(
            trunk_toml='[[trunk]]\nname = "v4"\nallow = ["127.0.0.1/32"]\nagent_uri = "sip:{user}@127.0.0.1:5090"\n',
            extra_toml=NO_MEDIA)
        self.assertIsNone(udp_exchange(options_request(v4_only.sip_port, host="::1"), v4_only.sip_port, host="::1"))
        self.assertEqual(v4_only.health()["counters"].get("source-not-allowed"), 1)
        self.assertIn("source-not-allowed from udp:::1", v4_only.log_text())

    def test_tcp_from_outsider_closed_at_once(self) -> None:
        sbc = self.start(extra_toml=NO_MEDIA)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.2", 0))
            s.settimeout(3.0)
            s.connect(("127.0.0.1", sbc.sip_port))
            started = time.monotonic()
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            self.assertEqual(data, b"")  # closed, nothing said
            self.assertLess(time.monotonic() - started, 2.0)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # an allowed source stays connected
            s.bind(("127.0.0.1", 0))
            s.settimeout(3.0)
            s.connect(("127.0.0.1", sbc.sip_port))
            s.sendall(options_request(sbc.sip_port, transport="TCP"))
            self.assertTrue(s.recv(100).startswith(b"SIP/2.0 200"))
        self.assertEqual(sbc.health()["counters"].get("source-not-allowed"), 1)

    def test_tls_from_outsider_closed_before_the_handshake(self) -> None:
        import ssl
        import tempfile

        from .test_tls import make_self_signed

        sbc = self.start(tls=make_self_signed(Path(tempfile.mkdtemp(prefix="sbc-adm-tls-"))), extra_toml=NO_MEDIA)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as raw:
            raw.bind(("127.0.0.2", 0))
            raw.settimeout(3.0)
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                # The SBC resets the connection at once: on a busy machine the reset can
                # reach the socket before connect() has returned.
                raw.connect(("127.0.0.1", sbc.tls_port))
                context.wrap_socket(raw, server_hostname="sbc.test.invalid").recv(10)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as raw:  # an allowed source completes it
            raw.bind(("127.0.0.1", 0))
            raw.settimeout(5.0)
            raw.connect(("127.0.0.1", sbc.tls_port))
            with context.wrap_socket(raw, server_hostname="sbc.test.invalid") as tls:
                tls.sendall(options_request(sbc.tls_port, transport="TLS"))
                self.assertTrue(tls.recv(100).startswith(b"SIP/2.0 200"))
        self.assertEqual(sbc.health()["counters"].get("source-not-allowed"), 1)
        self.assertIn("source-not-allowed from tls:127.0.0.2", sbc.log_text())

    def test_flood_from_one_source_is_banned_while_calls_complete(self) -> None:
        need_sipp()
        agent_port = free_port()
        sbc = self.start(
            trunk_toml=('[[trunk]]\nname = "local"\nallow = ["127.0.0.1/32", "127.0.0.3/32", "::1/128"]\n'
                        f'agent_uri = "sip:{{user}}@127.0.0.1:{agent_port}"\n'),
            extra_toml=NO_MEDIA + "[security]\nrequest_rate = 50\nrequest_burst = 100\nban_threshold = 100\n"
                                  "ban_window = 10\nban_duration = 120\n")
        flood = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "flood.py"), "send", "--target", f"127.0.0.1:{sbc.sip_port}",
             "--source", "127.0.0.3", "--pps", "5000", "--seconds", "6"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: flood.poll() is None and flood.kill())
        time.sleep(0.5)
        uac, uas_out = self.sipp_calls(sbc.sip_port, agent_port, 40, 10)
        flood_out, _ = flood.communicate(timeout=30)
        log = sbc.log_text()
        self.assertEqual(uac.returncode, 0, f"{uac.stdout[-2000:]}\n{uas_out[-1500:]}\n{log[-2000:]}")
        self.assertRegex(uac.stdout, r"Successful call\s+\|\s+\d+\s+\|\s+40")
        counters = sbc.health()["counters"]
        self.assertGreater(counters.get("banned", 0), 1000, counters)
        # The junk INVITEs within the bucket were answered 400 (rejected), the rest dropped
        # (rate-limited): 100 refusals of either kind banned the source.
        self.assertGreaterEqual(counters.get("rate-limited", 0) + counters.get("rejected", 0), 100, counters)
        self.assertIn("banned 127.0.0.3", log)
        self.assertNotIn("banned 127.0.0.1", log)
        self.assertIn("sent", flood_out)
        # Still banned after the flood: dropped before parsing, even a good OPTIONS.
        self.assertIsNone(udp_from("127.0.0.3", options_request(sbc.sip_port), sbc.sip_port))
        self.assertEqual(status_of(udp_from("127.0.0.1", options_request(sbc.sip_port), sbc.sip_port)), 200)

    def test_calls_per_source_cap(self) -> None:
        sipp = need_sipp()
        agent_port = free_port()
        sbc = self.start(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}",
                         extra_toml=NO_MEDIA + "[security]\nmax_calls_per_source = 2\n")
        uas = subprocess.Popen(
            [sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(agent_port), "-m", "2", "-nostdin", "-timeout", "30s"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: uas.poll() is None and uas.kill())
        # Three calls held 3 s each, started within 0.3 s: the third finds two in progress.
        uac = subprocess.run(
            [sipp, "-sn", "uac", "-i", "127.0.0.1", "-s", "agent", "-m", "3", "-r", "10", "-d", "3000", "-nostdin",
             "-timeout", "30s", "-trace_msg", "-message_file", "/dev/stdout", f"127.0.0.1:{sbc.sip_port}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, cwd=sbc.dir)
        uas.communicate(timeout=30)
        self.assertRegex(uac.stdout, r"Successful call\s+\|\s+\d+\s+\|\s+2")
        self.assertRegex(uac.stdout, r"Failed call\s+\|\s+\d+\s+\|\s+1")
        self.assertIn("SIP/2.0 503 Service Unavailable", uac.stdout)
        self.assertEqual(sbc.health()["counters"].get("rate-limited"), 1)
        self.assertIn("security.max_calls_per_source", sbc.log_text())

    def test_metrics_and_explain(self) -> None:
        import urllib.request

        sbc = self.start(extra_toml=NO_MEDIA)
        udp_from("127.0.0.2", options_request(sbc.sip_port), sbc.sip_port, timeout=0.3)
        deadline = time.monotonic() + 5
        text = ""
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{sbc.admin_port}/metrics", timeout=5) as r:
                text = r.read().decode()
            if 'sbc_admission_refusals_total{reason="source-not-allowed"} 1.0' in text:
                break
            time.sleep(0.2)
        self.assertIn('sbc_admission_refusals_total{reason="source-not-allowed"} 1.0', text)
        out = subprocess.run([sys.executable, "-m", "sbc", "explain", "--config", str(sbc.config),
                              "--source", "127.0.0.2"], capture_output=True, text=True, cwd=REPO, timeout=60)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("source-not-allowed", out.stdout)
        out = subprocess.run([sys.executable, "-m", "sbc", "explain", "--config", str(sbc.config),
                              "--source", "::1"], capture_output=True, text=True, cwd=REPO, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("ADMITTED by trunk local", out.stdout)
