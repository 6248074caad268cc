"""
Lifecycle of the real SBC process: SIGHUP reloads the trunks (and an invalid file is
refused with the old configuration kept); SIGTERM with a call held by SIPp ends the call on
both legs and the process within the drain timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from .harness import RunningSbc, free_port, options_request, sipp_path, status_of, udp_exchange

# A registrar: challenges the first REGISTER (MD5 digest), checks the answer, grants 600 s,
# then accepts the de-registration (expires=0) that comes at shutdown.
REGISTRAR_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registrar">
  <recv request="REGISTER" />
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg1
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="sipp.test", nonce="n0nce[pid]", algorithm=MD5, qop="auth"
Content-Length: 0

]]></send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="authvalid" username="alice" password="s3cret" />
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="good" />
  <send next="end"><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg1
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="good" />
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg1
[last_Call-ID:]
[last_CSeq:]
[last_Contact:]
Expires: 600
Content-Length: 0

]]></send>
  <recv request="REGISTER" timeout="60000" />
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg1
[last_Call-ID:]
[last_CSeq:]
Expires: 0
Content-Length: 0

]]></send>
  <label id="end" />
</scenario>
"""

DRAIN = 2.0


def invite(port: int, host: str, call: str) -> bytes:
    h = f"[{host}]" if ":" in host else host
    return (
        f"INVITE sip:agent@{h}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {h}:9;branch=z9hG4bK-lc-{call}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:pbx@test.invalid>;tag=lc1\r\n"
        f"To: <sip:agent@{h}:{port}>\r\n"
        f"Call-ID: lc-{call}@test\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:pbx@{h}:9>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def health(sbc: RunningSbc) -> dict:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sbc.admin_port}/healthz", timeout=2) as reply:
            return json.loads(reply.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as e:
        return json.loads(e.read())  # type: ignore[no-any-return]
    except OSError:
        return {}


class Reload(SynchronousTestCase):
    def test_sighup_swaps_trunks_and_refuses_a_bad_file(self) -> None:
        sbc = RunningSbc().start()
        self.addCleanup(sbc.stop)
        assert sbc.proc is not None
        original = sbc.config.read_text()
        # The new configuration admits only 127.0.0.1: ::1 is no longer in any allowlist, so its
        # packets are dropped before parsing (no answer; counted as source-not-allowed).
        sbc.config.write_text(
            original.replace('name = "local"', 'name = "reloaded"').replace(', "::1/128"', "")
        )
        os.kill(sbc.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "configuration reloaded" in sbc.log_text(), 10), sbc.log_text()[-3000:])
        self.assertIn("reloaded", sbc.log_text())
        reply = udp_exchange(invite(sbc.sip_port, "::1", "v6"), sbc.sip_port, host="::1", timeout=2)
        self.assertIsNone(reply)
        self.assertGreaterEqual(sbc.health()["counters"].get("source-not-allowed", 0), 1, sbc.health())

        # A bad file: one logged line, the old (reloaded) configuration stays.
        sbc.config.write_text(sbc.config.read_text() + "\n[calls]\nbogus = 1\n")
        os.kill(sbc.proc.pid, signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "reload failed" in sbc.log_text(), 10), sbc.log_text()[-3000:])
        self.assertIn("calls.bogus: unknown key", sbc.log_text())
        self.assertTrue(sbc.alive())
        self.assertTrue(sbc.ping())
        reply = udp_exchange(invite(sbc.sip_port, "::1", "v6b"), sbc.sip_port, host="::1", timeout=2)
        self.assertIsNone(reply)
        # and 127.0.0.1 is still admitted by the reloaded trunk
        self.assertEqual(status_of(udp_exchange(options_request(sbc.sip_port), sbc.sip_port)), 200)
        self.assertNotIn("Traceback", sbc.log_text())


