# -*- test-case-name: tests.test_packaging -*-
"""End-to-end checks of packaging and the twistd plugin, in subprocesses.

These run the installed ``twistd``/``twist`` scripts the way an operator does, from a
directory outside the checkout, so they prove the drop-in is found through the
installation (``editable_mode=compat``), not through the working directory.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the installation alone must make the plugin visible
    return subprocess.run(
        args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


class TwistdTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cwd = Path(self.mktemp()).resolve()
        self.cwd.mkdir(parents=True)

    def tool(self, name: str) -> str:
        path = BIN / name
        if not path.exists():
            raise self.skipTest(f"{path} not found")
        return str(path)

    def assertOneLineFailure(self, result: subprocess.CompletedProcess[str], expected: str) -> None:
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output)
        self.assertNotIn("Traceback", output)
        self.assertEqual(output.strip().splitlines(), [expected], output)

    def test_twistd_help_lists_sbc(self) -> None:
        result = run([self.tool("twistd"), "--help"], self.cwd)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = [l.split() for l in result.stdout.splitlines()]
        self.assertIn("sbc", [l[0] for l in lines if l], result.stdout)

    def test_twistd_bad_config_is_one_line(self) -> None:
        bad = self.cwd / "sbc.toml"
        bad.write_text('[[trunk]]\nname = "pbx"\nallow = ["10.0.0.300/32"]\nagent_uri = "sip:{user}@h"\n')
        result = run([self.tool("twistd"), "-n", "sbc", "--config", str(bad)], self.cwd)
        self.assertOneLineFailure(
            result, f"{bad}: trunk[0].allow[0]: '10.0.0.300/32' is not an IPv4 or IPv6 network"
        )
        self.assertFalse((self.cwd / "twistd.pid").exists())

    def test_twistd_missing_config_is_one_line(self) -> None:
        result = run([self.tool("twistd"), "-n", "sbc", "-c", "nope.toml"], self.cwd)
        self.assertOneLineFailure(result, "nope.toml: file not found")

    def test_twist_bad_config_is_one_line(self) -> None:
        bad = self.cwd / "sbc.toml"
        bad.write_text("[sip]\nt1 = 'fast'\n")
        result = run([self.tool("twist"), "sbc", "--config", str(bad)], self.cwd)
        self.assertOneLineFailure(result, f"{bad}: sip.t1: expected a number, got a string")

    def test_twist_sbc_help(self) -> None:
        result = run([self.tool("twist"), "sbc", "--help"], self.cwd)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--config=", result.stdout)
        self.assertIn("etc/sbc.toml", result.stdout)

    def test_dropin_is_import_light(self) -> None:
        """Listing plugins must not import sbc.tap or install a reactor (STYLE C7)."""
        code = (
            "import sys\n"
            "from twisted.application.service import IServiceMaker\n"
            "from twisted.plugin import getPlugins\n"
            "names = [p.tapname for p in getPlugins(IServiceMaker)]\n"
            "assert 'sbc' in names, names\n"
            "heavy = [m for m in ('sbc', 'sbc.tap', 'sbc.config', 'twisted.internet.reactor') if m in sys.modules]\n"
            "print(heavy)\n"
        )
        result = run([sys.executable, "-c", code], self.cwd)
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "[]"), result.stderr)


class WheelTests(SynchronousTestCase):
    def test_wheel_ships_dropin_but_not_twisted_init(self) -> None:
        try:
            import wheel  # type: ignore[import-untyped]  # noqa: F401  (setuptools < 70.1 needs it for bdist_wheel)
        except ImportError:
            raise self.skipTest("the 'wheel' package is not installed")
        tmp = Path(self.mktemp()).resolve()
        src = tmp / "src"
        src.mkdir(parents=True)
        for name in ("setup.cfg", "pyproject.toml", "README.md"):
            if (REPO / name).exists():
                shutil.copy2(REPO / name, src / name)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in ("sbc", "plugins", "twisted"):
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        (src / "twisted" / "plugins" / "dropin.cache").write_bytes(b"stale cache")
        out = tmp / "dist"
        result = run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
             "-q", "-w", str(out), str(src)],
            tmp,
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        [whl] = out.glob("sbc-*.whl")
        names = set(zipfile.ZipFile(whl).namelist())
        self.assertIn("twisted/plugins/sbc_dropin.py", names)
        self.assertIn("sbc/tap.py", names)
        self.assertIn("sbc/config.py", names)
        self.assertIn("plugins/__init__.py", names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertNotIn("twisted/plugins/dropin.cache", names)
        self.assertFalse([n for n in names if n.startswith("tests/")])


class CiScriptTests(SynchronousTestCase):
    def test_ci_script_is_executable_bash(self) -> None:
        ci = REPO / ".ci" / "run"
        self.assertTrue(ci.stat().st_mode & stat.S_IXUSR)
        self.assertTrue(ci.read_text().startswith("#!/usr/bin/env bash\n"))
        result = run(["bash", "-n", str(ci)], REPO)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_readme_test_command_is_the_ci_script(self) -> None:
        readme = (REPO / "README.md").read_text(encoding="utf-8")
        self.assertIn("\nbash .ci/run\n", readme)
