"""SIPp sends OPTIONS to the running service over UDP and TCP, IPv4 and IPv6."""

from __future__ import annotations

import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from .harness import SCENARIOS, shared_sbc, sipp_path


def run_sipp(port: int, transport: str, host: str = "127.0.0.1", calls: int = 200,
             rate: int = 200) -> subprocess.CompletedProcess[str]:
    sipp = sipp_path()
    if sipp is None:
        raise SkipTest("sipp is not installed (Debian package sip-tester; .ci/run installs it)")
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cmd = [
        sipp, "-sf", str(SCENARIOS / "options_uac.xml"), "-t", transport, "-i", host, "-m", str(calls), "-r", str(rate), "-l", str(calls),
        "-timeout", "30s", "-timeout_error", "-nostdin", "-recv_timeout", "5000",
        target,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


class SippOptions(SynchronousTestCase):
    def check(self, transport: str, host: str = "127.0.0.1") -> None:
        sbc = shared_sbc()
        result = run_sipp(sbc.sip_port, transport, host)
        self.assertEqual(
            result.returncode, 0,
            f"sipp exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
        self.assertTrue(sbc.alive())

    def test_udp(self) -> None:
        self.check("u1")

    def test_tcp(self) -> None:
        self.check("t1")

    def test_udp_ipv6(self) -> None:
        self.check("u1", "::1")

    def test_tcp_ipv6(self) -> None:
        self.check("t1", "::1")