class GracefulShutdown(SynchronousTestCase):
    def test_sigterm_with_a_held_call_ends_it_within_the_drain_timeout(self) -> None:
        sipp = sipp_path()
        if sipp is None:
            raise SkipTest("sipp is not installed (Debian package sip-tester)")
        agent_port = free_port()
        sbc = RunningSbc(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}",
                         extra_toml=f"\n[calls]\ndrain_timeout = {DRAIN}\n").start()
        self.addCleanup(sbc.stop)
        assert sbc.proc is not None
        uas = subprocess.Popen(
            [sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(agent_port), "-m", "1", "-nostdin",
             "-timeout", "60s", "-timeout_error"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: uas.poll() is None and uas.kill())
        uac = subprocess.Popen(
            [sipp, "-sn", "uac", "-i", "127.0.0.1", "-s", "agent", "-m", "1", "-d", "60000", "-nostdin",
             "-timeout", "60s", f"127.0.0.1:{sbc.sip_port}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: uac.poll() is None and uac.kill())
        self.assertTrue(wait_for(lambda: health(sbc).get("calls") == 1, 10), health(sbc))
        time.sleep(0.5)  # answered and ACKed by now

        started = time.monotonic()
        os.kill(sbc.proc.pid, signal.SIGTERM)
        # New calls are refused while draining.
        self.assertTrue(wait_for(lambda: health(sbc).get("draining") is True, DRAIN))
        reply = udp_exchange(invite(sbc.sip_port, "127.0.0.1", "late"), sbc.sip_port, timeout=1)
        self.assertEqual(status_of(reply), 503, reply)
        sbc.proc.wait(DRAIN + 8)
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, DRAIN - 0.2)
        self.assertLess(elapsed, DRAIN + 5)
        # The agent's leg was ended with a BYE it answered: its scenario completes.
        uas_out, _ = uas.communicate(timeout=20)
        self.assertEqual(uas.returncode, 0, uas_out[-2000:] + "\nSBC log:\n" + sbc.log_text()[-3000:])
        # The PBX's leg got a BYE too: SIPp's uac scenario had not sent one yet, so it ends
        # its call (unexpected BYE) long before the 60 s pause.
        try:
            uac.wait(20)
        except subprocess.TimeoutExpired:
            self.fail("the PBX side (SIPp uac) never saw its call end")
        log = sbc.log_text()
        self.assertIn("drain timeout: ending", log)  # the log may be JSON: format and fields apart
        self.assertRegex(log, r'"end_reason": ?"shutdown"')
        self.assertNotIn("Traceback", log)


class Registration(SynchronousTestCase):
    def test_registers_with_digest_and_deregisters_at_shutdown(self) -> None:
        sipp = sipp_path()
        if sipp is None:
            raise SkipTest("sipp is not installed (Debian package sip-tester)")
        registrar_port = free_port()
        extra = (
            "\n[trunk.register]\n"
            f'registrar = "sip:127.0.0.1:{registrar_port}"\n'
            'aor = "sip:alice@sipp.test"\nusername = "alice"\npassword = "s3cret"\nexpires = 600\n'
        )
        sbc = RunningSbc(extra_toml=extra)
        scenario = sbc.dir / "registrar.xml"
        scenario.write_text(REGISTRAR_XML)
        registrar = subprocess.Popen(
            [sipp, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(registrar_port), "-m", "1", "-nostdin",
             "-timeout", "60s", "-timeout_error", "-trace_msg", "-message_file", str(sbc.dir / "reg.msg")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: registrar.poll() is None and registrar.kill())
        time.sleep(0.5)  # the registrar listens before the SBC sends its first REGISTER
        sbc.start()
        self.addCleanup(sbc.stop)
        assert sbc.proc is not None
        registered = wait_for(lambda: health(sbc).get("registrations") == {"local": "registered"}, 10)
        self.assertTrue(registered, f"{health(sbc)}\n{sbc.log_text()[-3000:]}")
        self.assertNotIn("s3cret", sbc.log_text())

        os.kill(sbc.proc.pid, signal.SIGTERM)
        sbc.proc.wait(10)
        out, _ = registrar.communicate(timeout=20)
        messages = (sbc.dir / "reg.msg").read_text(errors="replace")
        self.assertEqual(registrar.returncode, 0, out[-2000:] + messages[-3000:])
        self.assertIn("Expires: 0", messages)
        self.assertIn("Authorization: Digest", messages)
        self.assertNotIn("Traceback", sbc.log_text())


class Pings(SynchronousTestCase):
    def test_agent_host_marked_down_then_up(self) -> None:
        sipp = sipp_path()
        if sipp is None:
            raise SkipTest("sipp is not installed (Debian package sip-tester)")
        agent_port = free_port()
        # T1 = 50 ms: Timer F is 3.2 s, so two failed pings take a few seconds.
        sbc = RunningSbc(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}",
                         extra_toml="\n[sip]\nt1 = 0.05\nt2 = 0.4\n[agent]\noptions_interval = 1\ndown_after = 2\n").start()
        self.addCleanup(sbc.stop)
        name = f"agent:127.0.0.1:{agent_port}"
        self.assertEqual(health(sbc).get("peers"), {name: True})  # unknown counts as up
        down = wait_for(lambda: health(sbc).get("peers") == {name: False}, 15)
        self.assertTrue(down, f"{health(sbc)}\n{sbc.log_text()[-2000:]}")
        # An agent host that answers OPTIONS (SIPp with automatic answers) brings it back.
        agent = subprocess.Popen(
            [sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(agent_port), "-aa", "-nostdin", "-timeout", "30s"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: agent.poll() is None and agent.kill())
        up = wait_for(lambda: health(sbc).get("peers") == {name: True}, 15)
        self.assertTrue(up, f"{health(sbc)}\n{sbc.log_text()[-2000:]}")
        self.assertIn("is up", sbc.log_text())
        self.assertIn("is down", sbc.log_text())
