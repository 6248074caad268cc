# -*- test-case-name: tests.test_events_cmd -*-
"""``sbc events``: the subscription URL from the options (the subscriber itself is exercised
end to end by tests/integration/test_dtmf_e2e.py through tests/integration/ws_listen.py)."""

from __future__ import annotations

import io
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sbc import __main__ as cli
from sbc import events_cmd


class EventsCommandTests(SynchronousTestCase):
    def run_main(self, *argv: str) -> tuple[int, list[tuple[str, Any]]]:
        calls: list[tuple[str, Any]] = []

        def fake_listen(url: str, out: Any, seconds: Any, **kwargs: Any) -> int:
            calls.append((url, seconds))
            return 0

        self.patch(events_cmd, "listen", fake_listen)
        code = cli.main(list(argv), io.StringIO(), io.StringIO())
        return code, calls

    def test_all_calls_by_default(self) -> None:
        self.assertEqual(self.run_main("events"), (0, [("ws://127.0.0.1:8080/v1/events", None)]))

    def test_one_call_and_a_time_limit(self) -> None:
        code, calls = self.run_main("events", "--admin", "10.0.0.1:9000", "--call", "abc123", "--seconds", "5")
        self.assertEqual((code, calls), (0, [("ws://10.0.0.1:9000/v1/calls/abc123/events", 5.0)]))

    def test_listed_in_the_usage(self) -> None:
        out = io.StringIO()
        self.assertEqual(cli.main(["--help"], out, io.StringIO()), 0)
        self.assertIn("events", out.getvalue())
