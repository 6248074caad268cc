"""
Calls through the B2BUA between real SIPp peers: a UAC playing the PBX and a UAS playing
the agent host, over UDP and TCP.
"""

from __future__ import annotations

import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from .harness import RunningSbc, free_port, sipp_path


class SippCalls(SynchronousTestCase):
    def run_calls(self, scenario_uac: str, scenario_uas: str, transport: str = "u1",
                  calls: int = 20, rate: int = 20) -> None:
        sipp = sipp_path()
        if sipp is None:
            raise SkipTest("sipp is not installed (Debian package sip-tester)")
        agent_port = free_port()
        uri_transport = ";transport=tcp" if transport.startswith("t") else ""
        sbc = RunningSbc(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}{uri_transport}").start()
        self.addCleanup(sbc.stop)
        uas = subprocess.Popen(
            [sipp, *scenario_uas.split(), "-i", "127.0.0.1", "-p", str(agent_port), "-t", transport,
             "-m", str(calls), "-nostdin", "-timeout", "60s", "-timeout_error"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: uas.poll() is None and uas.kill())
        uac = subprocess.run(
            [sipp, *scenario_uac.split(), "-i", "127.0.0.1", "-t", transport, "-s", "agent",
             "-m", str(calls), "-r", str(rate), "-nostdin", "-timeout", "60s", "-timeout_error",
             "-recv_timeout", "10000", f"127.0.0.1:{sbc.sip_port}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=90)
        try:
            uas_out, _ = uas.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas_out, _ = uas.communicate()
        detail = (f"UAC exit {uac.returncode}\n{uac.stdout[-2500:]}\n{uac.stderr[-1500:]}\n"
                  f"UAS exit {uas.returncode}\n{uas_out[-2500:]}\nSBC log:\n{sbc.log_text()[-3000:]}")
        self.assertEqual(uac.returncode, 0, detail)
        self.assertEqual(uas.returncode, 0, detail)
        self.assertTrue(sbc.alive())

    def test_basic_call_udp(self) -> None:
        self.run_calls("-sn uac", "-sn uas", "u1")

    def test_basic_call_tcp(self) -> None:
        self.run_calls("-sn uac", "-sn uas", "t1")
