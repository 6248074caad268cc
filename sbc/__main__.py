# -*- test-case-name: tests.test_quirks_service -*-
"""The ``sbc`` command (console script) and ``python -m sbc``: tools around the SBC.

::

    sbc normalize --trunk teams --config etc/sbc.toml invite.txt
    sbc normalize --vendor twilio --option country_code=1 invite.txt
    sbc normalize --list
    sbc explain --config etc/sbc.toml --source 203.0.113.7 [--transport udp] [--request invite.txt]
    sbc events [--admin 127.0.0.1:8080] [--call CALL_ID] [--seconds N]
    python -m sbc normalize ...

The SBC itself runs under twistd (``twistd -n sbc --config etc/sbc.toml``); this command
holds the helpers an operator or plugin author runs beside it.  ``normalize`` is
:mod:`sbc.normalize_cmd` (see docs/plugins.md §5); ``explain`` is :mod:`sbc.explain_cmd`.  Exit status: that of the sub-command;
2 for an unknown or missing sub-command.
"""

from __future__ import annotations

import sys
from typing import Sequence, TextIO

__all__ = ["COMMANDS", "main"]

#: Sub-command -> one-line description.
COMMANDS = {
    "normalize": "show what the vendor quirk plugins do to a SIP message file",
    "explain": "show which trunk and rule admit or refuse a source address (and request), and why",
    "events": "watch the agent event stream of a running SBC (one JSON event per line)",
}

USAGE = """usage: sbc COMMAND [ARGS...]

Commands:
{commands}

Run "sbc COMMAND --help" for a command's options.  The SBC itself runs under twistd:
  twistd -n sbc --config etc/sbc.toml
"""


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    return USAGE.format(commands="\n".join(f"  {name:{width}s}  {text}" for name, text in COMMANDS.items()))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``sbc ARGS``; returns the exit status."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        err.write(_usage())
        return 2
    command = args[0]
    if command in ("-h", "--help", "help"):
        out.write(_usage())
        return 0
    if command == "normalize":
        from sbc.normalize_cmd import main as normalize

        try:
            return normalize(args, out=out, err=err)
        except BrokenPipeError:  # `sbc normalize ... | head`: the reader left, nothing to say
            return 1
    if command == "explain":
        from sbc.explain_cmd import main as explain

        try:
            return explain(args, out=out, err=err)
        except BrokenPipeError:
            return 1
    if command == "events":
        from sbc.events_cmd import main as events

        try:
            return events(args, out=out, err=err)
        except BrokenPipeError:
            return 1
    err.write(f"sbc: unknown command {command!r}\n\n{_usage()}")
    return 2


if __name__ == "__main__":  # pragma: no cover - python -m sbc
    sys.exit(main())
