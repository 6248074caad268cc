# -*- test-case-name: tests.test_tap -*-
"""Tests for sbc.tap (twistd options and service maker) and the drop-in."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path
from typing import Any

from twisted.application.service import IServiceMaker, MultiService
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from sbc import tap
from sbc.config import Config, ConfigError, default_config_path

REPO = Path(__file__).resolve().parent.parent


class OptionsTests(SynchronousTestCase):
    def test_default_config_path(self) -> None:
        self.assertEqual(tap.Options()["config"], "etc/sbc.toml")

    def test_loads_config_in_postOptions(self) -> None:
        for flag in ("--config", "-c"):
            options = tap.Options()
            options.parseOptions([flag, str(default_config_path())])
            self.assertIsInstance(options.loaded_config, Config)
            assert options.loaded_config is not None
            self.assertEqual(options.loaded_config.trunks[0].name, "local")

    def test_bad_config_exits_with_one_line(self) -> None:
        bad = Path(self.mktemp())
        bad.write_text('[[trunk]]\nname = "x"\nallow = ["10.0.0.300/32"]\nagent_uri = "sip:{user}@h"\n')
        options = tap.Options()
        with self.assertRaises(SystemExit) as cm:
            options.parseOptions(["--config", str(bad)])
        self.assertEqual(cm.exception.code, f"{bad}: trunk[0].allow[0]: '10.0.0.300/32' is not an IPv4 or IPv6 network")
        self.assertIsInstance(cm.exception, tap.ConfigExit)
        self.assertIsInstance(cm.exception.error, ConfigError)
        self.assertIsNone(options.loaded_config)

    def test_missing_config(self) -> None:
        with self.assertRaises(SystemExit) as cm:
            tap.Options().parseOptions(["-c", "/nonexistent/sbc.toml"])
        self.assertEqual(cm.exception.code, "/nonexistent/sbc.toml: file not found")

    def test_unknown_option_is_a_usage_error(self) -> None:
        self.assertRaises(usage.UsageError, tap.Options().parseOptions, ["--bogus"])


class MakeServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.calls: list[tuple[Config, Any]] = []
        self.built = MultiService()

        def build_service(config: Config, reactor: Any) -> MultiService:
            self.calls.append((config, reactor))
            return self.built

        fake = types.ModuleType("sbc.service")
        fake.build_service = build_service  # type: ignore[attr-defined]
        self.patch(sys, "modules", {**sys.modules, "sbc.service": fake})
        self.gc_tuned: list[bool] = []
        self.patch(tap, "tune_gc", lambda: self.gc_tuned.append(True))  # not in the test process

    def test_builds_from_loaded_config_with_global_reactor(self) -> None:
        from twisted.internet import reactor

        options = tap.Options()
        options.parseOptions(["-c", str(default_config_path())])
        service = tap.makeService(options)
        self.assertIs(service, self.built)
        self.assertEqual(len(self.calls), 1)
        config, given_reactor = self.calls[0]
        self.assertIs(config, options.loaded_config)
        self.assertIs(given_reactor, reactor)
        self.assertEqual(self.gc_tuned, [True])

    def test_loads_config_when_options_were_not_parsed(self) -> None:
        options = tap.Options()
        options["config"] = str(default_config_path())
        tap.makeService(options)
        self.assertEqual(self.calls[0][0].path, default_config_path())

    def test_unparsed_bad_config_exits(self) -> None:
        options = tap.Options()
        options["config"] = "/nonexistent.toml"
        with self.assertRaises(SystemExit) as cm:
            tap.makeService(options)
        self.assertEqual(cm.exception.code, "/nonexistent.toml: file not found")
        self.assertEqual(self.calls, [])


class TuneGcTests(SynchronousTestCase):
    def test_freezes_then_raises_the_thresholds(self) -> None:
        import gc

        calls: list[Any] = []
        self.patch(gc, "collect", lambda *a: calls.append("collect"))
        self.patch(gc, "freeze", lambda: calls.append("freeze"))
        self.patch(gc, "set_threshold", lambda *t: calls.append(t))
        tap.tune_gc()
        self.assertEqual(calls, ["collect", "freeze", tap.GC_THRESHOLDS])
        young, middle, old = tap.GC_THRESHOLDS
        self.assertLessEqual(young, 1000)  # a young collection stays short
        self.assertGreaterEqual(min(middle, old), 2**30)  # never an automatic full one

    def test_full_collection_on_its_timer_logged(self) -> None:
        import gc

        from twisted.internet.task import Clock
        from twisted.logger import globalLogPublisher

        runs: list[int] = []
        self.patch(gc, "collect", lambda *a: runs.append(len(a)) or 5)
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        clock = Clock()
        service = tap.FullCollection(600.0, clock)
        service.startService()
        clock.advance(599)
        self.assertEqual(runs, [])  # not at start-up
        clock.advance(1)
        self.assertEqual((runs, service.runs, service.freed), ([0], 1, 5))  # a full collection
        clock.advance(600)
        self.assertEqual(service.runs, 2)
        logged = [e for e in events if "full garbage collection" in e.get("log_format", "")]
        self.assertEqual([e["freed"] for e in logged], [5, 5])
        service.stopService()
        clock.advance(6000)
        self.assertEqual(service.runs, 2)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_make_service_adds_the_full_collection(self) -> None:
        built = MultiService()
        fake = types.ModuleType("sbc.service")
        fake.build_service = lambda config, reactor: built  # type: ignore[attr-defined]
        self.patch(sys, "modules", {**sys.modules, "sbc.service": fake})
        self.patch(tap, "tune_gc", lambda: None)
        options = tap.Options()
        options.parseOptions(["-c", str(default_config_path())])
        tap.makeService(options)
        [child] = list(built)
        self.assertIsInstance(child, tap.FullCollection)
        self.assertEqual(child.interval, 600.0)


class DropinTests(SynchronousTestCase):
    def test_plugin_is_discovered(self) -> None:
        makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "sbc"]
        self.assertEqual(len(makers), 1)
        [maker] = makers
        self.assertIs(maker.options, tap.Options)
        self.assertIs(maker.makeService, tap.makeService)
        self.assertIn("session border controller", maker.description)

    def test_dropin_imports_only_service_maker(self) -> None:
        """The drop-in is read while listing plugins: it must stay tiny and import-light."""
        source = (REPO / "twisted" / "plugins" / "sbc_dropin.py").read_text()
        tree = ast.parse(source)
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        self.assertEqual(
            [(getattr(n, "module", None), [a.name for a in n.names]) for n in imports],
            [("twisted.application.service", ["ServiceMaker"])],
        )
        self.assertLessEqual(len([l for l in source.splitlines() if l.strip()]), 3)

    def test_no_init_files_in_twisted_namespace(self) -> None:
        self.assertFalse((REPO / "twisted" / "__init__.py").exists())
        self.assertFalse((REPO / "twisted" / "plugins" / "__init__.py").exists())
