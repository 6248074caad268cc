# -*- test-case-name: tests.test_quirks_loader -*-
"""Plugin discovery (sbc.quirks.loader): the plugins package, errors that stop start-up, and a
third-party distribution installed with pip and found through sys.path."""

from __future__ import annotations

import importlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.quirks.loader import PluginError, discover, plugin_modules, registry

from .test_layering import REPO

_counter = itertools.count()

HEADER = """
from twisted.plugin import IPlugin
from zope.interface import implementer
from sbc.quirks import IVendorQuirk, QuirkBase, VendorDefaults
"""


def quirk(cls: str, name: str, order: int = 100, extra: str = "") -> str:
    return textwrap.dedent(f"""
        @implementer(IPlugin, IVendorQuirk)
        class {cls}(QuirkBase):
            name = {name!r}
            title = {cls!r}
            order = {order}
        {textwrap.indent(textwrap.dedent(extra), "    ")}
        {cls.lower()} = {cls}()
        """)


class FakePackageMixin:
    """Builds a throwaway plugin package ``qpkgN`` (with __init__.py) in a temporary folder."""

    def make_package(self, modules: dict[str, str], extra_dirs: int = 0) -> object:
        root = Path(tempfile.mkdtemp(prefix="sbc-quirk-test-"))
        self.addCleanup(shutil.rmtree, root, True)  # type: ignore[attr-defined]
        name = f"qpkg{os.getpid()}_{next(_counter)}"
        pkg = root / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        for module, source in modules.items():
            (pkg / f"{module}.py").write_text(HEADER + source)
        sys.path.insert(0, str(root))
        self.addCleanup(sys.path.remove, str(root))  # type: ignore[attr-defined]
        self.addCleanup(self._forget, name)  # type: ignore[attr-defined]
        importlib.invalidate_caches()
        return importlib.import_module(name)

    @staticmethod
    def _forget(name: str) -> None:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


class DiscoverTests(FakePackageMixin, SynchronousTestCase):
    def test_found_in_order_then_name(self) -> None:
        pkg = self.make_package({
            "b": quirk("Bee", "bee"),
            "a": quirk("Ay", "zed", order=100) + quirk("Early", "early", order=5),
        })
        found = discover(pkg)  # type: ignore[arg-type]
        self.assertEqual([q.name for q in found], ["early", "bee", "zed"])
        self.assertEqual(list(registry(pkg)), ["early", "bee", "zed"])  # type: ignore[arg-type]

    def test_module_failing_to_import(self) -> None:
        pkg = self.make_package({"good": quirk("Good", "good"), "bad": "raise ImportError('no libfoo')\n"})
        with self.assertRaises(PluginError) as e:
            discover(pkg)  # type: ignore[arg-type]
        self.assertIn(f"{pkg.__name__}.bad", str(e.exception))  # type: ignore[attr-defined]
        self.assertIn("failed to import", str(e.exception))
        self.assertIn("no libfoo", str(e.exception))

    def test_syntax_error(self) -> None:
        pkg = self.make_package({"oops": "def (:\n"})
        with self.assertRaises(PluginError) as e:
            discover(pkg)  # type: ignore[arg-type]
        self.assertIn(".oops", str(e.exception))
        self.assertIn("SyntaxError", str(e.exception))

    def test_plugin_not_a_quirk(self) -> None:
        pkg = self.make_package({"other": textwrap.dedent("""
            @implementer(IPlugin)
            class Other:
                pass
            other = Other()
            """)})
        with self.assertRaises(PluginError) as e:
            discover(pkg)  # type: ignore[arg-type]
        self.assertIn(".other.other", str(e.exception))
        self.assertIn("does not provide IVendorQuirk", str(e.exception))

    def test_quirk_without_iplugin(self) -> None:
        pkg = self.make_package({"shy": textwrap.dedent("""
            class Shy(QuirkBase):
                name = "shy"
            shy = Shy()
            """)})
        with self.assertRaises(PluginError) as e:
            discover(pkg)  # type: ignore[arg-type]
        self.assertIn(".shy.shy", str(e.exception))
        self.assertIn("not twisted.plugin.IPlugin", str(e.exception))

    def test_incomplete_implementation(self) -> None:
        pkg = self.make_package({"half": textwrap.dedent("""
            @implementer(IPlugin, IVendorQuirk)
            class Half:
                name = "half"
                title = "Half"
                order = 100
                defaults = VendorDefaults()
                def recognise(self, message):
                    return False
            half = Half()
            """)})
        with self.assertRaises(PluginError) as e:
            discover(pkg)  # type: ignore[arg-type]
        self.assertIn(".half.half", str(e.exception))
        self.assertIn("does not implement IVendorQuirk", str(e.exception))

    def test_bad_attributes(self) -> None:
        pkg = self.make_package({"m": quirk("Caps", "Caps")})
        with self.assertRaises(PluginError) as e:
            discover(pkg)  # type: ignore[arg-type]
        self.assertIn("name must match", str(e.exception))
        pkg = self.make_package({"m": quirk("Ord", "ord", extra="order = '1'")})
        self.assertRaises(PluginError, discover, pkg)
        pkg = self.make_package({"m": quirk("Dflt", "dflt", extra="defaults = {}")})
        with self.assertRaises(PluginError) as e:
            discover(pkg)  # type: ignore[arg-type]
        self.assertIn("VendorDefaults", str(e.exception))

    def test_duplicate_names(self) -> None:
        pkg = self.make_package({"one": quirk("One", "same"), "two": quirk("Two", "same")})
        with self.assertRaises(PluginError) as e:
            discover(pkg)  # type: ignore[arg-type]
        message = str(e.exception)
        self.assertIn("two vendor plugins are named 'same'", message)
        self.assertIn(".one.one", message)
        self.assertIn(".two.two", message)

    def test_same_module_in_two_directories(self) -> None:
        pkg = self.make_package({"dup": quirk("Dup", "dup")})
        other = Path(tempfile.mkdtemp(prefix="sbc-quirk-test-"))
        self.addCleanup(shutil.rmtree, other, True)
        (other / "dup.py").write_text(HEADER + quirk("Dup", "dup"))
        pkg.__path__.append(str(other))  # type: ignore[attr-defined]
        with self.assertRaises(PluginError) as e:
            plugin_modules(pkg)  # type: ignore[arg-type]
        self.assertIn("installed twice", str(e.exception))
        self.assertIn(str(other / "dup.py"), str(e.exception))

    def test_imported_helpers_are_ignored(self) -> None:
        pkg = self.make_package({"helper": "from sbc.quirks import CanonicalCall\nX = 1\n" + quirk("H", "h")})
        self.assertEqual([q.name for q in discover(pkg)], ["h"])  # type: ignore[arg-type]

    def test_the_real_plugins_package(self) -> None:
        found = discover()
        names = [q.name for q in found]
        self.assertIn("generic", names)
        self.assertEqual(len(names), len(set(names)))
        self.assertEqual(names, [q.name for q in sorted(found, key=lambda q: (q.order, q.name))])


