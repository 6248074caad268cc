# -*- test-case-name: tests.test_quirks_normalize -*-
"""The ``sbc normalize`` command (sbc.normalize_cmd)."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.normalize_cmd import main, read_message_text
from sbc.sip.message import parse_message

from .test_layering import REPO

INVITE = (
    "# source: made up for this test\n"
    "INVITE sip:7168712781@sbc.example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKn1\n"
    "Max-Forwards: 70\n"
    "From: \"Alice\" <sip:7165550100@10.0.0.5>;tag=a\n"
    "To: <sip:7168712781@sbc.example.com>\n"
    "Call-ID: norm-1@10.0.0.5\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:alice@10.0.0.5>\n"
    "X-SBC-Vendor: spoofed\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 999\n"
    "\n"
    "v=0\n"
    "o=- 1 1 IN IP4 10.0.0.5\n"
    "s=-\n"
    "c=IN IP4 10.0.0.5\n"
    "t=0 0\n"
    "m=audio 4000 RTP/AVP 0\n"
)

CONFIG = """
[sbc]
fqdn = "sbc.example.com"

[[trunk]]
name = "pbx-east"
vendor = "generic"
allow = ["10.0.0.0/24"]
agent_uri = "sip:{user}@192.0.2.50:5090"

[[trunk]]
name = "pbx-west"
allow = ["10.1.0.0/24"]
agent_uri = "sip:{user}@192.0.2.51:5090"
"""


class NormalizeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sbc-normalize-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.invite = self.dir / "invite.txt"
        self.invite.write_text(INVITE)
        self.config = self.dir / "sbc.toml"
        self.config.write_text(CONFIG)

    def run_main(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), out, err)
        return code, out.getvalue(), err.getvalue()

    def test_read_message_text(self) -> None:
        data = read_message_text(INVITE.encode())
        msg = parse_message(data)
        self.assertEqual(msg.content_length, len(msg.body))
        self.assertTrue(msg.body.endswith(b"RTP/AVP 0\r\n"))
        self.assertEqual(msg.get("Call-ID"), b"norm-1@10.0.0.5")

    def test_invite_with_config(self) -> None:
        code, out, err = self.run_main("normalize", "--config", str(self.config), "--trunk", "pbx-east",
                                       "-o", "country_code=1", str(self.invite))
        self.assertEqual((code, err), (0, ""))
        agent_part, canonical_part = out.split("# ---- canonical headers (call.started)\n")
        self.assertIn("INVITE sip:+17168712781@192.0.2.50:5090 SIP/2.0\n", agent_part)
        self.assertIn("To: <sip:+17168712781@192.0.2.50:5090>\n", agent_part)
        self.assertNotIn("spoofed", out)
        self.assertIn("X-SBC-Trunk: pbx-east\n", canonical_part)
        self.assertIn("X-SBC-Vendor: generic\n", canonical_part)
        self.assertIn("X-SBC-Caller: +17165550100\n", canonical_part)
        self.assertIn("Privacy: none\n", canonical_part)
        self.assertIn("# vendor: generic (Generic SIP trunk)", out)
        self.assertIn("# recognised by: ", out)

    def test_trunk_allowing_vendor_ranges(self) -> None:
        # `allow = ["vendor:teams"]` is resolved to Teams' published networks, as in the service.
        self.config.write_text(CONFIG + '\n[[trunk]]\nname = "teams"\nvendor = "teams"\nallow = ["vendor:teams"]\n'
                               'agent_uri = "sip:{user}@192.0.2.52:5090"\n')
        code, out, err = self.run_main("normalize", "--config", str(self.config), "--trunk", "teams", str(self.invite))
        self.assertEqual((code, err), (0, ""))
        self.assertIn("X-SBC-Trunk: teams\n", out)
        self.config.write_text(CONFIG + '\n[[trunk]]\nname = "bad"\nallow = ["vendor:generic"]\n'
                               'agent_uri = "sip:{user}@192.0.2.52:5090"\n')
        code, out, err = self.run_main("normalize", "--config", str(self.config), "--trunk", "bad", str(self.invite))
        self.assertNotEqual(code, 0)
        self.assertIn("trunk bad.allow[0]: vendor plugin 'generic' publishes no signalling ranges", err)

    def test_vendor_without_config(self) -> None:
        code, out, _ = self.run_main("--vendor", "generic", str(self.invite))
        self.assertEqual(code, 0)
        self.assertIn("X-SBC-Callee: 7168712781\n", out)  # no country: left as is
        self.assertIn("INVITE sip:7168712781@agent.invalid SIP/2.0\n", out)

    def test_to_pbx(self) -> None:
        code, out, _ = self.run_main("--vendor", "generic", "--to-pbx", str(self.invite))
        self.assertEqual(code, 0)
        self.assertIn("# ---- toward the PBX, after the plugins\n", out)
        self.assertIn("Call-ID: norm-1@10.0.0.5\n", out)

    def test_refused_invite(self) -> None:
        self.invite.write_text(INVITE.replace("Max-Forwards: 70", "Max-Forwards: 0"))
        code, out, _ = self.run_main("--vendor", "generic", str(self.invite))
        self.assertEqual(code, 1)
        self.assertIn("# the SBC refused this INVITE:\nSIP/2.0 483 Too Many Hops\n", out)

    def test_non_invite(self) -> None:
        self.invite.write_text(INVITE.replace("INVITE sip", "OPTIONS sip").replace("1 INVITE", "1 OPTIONS"))
        code, out, _ = self.run_main("--vendor", "generic", str(self.invite))
        self.assertEqual(code, 0)
        self.assertIn("only an INVITE is canonicalised", out)

    def test_errors(self) -> None:
        cases = [
            (("--config", str(self.config), str(self.invite)), "--trunk is needed"),
            (("--config", str(self.config), "--trunk", "nope", str(self.invite)), "no trunk 'nope'"),
            (("--vendor", "nope", str(self.invite)), "no vendor plugin 'nope'"),
            (("--vendor", "generic", str(self.dir / "missing.txt")), "cannot read"),
            (("--vendor", "generic", "-o", "novalue", str(self.invite)), "NAME=VALUE"),
            (("--config", str(self.config), "--vendor", "generic", str(self.invite)), "--vendor is for use"),
            (("--config", str(self.dir / "none.toml"), str(self.invite)), "file not found"),
            ((), "a message file is needed"),
        ]
        for argv, text in cases:
            code, out, err = self.run_main(*argv)
            self.assertEqual(code, 2, argv)
            self.assertIn(text, err, argv)
        self.invite.write_text("this is not SIP\n\n")
        code, _, err = self.run_main("--vendor", "generic", str(self.invite))
        self.assertEqual(code, 2)
        self.assertIn("not a valid SIP message", err)

    def test_list_in_a_subprocess(self) -> None:
        result = subprocess.run([sys.executable, "-m", "sbc.normalize_cmd", "--list"], cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"(?m)^generic +order 1000 +Generic SIP trunk +\[plugins\.generic\]$")
