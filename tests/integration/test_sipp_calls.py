"""
Calls through the B2BUA between real SIPp peers: a UAC playing the PBX and a UAS playing
the agent host, over UDP and TCP.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from . import sipp
from .harness import RunningSbc, free_port


class SippCalls(SynchronousTestCase):
    def run_calls(self, scenario_uac: str, scenario_uas: str, transport: str = "u1",
                  calls: int = 20, rate: int = 20) -> None:
        sipp.require_sipp()
        agent_port = free_port()
        uri_transport = ";transport=tcp" if transport.startswith("t") else ""
        sbc = RunningSbc(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}{uri_transport}").start()
        self.addCleanup(sbc.stop)
        sipp.run_pair(self, sbc, transport=transport, calls=calls,
                      uas=[*scenario_uas.split(), "-p", str(agent_port)],
                      uac=[*scenario_uac.split(), "-s", "agent", "-r", str(rate), "-recv_timeout", "10000"])
        self.assertTrue(sbc.alive())

    def test_basic_call_udp(self) -> None:
        self.run_calls("-sn uac", "-sn uas", "u1")

    def test_basic_call_tcp(self) -> None:
        self.run_calls("-sn uac", "-sn uas", "t1")
