# -*- test-case-name: tests.test_quirks_service -*-
"""The vendor plugins wired into the service (issue 6): quirk chains built at start-up and
on reload, ``vendor:<name>`` allow entries resolved to the plugin's ranges, the vendor's
OPTIONS interval, OPTIONS pings toward a trunk's peer through its ``request_to_pbx`` hooks,
and one-line start-up errors.  No sockets: the memory reactor of tests.test_service."""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

import sbc.quirks.loader as loader
from sbc.config import load_config, load_config_text
from sbc.quirks.interface import QuirkBase, VendorDefaults
from sbc.quirks.loader import PluginError
from sbc.service import build_service, vendor_setup
from sbc.sip.message import Request, make_response, parse_message
from sbc.tap import ConfigExit

from .test_service import FakeReactor, pump, requests_to, sent

BASE = """
[sbc]
fqdn = "sbc.example.com"
[[listen]]
transport = "udp"
address = "127.0.0.1"
port = 5060
[admin]
enabled = false
[media]
enabled = false
[agent]
options_interval = 0
"""

TEAMS = """
[[trunk]]
name = "teams"
vendor = "teams"
allow = ["vendor:teams", "203.0.113.0/24"]
agent_uri = "sip:{user}@127.0.0.1:5090"
peer_uri = "sip:192.0.2.10:5060"
[trunk.vendor_options]
x_ms_sbc = "Acme/SBC/2.0"
"""

TEAMS_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("52.112.0.0/14", "52.122.0.0/15", "203.0.113.0/24"))


def build(text: str, reactor: FakeReactor | None = None) -> tuple[Any, FakeReactor]:
    reactor = reactor or FakeReactor()
    top = build_service(load_config_text(text), reactor, install_signals=False)
    top.startService()
    return top, reactor


def exit_of(text: str) -> ConfigExit:
    try:
        build_service(load_config_text(text, "etc/sbc.toml"), FakeReactor(), install_signals=False)
    except ConfigExit as e:
        assert "\n" not in str(e), str(e)
        return e
    raise AssertionError("build_service did not stop")


