"""
Observability of the real SBC process: SIPp calls through the B2BUA, then ``/metrics``,
``/readyz`` and the CDR file (one valid JSON line per call, reopened on SIGHUP).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from sbc.cdr import CDR_FIELDS

from .harness import RunningSbc, free_port, sipp_path


def http_get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent)."""
    for line in exposition.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def wait_for_lines(path: Path, count: int, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= count:
                return lines
        time.sleep(0.1)
    return lines


class ObservabilityIntegration(SynchronousTestCase):
    def setUp(self) -> None:
        self.sipp = sipp_path()
        if self.sipp is None:
            raise SkipTest("sipp is not installed (Debian package sip-tester)")
        self.cdr_dir = Path(tempfile.mkdtemp(prefix="sbc-cdr-"))
        self.addCleanup(shutil.rmtree, self.cdr_dir, True)
        self.cdr = self.cdr_dir / "cdr.jsonl"
        self.agent_port = free_port()
        # No OPTIONS pings: SIPp's uas scenario would take one for an unexpected message.
        self.sbc = RunningSbc(f'\n[cdr]\npath = "{self.cdr}"\n\n[agent]\noptions_interval = 0\n',
                              agent_uri=f"sip:{{user}}@127.0.0.1:{self.agent_port}").start()
        self.addCleanup(self.sbc.stop)

    def place_calls(self, calls: int) -> None:
        assert self.sipp is not None
        uas = subprocess.Popen(
            [self.sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(self.agent_port), "-t", "u1",
             "-m", str(calls), "-nostdin", "-timeout", "60s", "-timeout_error"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: uas.poll() is None and uas.kill())
        uac = subprocess.run(
            [self.sipp, "-sn", "uac", "-i", "127.0.0.1", "-t", "u1", "-s", "agent",
             "-m", str(calls), "-r", "20", "-nostdin", "-timeout", "60s", "-timeout_error",
             "-recv_timeout", "10000", f"127.0.0.1:{self.sbc.sip_port}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=90)
        try:
            uas_out, _ = uas.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas_out, _ = uas.communicate()
        detail = (f"UAC exit {uac.returncode}\n{uac.stdout[-2000:]}\n{uac.stderr[-1000:]}\n"
                  f"UAS exit {uas.returncode}\n{uas_out[-2000:]}\nSBC log:\n{self.sbc.log_text()[-3000:]}")
        self.assertEqual((uac.returncode, uas.returncode), (0, 0), detail)

    def test_metrics_readyz_and_cdrs(self) -> None:
        admin = self.sbc.admin_port
        code, ctype, before = http_get(admin, "/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertEqual(sample(before, "sbc_calls_total", trunk="local", result="answered"), 0.0)
        self.assertEqual(sample(before, "sbc_build_info"), 1.0)

        code, _, body = http_get(admin, "/readyz")
        self.assertEqual(code, 200, body)
        self.assertIs(json.loads(body)["ready"], True)

        calls = 10
        self.place_calls(calls)
        lines = wait_for_lines(self.cdr, calls)
        self.assertEqual(len(lines), calls, f"{len(lines)} CDR lines:\n" + "\n".join(lines)
                         + "\nSBC log:\n" + self.sbc.log_text()[-3000:])
        records = [json.loads(line) for line in lines]
        for record in records:
            self.assertEqual(tuple(record), CDR_FIELDS)
            self.assertEqual((record["trunk"], record["vendor"], record["direction"]), ("local", "generic", "inbound"))
            self.assertEqual((record["result"], record["a_final_status"], record["b_final_status"]),
                             ("answered", 200, 200))
            self.assertEqual(record["callee"], "agent")
            self.assertRegex(record["start"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertLessEqual(record["start_unix"], record["answer_unix"])
            self.assertLessEqual(record["answer_unix"], record["end_unix"])
            self.assertGreaterEqual(record["duration"], 0.0)
            self.assertIn(record["end_reason"], ("bye-a", "bye-b"))
            self.assertNotEqual(record["a_call_id"], record["b_call_id"])
        self.assertEqual(len({r["call_id"] for r in records}), calls)
        self.assertNotIn("v=0", self.cdr.read_text())  # no SDP, ever

        _, _, after = http_get(admin, "/metrics")
        self.assertEqual(sample(after, "sbc_calls_total", trunk="local", result="answered", status_class="2xx"),
                         float(calls))
        self.assertEqual(sample(after, "sbc_calls_active", trunk="local"), 0.0)
        self.assertEqual(sample(after, "sbc_call_setup_seconds_count", trunk="local"), float(calls))
        self.assertEqual(sample(after, "sbc_cdr_records_total"), float(calls))
        self.assertGreaterEqual(sample(after, "sbc_sip_messages_total", direction="in", kind="INVITE"), float(calls))
        self.assertGreaterEqual(sample(after, "sbc_sip_messages_total", direction="out", kind="INVITE"), float(calls))
        self.assertGreaterEqual(sample(after, "sbc_sip_messages_total", direction="in", kind="BYE"), float(calls))

        # logrotate: move the file away, SIGHUP, and new records go to a fresh file
        rotated = self.cdr_dir / "cdr.jsonl.1"
        os.rename(self.cdr, rotated)
        assert self.sbc.proc is not None
        os.kill(self.sbc.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not self.cdr.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(self.cdr.exists(), self.sbc.log_text()[-3000:])
        self.place_calls(2)
        self.assertEqual(len(wait_for_lines(self.cdr, 2)), 2)
        self.assertEqual(len(rotated.read_text().splitlines()), calls)
        self.assertTrue(self.sbc.alive())