class ThirdPartyDistributionTests(SynchronousTestCase):
    """tests/sample_quirk_dist is pip-installed (offline, no build isolation) into a target
    folder; a fresh interpreter with that folder on sys.path finds plugins/acme.py through
    the top-level plugins package and applies it."""

    def test_installed_distribution_is_discovered_and_applied(self) -> None:
        work = Path(tempfile.mkdtemp(prefix="sbc-quirk-dist-"))
        self.addCleanup(shutil.rmtree, work, True)
        source = work / "src"
        shutil.copytree(REPO / "tests" / "sample_quirk_dist", source,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        target = work / "site"
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--no-index",
             "--disable-pip-version-check", "--target", str(target), str(source)],
            capture_output=True, text=True, timeout=300, cwd=work,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertTrue((target / "plugins" / "acme.py").exists())
        self.assertFalse((target / "plugins" / "__init__.py").exists())
        code = textwrap.dedent("""
            from sbc.quirks.loader import registry
            from sbc.quirks.chain import QuirkChain
            from sbc.sip.message import parse_message
            quirks = registry()
            acme = quirks["acme"]
            print("module", type(acme).__module__)
            print("names", " ".join(quirks))
            chain = QuirkChain([acme], trunk="acme-1", sbc_fqdn="sbc.example.com")
            invite = parse_message(
                b"INVITE sip:917168712781@sbc.example.com SIP/2.0\\r\\n"
                b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\\r\\n"
                b"From: <sip:pbx@acme.example>;tag=1\\r\\nTo: <sip:917168712781@sbc.example.com>\\r\\n"
                b"Call-ID: c1\\r\\nCSeq: 1 INVITE\\r\\nX-Acme-Call-Id: AC-77\\r\\nX-Acme-Debug: 1\\r\\n"
                b"X-Acme-Caller: 7165550100\\r\\nX-Acme-Queue: sales\\r\\nContent-Length: 0\\r\\n\\r\\n")
            print("recognised", chain.recognise(invite))
            inbound = chain.request_from_pbx(invite)
            print("debug", inbound.get("X-Acme-Debug"))
            for name, value in chain.canonical(inbound).headers():
                print("header", name, value)
            print("toward", chain.request_to_pbx(invite).get("X-Acme-Sbc").decode())
            print("notices", chain.notices())
            """)
        env = dict(os.environ, PYTHONPATH=str(target))
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             cwd=work, env=env)
        self.assertEqual(run.returncode, 0, run.stderr)
        lines = run.stdout.splitlines()
        self.assertIn("module plugins.acme", lines)
        names = [line for line in lines if line.startswith("names ")][0].split()[1:]
        self.assertEqual(names[0], "acme")  # order 50 runs first
        self.assertIn("generic", names)
        self.assertIn("recognised True", lines)
        self.assertIn("debug None", lines)
        for expected in ("header X-SBC-Trunk acme-1", "header X-SBC-Vendor acme",
                         "header X-SBC-Vendor-Call-ID AC-77", "header X-SBC-Callee +17168712781",
                         "header X-SBC-Caller +17165550100", "header X-Acme-Queue sales",
                         "toward sbc.example.com", "notices []"):
            self.assertIn(expected, lines)