def invite_from(host: str, call_id: str = "q-1@pbx") -> bytes:
    return (
        "INVITE sip:+15550100@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:5060;branch=z9hG4bK-q-1\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:+15550199@{host};user=phone>;tag=f1\r\n"
        "To: <sip:+15550100@127.0.0.1;user=phone>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:pbx@{host}:5060>\r\n"
        "User-Agent: Microsoft.PSTNHub.SIPProxy v.2024.1.1.1 i.EUWE.0\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def first_sends(requests: list[Request]) -> list[Request]:
    """One per transaction (UDP retransmissions left out)."""
    return list({r.top_via.branch: r for r in reversed(requests)}.values())[::-1]


def peer_pings(reactor: FakeReactor) -> list[Request]:
    return first_sends([m for m, addr in sent(reactor)
                        if isinstance(m, Request) and m.method == "OPTIONS" and addr == ("192.0.2.10", 5060)])


class StartupTests(SynchronousTestCase):
    def test_chains_built_and_given_to_the_b2bua(self) -> None:
        top, _ = build(BASE + TEAMS + '[[trunk]]\nname = "plain"\nallow = ["198.51.100.0/24"]\n'
                       'agent_uri = "sip:{user}@127.0.0.1:5091"\n')
        self.addCleanup(top.stopService)
        self.assertEqual(set(top.b2bua.quirks), {"teams", "plain"})
        self.assertIs(top.b2bua.quirks["teams"], top.quirks["teams"])
        self.assertEqual((top.quirks["teams"].vendor, top.quirks["teams"].primary.name), ("teams", "teams"))
        self.assertEqual(top.quirks["plain"].vendor, "generic")
        self.assertEqual(top.quirks["teams"].options["x_ms_sbc"], "Acme/SBC/2.0")
        self.assertEqual(top.quirks["teams"].sbc_fqdn, "sbc.example.com")

    def test_vendor_allow_resolved_into_networks(self) -> None:
        top, _ = build(BASE + TEAMS)
        self.addCleanup(top.stopService)
        [trunk] = top.b2bua.trunks
        self.assertEqual(trunk.allow, TEAMS_NETWORKS)
        self.assertEqual(top.config.trunks, top.b2bua.trunks)

    def test_inbound_invite_from_a_vendor_range_is_canonicalised(self) -> None:
        top, reactor = build(BASE + TEAMS)
        self.addCleanup(top.stopService)
        reactor.udp_ports[0].protocol.datagramReceived(invite_from("52.113.4.5"), ("52.113.4.5", 5060))
        [invite] = requests_to(reactor, "INVITE", 5090)
        self.assertEqual(invite.get("X-SBC-Trunk"), b"teams")
        self.assertEqual(invite.get("X-SBC-Vendor"), b"teams")
        self.assertEqual(invite.get("X-SBC-Original-Call-ID"), b"q-1@pbx")
        self.assertEqual(invite.get("X-SBC-Callee"), b"+15550100")
        # The PBX got a 100 Trying with Microsoft's X-MS-SBC (response_to_pbx ran).
        trying = [m for m, addr in sent(reactor) if not isinstance(m, Request) and addr == ("52.113.4.5", 5060)]
        self.assertEqual([r.status for r in trying], [100])
        self.assertEqual(trying[0].get("X-MS-SBC"), b"Acme/SBC/2.0")

    def test_vendor_options_reach_the_canonical_form(self) -> None:
        top, reactor = build(BASE + '[[trunk]]\nname = "pbx"\nallow = ["192.0.2.0/24"]\n'
                             'agent_uri = "sip:{user}@127.0.0.1:5090"\n[trunk.vendor_options]\ncountry_code = 44\n')
        self.addCleanup(top.stopService)
        raw = invite_from("192.0.2.9").replace(b"sip:+15550100@127.0.0.1:5060", b"sip:02079460000@127.0.0.1:5060")
        raw = raw.replace(b"<sip:+15550100@127.0.0.1;user=phone>", b"<sip:02079460000@127.0.0.1>")
        reactor.udp_ports[0].protocol.datagramReceived(raw, ("192.0.2.9", 5060))
        [invite] = requests_to(reactor, "INVITE", 5090)
        self.assertEqual(invite.uri, b"sip:+442079460000@127.0.0.1:5090")
        self.assertEqual((invite.get("X-SBC-Callee"), invite.get("X-SBC-Vendor")), (b"+442079460000", b"generic"))

    def test_source_outside_every_range_is_refused(self) -> None:
        top, reactor = build(BASE + TEAMS)
        self.addCleanup(top.stopService)
        reactor.udp_ports[0].protocol.datagramReceived(invite_from("52.120.1.1"), ("52.120.1.1", 5060))
        self.assertEqual(requests_to(reactor, "INVITE", 5090), [])
        # Dropped before parsing by the source allowlist, or refused by the B2BUA.
        self.assertTrue(all(m.status >= 400 for m, addr in sent(reactor) if addr == ("52.120.1.1", 5060)))

    def test_startup_warnings_logged(self) -> None:
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        top, _ = build(BASE.replace('fqdn = "sbc.example.com"', 'fqdn = "192.0.2.1"') + TEAMS)
        self.addCleanup(top.stopService)
        warnings = [e["problem"] for e in events if "vendor settings" in str(e.get("log_format"))]
        self.assertEqual(len(warnings), 2, warnings)
        self.assertIn("[sbc] fqdn is '192.0.2.1'", warnings[0])
        self.assertIn("no tls listener", warnings[1])

    def test_unknown_vendor_in_allow_stops_startup(self) -> None:
        e = exit_of(BASE + TEAMS.replace("vendor:teams", "vendor:acme"))
        self.assertTrue(str(e).startswith(
            "etc/sbc.toml: trunk[0].allow[0]: no vendor plugin named 'acme' (installed: "), str(e))
        self.assertIn("teams", str(e))
        self.assertEqual(e.error.key, "trunk[0].allow[0]")

    def test_vendor_without_ranges_stops_startup(self) -> None:
        e = exit_of(BASE + TEAMS.replace('allow = ["vendor:teams", "203.0.113.0/24"]',
                                         'allow = ["203.0.113.0/24", "vendor:webex"]'))
        self.assertEqual(str(e), "etc/sbc.toml: trunk[0].allow[1]: vendor plugin 'webex' publishes no "
                                 "signalling ranges: list the vendor's networks in CIDR instead")

    def test_unknown_trunk_vendor_stops_startup(self) -> None:
        e = exit_of(BASE + TEAMS.replace('vendor = "teams"', 'vendor = "acme"'))
        self.assertTrue(str(e).startswith("etc/sbc.toml: trunk[0].vendor: no vendor plugin named 'acme' "
                                          "(installed: "), str(e))

    def test_plugin_error_stops_startup(self) -> None:
        def broken(package: Any = None) -> dict[str, Any]:
            raise PluginError("vendor plugin module plugins.acme (/x/acme.py) failed to import: ImportError: nope")

        self.patch(loader, "registry", broken)
        e = exit_of(BASE + TEAMS)
        self.assertEqual(str(e), "etc/sbc.toml: vendor plugins: vendor plugin module plugins.acme (/x/acme.py) "
                                 "failed to import: ImportError: nope")

    def test_secret_option_reaches_the_plugin_but_no_repr(self) -> None:
        telnyx = TEAMS.replace('vendor = "teams"', 'vendor = "telnyx"').replace("vendor:teams", "vendor:telnyx")
        telnyx = telnyx.replace('x_ms_sbc = "Acme/SBC/2.0"', 'telnyx_token = "tok-9f8e7d"')
        config, chains, _ = vendor_setup(load_config_text(BASE + telnyx))
        chain = chains["teams"]
        for text in (repr(config), repr(chain.options), repr(chain.context("outbound")), str(chain.context())):
            self.assertNotIn("tok-9f8e7d", text)
        invite = parse_message(
            b"INVITE sip:+15550100@sip.telnyx.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-t\r\n"
            b"From: <sip:+15550199@sbc.example.com>;tag=a\r\nTo: <sip:+15550100@sip.telnyx.com>\r\n"
            b"Call-ID: t-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        out = chain.request_to_pbx(invite, chain.context("outbound"))
        self.assertEqual(out.get("X-Telnyx-Token"), b"tok-9f8e7d")
        self.assertEqual(chain.notices(), [])

    def test_vendor_setup_is_idempotent(self) -> None:
        config, chains, _ = vendor_setup(load_config_text(BASE + TEAMS))
        again, chains2, _ = vendor_setup(config)
        self.assertEqual(again, config)
        self.assertEqual(set(chains2), set(chains))
        self.assertEqual(config.trunks[0].options_interval, 60.0)


class PingTests(SynchronousTestCase):
    def test_teams_peer_pinged_every_60s_with_its_headers(self) -> None:
        top, reactor = build(BASE + TEAMS)
        self.addCleanup(top.stopService)
        pump(reactor, 59.0, step=0.5)
        self.assertEqual(peer_pings(reactor), [])
        pump(reactor, 1.5, step=0.5)
        [ping] = peer_pings(reactor)
        self.assertEqual(ping.get("X-MS-SBC"), b"Acme/SBC/2.0")
        self.assertEqual(ping.get("Contact"), b"<sip:sbc.example.com:5061;transport=tls>")
        # The transaction still matches its answer (the hook may not touch Via/CSeq/Call-ID).
        reactor.udp_ports[0].protocol.datagramReceived(make_response(ping, 200, to_tag="t").to_bytes(),
                                                       ("192.0.2.10", 5060))
        self.assertEqual(top.pinger.peer_details()["peer:teams"]["last_status"], 200)

    def test_options_from_a_teams_address_answered_with_its_headers(self) -> None:
        top, reactor = build(BASE + TEAMS + '[[trunk]]\nname = "plain"\nallow = ["198.51.100.0/24"]\n'
                             'agent_uri = "sip:{user}@127.0.0.1:5091"\n')
        self.addCleanup(top.stopService)

        def options(host: str) -> bytes:
            return (f"OPTIONS sip:sbc.example.com:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {host}:5060;branch=z9hG4bK-o-{host}"
                    f"\r\nMax-Forwards: 70\r\nFrom: <sip:sip.pstnhub.microsoft.com>;tag=m1\r\n"
                    f"To: <sip:sbc.example.com>\r\nCall-ID: o-{host}\r\nCSeq: 1 OPTIONS\r\n"
                    f"Content-Length: 0\r\n\r\n").encode()

        for host in ("52.114.16.74", "198.51.100.7"):
            reactor.udp_ports[0].protocol.datagramReceived(options(host), (host, 5060))
        answers = {addr[0]: m for m, addr in sent(reactor) if not isinstance(m, Request)}
        teams, other = answers["52.114.16.74"], answers["198.51.100.7"]
        self.assertEqual((teams.status, other.status), (200, 200))
        self.assertEqual(teams.get("X-MS-SBC"), b"Acme/SBC/2.0")
        self.assertEqual(teams.get("Contact"), b"<sip:sbc.example.com:5061;transport=tls>")
        self.assertIsNone(other.get("X-MS-SBC"))
        self.assertEqual(other.get("Contact"), b"<sip:sbc.example.com:5060>")

    def test_explicit_interval_wins(self) -> None:
        top, reactor = build(BASE + TEAMS.replace('peer_uri = "sip:192.0.2.10:5060"',
                                                  'peer_uri = "sip:192.0.2.10:5060"\noptions_interval = 20'))
        self.addCleanup(top.stopService)
        pump(reactor, 20.5, step=0.5)
        self.assertEqual(len(peer_pings(reactor)), 1)

    def test_vendor_without_interval_pings_every_30s(self) -> None:
        twilio = TEAMS.replace('vendor = "teams"', 'vendor = "twilio"').replace("vendor:teams", "vendor:twilio")
        top, reactor = build(BASE + twilio)
        self.addCleanup(top.stopService)
        self.assertEqual(top.config.trunks[0].options_interval, 30.0)
        pump(reactor, 30.5, step=0.5)
        [ping] = peer_pings(reactor)
        self.assertIsNone(ping.get("X-MS-SBC"))

    def test_agent_pings_are_not_vendor_hooked(self) -> None:
        top, reactor = build(BASE.replace("options_interval = 0", "options_interval = 30") + TEAMS)
        self.addCleanup(top.stopService)
        pump(reactor, 30.5, step=0.5)
        [agent] = first_sends(requests_to(reactor, "OPTIONS", 5090))
        self.assertIsNone(agent.get("X-MS-SBC"))
        self.assertEqual(agent.get("Contact"), b"<sip:sbc.example.com:5060>")

    def test_failing_plugin_hook_leaves_the_ping_unchanged(self) -> None:
        class Boom(QuirkBase):
            name = "teams"
            title = "broken"
            defaults = VendorDefaults(options_interval=10.0)

            def request_to_pbx(self, message: Any, ctx: Any) -> None:
                message.set("X-Half", "done")
                raise RuntimeError("boom")

        self.patch(loader, "registry", lambda package=None: {"teams": Boom(), "generic": QuirkBase()})
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        top, reactor = build(BASE + TEAMS.replace("vendor:teams", "198.51.100.0/24"))
        self.addCleanup(top.stopService)
        pump(reactor, 10.5, step=0.5)
        [ping] = peer_pings(reactor)
        self.assertIsNone(ping.get("X-Half"))
        errors = [e for e in events if "quirk-error" in str(e.get("log_format"))]
        self.assertEqual([(e["quirk"], e["hook"], e["error"]) for e in errors],
                         [("teams", "request_to_pbx", "RuntimeError: boom")])

    def test_raising_request_hook_sends_the_ping_anyway(self) -> None:
        top, reactor = build(BASE + TEAMS)
        self.addCleanup(top.stopService)

        def hook(name: str, request: Request) -> Request:
            raise ValueError("hook bug")

        top.pinger.request_hook = hook
        pump(reactor, 60.5, step=0.5)
        [ping] = peer_pings(reactor)
        self.assertIsNone(ping.get("X-MS-SBC"))
        self.flushLoggedErrors(ValueError)


class ReloadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.path = self.dir / "sbc.toml"
        self.path.write_text(BASE + TEAMS)
        self.reactor = FakeReactor()
        self.top = build_service(load_config(self.path), self.reactor, install_signals=False)
        self.top.startService()
        self.addCleanup(self.top.stopService)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_reload_rebuilds_chains_and_ranges(self) -> None:
        twilio = TEAMS.replace('vendor = "teams"', 'vendor = "twilio"').replace("vendor:teams", "vendor:twilio")
        self.path.write_text(BASE + twilio)
        self.assertTrue(self.top.reload())
        self.assertEqual(self.top.b2bua.quirks["teams"].vendor, "twilio")
        [trunk] = self.top.b2bua.trunks
        self.assertIn(ipaddress.ip_network("54.172.60.0/30"), trunk.allow)
        self.assertNotIn(ipaddress.ip_network("52.112.0.0/14"), trunk.allow)
        self.assertEqual(trunk.options_interval, 30.0)
        self.assertEqual(self.top.config.trunks, self.top.b2bua.trunks)
        # A call from Twilio's range is admitted (edge allowlist and B2BUA) and canonicalised.
        self.reactor.udp_ports[0].protocol.datagramReceived(invite_from("54.172.60.1"), ("54.172.60.1", 5060))
        [invite] = first_sends(requests_to(self.reactor, "INVITE", 5090))
        self.assertEqual(invite.get("X-SBC-Vendor"), b"twilio")

    def test_reload_with_unknown_vendor_keeps_everything(self) -> None:
        old_config, old_chains, old_trunks = self.top.config, self.top.b2bua.quirks, self.top.b2bua.trunks
        self.path.write_text(BASE + TEAMS.replace("vendor:teams", "vendor:acme"))
        self.assertFalse(self.top.reload())
        self.assertIs(self.top.config, old_config)
        self.assertIs(self.top.b2bua.quirks, old_chains)
        self.assertIs(self.top.b2bua.trunks, old_trunks)
        [error] = [e["error"] for e in self.events if "reload failed" in str(e.get("log_format"))]
        self.assertTrue(error.startswith(f"{self.path}: trunk[0].allow[0]: no vendor plugin named 'acme'"), error)

    def test_calls_of_a_removed_trunk_keep_their_chain(self) -> None:
        class FakeCall:
            trunk = "teams"

        teams_chain = self.top.b2bua.quirks["teams"]
        self.top.b2bua.calls["in-progress"] = FakeCall()
        self.path.write_text(BASE + '[[trunk]]\nname = "other"\nallow = ["198.51.100.0/24"]\n'
                                    'agent_uri = "sip:{user}@127.0.0.1:5091"\n')
        self.assertTrue(self.top.reload())
        del self.top.b2bua.calls["in-progress"]
        self.assertIs(self.top.b2bua.quirks["teams"], teams_chain)
        self.assertEqual(set(self.top.quirks), {"other"})


class CommandTests(SynchronousTestCase):
    """``sbc normalize`` / ``python -m sbc normalize`` (sbc/__main__.py, setup.cfg)."""

    def run_main(self, *args: str) -> tuple[int, str, str]:
        import io

        from sbc.__main__ import main

        out, err = io.StringIO(), io.StringIO()
        return main(list(args), out=out, err=err), out.getvalue(), err.getvalue()

    def teams_invite(self) -> str:
        here = Path(__file__).resolve().parent / "vendor_messages"
        return str(here / "teams-INVITE-in-1.txt")

    def test_normalize_dispatched(self) -> None:
        status, out, err = self.run_main("normalize", "--vendor", "teams", self.teams_invite())
        self.assertEqual(status, 0, err)
        self.assertIn("X-SBC-Vendor: teams", out)
        self.assertIn("# vendor: teams (Microsoft Teams Direct Routing)", out)

    def test_normalize_list(self) -> None:
        status, out, _ = self.run_main("normalize", "--list")
        self.assertEqual(status, 0)
        self.assertEqual(len([line for line in out.splitlines() if line.split()[:1] == ["teams"]]), 1)

    def test_usage_and_unknown_command(self) -> None:
        status, out, err = self.run_main()
        self.assertEqual((status, out), (2, ""))
        self.assertIn("normalize", err)
        status, out, _ = self.run_main("--help")
        self.assertEqual(status, 0)
        self.assertTrue(out.startswith("usage: sbc COMMAND"))
        status, _, err = self.run_main("frobnicate")
        self.assertEqual(status, 2)
        self.assertTrue(err.startswith("sbc: unknown command 'frobnicate'"))

    def test_python_dash_m_sbc(self) -> None:
        import subprocess
        import sys

        repo = Path(__file__).resolve().parent.parent
        result = subprocess.run([sys.executable, "-m", "sbc", "normalize", "--vendor", "teams", self.teams_invite()],
                                cwd=repo, capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("X-SBC-Trunk: teams", result.stdout)

    def test_console_script_declared(self) -> None:
        import configparser

        cfg = configparser.ConfigParser()
        cfg.read(Path(__file__).resolve().parent.parent / "setup.cfg")
        scripts = [line.strip() for line in cfg["options.entry_points"]["console_scripts"].splitlines() if line.strip()]
        self.assertEqual(scripts, ["sbc = sbc.__main__:main"])

    def test_installed_console_script(self) -> None:
        import subprocess
        import sys

        script = Path(sys.executable).parent / "sbc"
        if not script.exists():
            raise self.skipTest(f"{script} not installed (pip install -e . again)")
        result = subprocess.run([str(script), "normalize", "--list"], capture_output=True, text=True, timeout=60,
                                cwd=tempfile.mkdtemp())
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("teams", result.stdout)


class TwistdTests(SynchronousTestCase):
    def test_bad_vendor_range_stops_twistd_with_one_line(self) -> None:
        import os
        import subprocess
        import sys

        twistd = Path(sys.executable).parent / "twistd"
        if not twistd.exists():
            raise self.skipTest(f"{twistd} not found")
        cwd = Path(tempfile.mkdtemp())
        config = cwd / "sbc.toml"
        config.write_text("[admin]\nenabled = false\n[media]\nenabled = false\n"
                          "[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = 1\n"
                          + TEAMS.replace("vendor:teams", "vendor:acme"))
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        result = subprocess.run([str(twistd), "-n", "--pidfile=", "sbc", "--config", str(config)], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        output = (result.stdout + result.stderr).strip()
        self.assertNotEqual(result.returncode, 0, output)
        self.assertNotIn("Traceback", output)
        [line] = output.splitlines()
        self.assertTrue(line.startswith(f"{config}: trunk[0].allow[0]: no vendor plugin named 'acme'"), line)
