"""TimerHeap: keyed deadlines with lazy deletion."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.timers import TimerHeap


class TimerHeapTests(SynchronousTestCase):
    def test_earliest_first_and_rearm_replaces(self) -> None:
        t: TimerHeap[str] = TimerHeap()
        t.set("a", 5.0)
        t.set("b", 3.0)
        t.set("a", 1.0)  # re-armed earlier: the 5.0 entry is dead
        self.assertEqual(t.next_deadline(), 1.0)
        self.assertEqual(len(t), 2)
        self.assertIsNone(t.pop_due(0.5))
        self.assertEqual(t.pop_due(10.0), "a")
        self.assertEqual(t.pop_due(10.0), "b")
        self.assertIsNone(t.pop_due(10.0))
        self.assertIsNone(t.next_deadline())
        self.assertEqual(len(t), 0)

    def test_cancel(self) -> None:
        t: TimerHeap[tuple[str, str]] = TimerHeap()
        t.set(("c1", "x"), 2.0)
        t.cancel(("c1", "x"))
        t.cancel(("c1", "x"))  # idempotent
        self.assertNotIn(("c1", "x"), t)
        self.assertIsNone(t.next_deadline())
        self.assertIsNone(t.pop_due(3.0))

    def test_dead_entries_compacted(self) -> None:
        t: TimerHeap[int] = TimerHeap()
        for i in range(1000):
            t.set(i, float(i))
        for i in range(990):
            t.cancel(i)
        self.assertLess(len(t._heap), 100)
        self.assertEqual(t.next_deadline(), 990.0)

    @given(st.lists(st.tuples(st.sampled_from("abcdef"), st.floats(0, 100), st.booleans()),
                    max_size=60))
    def test_matches_a_plain_dict(self, ops: list[tuple[str, float, bool]]) -> None:
        t: TimerHeap[str] = TimerHeap()
        model: dict[str, float] = {}
        for key, when, cancel in ops:
            if cancel:
                t.cancel(key)
                model.pop(key, None)
            else:
                t.set(key, when)
                model[key] = when
        self.assertEqual(t.next_deadline(), min(model.values()) if model else None)
        fired = []
        while (key := t.pop_due(100.0)) is not None:
            fired.append(key)
        self.assertEqual(sorted(fired), sorted(model))
        self.assertEqual([model[k] for k in fired], sorted(model[k] for k in fired))
