# -*- test-case-name: tests.test_cdr -*-
"""Call detail records: one JSON object per line for every call the B2BUA finished.

:func:`cdr_record` turns a finished :class:`~sbc.b2bua.call.Call` into a plain ``dict`` and
:func:`cdr_line` into one line of JSON; both are pure (no I/O, no clock) and never raise on
an odd call -- a field that cannot be read is ``null``.  :class:`CdrWriter` sends the lines to
a sink: :class:`FileSink` (a file opened for appending, line-buffered, reopened by
:meth:`CdrWriter.reopen` after logrotate moved it) or :class:`LogSink` (a ``twisted.logger``
event in the ``sbc.cdr`` namespace).

A record holds identities and times only: no SDP, no header other than the user parts of
From and of the Request-URI, and no credentials, ever.

Fields (times are UTC, ISO 8601 with milliseconds, plus the same instant in Unix seconds)::

    call_id        our id for the call (also the B leg's Call-ID)
    trunk, vendor  the trunk the call came in on and its vendor profile
    direction      "inbound" (PBX -> agent host) or "outbound"
    caller         user part of the A leg's From URI
    callee         user part of the A leg's Request-URI (the dialled number)
    a_call_id      the PBX's Call-ID;   b_call_id  the agent leg's Call-ID
    start, start_unix        INVITE received
    answer, answer_unix      agent answered (null when it never did)
    end, end_unix            both legs ended
    duration       seconds from answer to end (0 when unanswered)
    setup_time     seconds from start to answer (null when unanswered)
    result         answered | cancelled | rejected | failed (see call_result)
    end_reason     bye-a, bye-b, cancel, no-answer, max-duration, failed-503 ...
    a_final_status final status we sent the PBX; b_final_status  the agent's (408: timeout)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Protocol, TextIO
from urllib.parse import unquote

from twisted.logger import Logger

__all__ = [
    "CDR_FIELDS",
    "CdrSink",
    "CdrWriter",
    "FileSink",
    "LogSink",
    "MemorySink",
    "call_result",
    "cdr_line",
    "cdr_record",
    "iso_utc",
]

#: The keys of every record, in output order.
CDR_FIELDS = (
    "call_id", "trunk", "vendor", "direction", "caller", "callee", "a_call_id", "b_call_id",
    "start", "start_unix", "answer", "answer_unix", "end", "end_unix",
    "duration", "setup_time", "result", "end_reason", "a_final_status", "b_final_status",
)

_MAX_TEXT = 256  # longest identifier copied into a record


def iso_utc(seconds: float | None) -> str | None:
    """``1700000000.5`` -> ``"2023-11-14T22:13:20.500Z"``; None for None or an impossible time."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return None
    try:
        when = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unix(seconds: float | None) -> float | None:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return None
    return round(float(seconds), 3)


def _text(get: Callable[[], Any]) -> str | None:
    """A short printable string from ``get()``, or None when it is missing or unreadable."""
    try:
        value = get()
    except Exception:  # a lazily parsed header that does not parse: leave the field empty
        return None
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    if not text:
        return None
    text = text[:_MAX_TEXT]
    if not text.isprintable():  # the usual case needs no character-by-character pass
        text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text


def _status(get: Callable[[], Any]) -> int | None:
    try:
        value = get()
    except Exception:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 699 else None


def _time(call: Any, name: str) -> float | None:
    value = getattr(call, name, None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def call_result(call: Any) -> str:
    """How a call ended, for CDRs and ``sbc_calls_total``:

    * ``answered``: the agent answered (whatever came after);
    * ``cancelled``: the PBX gave up first (CANCEL);
    * ``rejected``: the agent refused it with a 4xx or 6xx final status other than 408 (busy,
      decline, not found ...);
    * ``failed``: anything else -- no answer, timeout, 5xx, no route, an internal error.
    """
    if _time(call, "answered") is not None:
        return "answered"
    reason = getattr(call, "end_reason", None)
    a_status = _status(lambda: call.a_status)
    if reason == "cancel" or (reason is None and a_status == 487):
        return "cancelled"
    b_status = _status(lambda: call.b_status)
    if b_status is not None and b_status != 408 and (400 <= b_status < 500 or b_status >= 600):
        return "rejected"
    return "failed"


def cdr_record(call: Any, *, vendor: str | None = None, direction: str | None = None) -> dict[str, Any]:
    """The CDR of a finished call as a dict with exactly the keys of :data:`CDR_FIELDS`.

    ``vendor`` is the trunk's vendor profile (the call itself only knows the trunk name);
    ``direction`` defaults to the call's own ``direction`` attribute, else ``"inbound"``.
    """
    start = _time(call, "created")
    answer = _time(call, "answered")
    end = _time(call, "ended")
    duration: float | None = 0.0
    setup: float | None = None
    if answer is not None:
        duration = round(max(0.0, end - answer), 3) if end is not None else None
        setup = round(max(0.0, answer - start), 3) if start is not None else None
    a = getattr(call, "a", None)
    b = getattr(call, "b", None)
    reason = getattr(call, "end_reason", None)
    return {
        "call_id": _text(lambda: call.id),
        "trunk": _text(lambda: call.trunk),
        "vendor": _text(lambda: vendor),
        "direction": _text(lambda: direction or getattr(call, "direction", None) or "inbound"),
        "caller": _text(lambda: unquote(a.invite.from_.uri.user)),
        "callee": _text(lambda: unquote(a.invite.parsed_uri.user)),
        "a_call_id": _text(lambda: a.invite.call_id),
        "b_call_id": _text(lambda: b.call_id),
        "start": iso_utc(start),
        "start_unix": _unix(start),
        "answer": iso_utc(answer),
        "answer_unix": _unix(answer),
        "end": iso_utc(end),
        "end_unix": _unix(end),
        "duration": duration,
        "setup_time": setup,
        "result": call_result(call),
        "end_reason": _text(lambda: reason) or "unknown",
        "a_final_status": _status(lambda: call.a_status),
        "b_final_status": _status(lambda: call.b_status),
    }


def _ended_at(record: Mapping[str, Any], end: float) -> dict[str, Any]:
    fields: dict[str, Any] = {"end": iso_utc(end), "end_unix": _unix(end)}
    answer = record.get("answer_unix")
    if isinstance(answer, (int, float)) and fields["end_unix"] is not None:
        fields["duration"] = round(max(0.0, fields["end_unix"] - answer), 3)
    return fields


def cdr_line(record: Mapping[str, Any]) -> str:
    """One line of JSON (ASCII, no newline inside, newline at the end)."""
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=str) + "\n"


# --------------------------------------------------------------------------------------
# Sinks


class CdrSink(Protocol):
    """Where CDR lines go."""

    def write_line(self, line: str, record: Mapping[str, Any]) -> None: ...

    def reopen(self) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """Appends lines to ``path``.  Line-buffered: each CDR reaches the file when written.

    :meth:`reopen` closes and opens the path again, so that after logrotate renamed the file
    new records go to a fresh one.  Opening fails loudly (``OSError``) at construction, so
    an unwritable CDR path stops the SBC at start-up instead of losing records silently.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file: TextIO | None = self._open()

    def _open(self) -> TextIO:
        return open(self.path, "a", buffering=1, encoding="utf-8", newline="\n")

    def write_line(self, line: str, record: Mapping[str, Any]) -> None:
        if self._file is None:
            self._file = self._open()
        self._file.write(line)

    def reopen(self) -> None:
        old, self._file = self._file, None
        if old is not None:
            old.close()
        self._file = self._open()

    def close(self) -> None:
        old, self._file = self._file, None
        if old is not None:
            old.close()


class LogSink:
    """Emits each CDR as a ``twisted.logger`` event (namespace ``sbc.cdr``) whose ``cdr``
    key holds the record, for log pipelines that already ship JSON events."""

    def __init__(self, logger: Logger | None = None) -> None:
        self.log = logger if logger is not None else Logger(namespace="sbc.cdr")

    def write_line(self, line: str, record: Mapping[str, Any]) -> None:
        self.log.info("CDR {cdr_json}", cdr_json=line.rstrip("\n"), cdr=dict(record))

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemorySink:
    """Keeps the lines in a list (tests, and the integration harness)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.reopened = 0
        self.closed = False

    def write_line(self, line: str, record: Mapping[str, Any]) -> None:
        self.lines.append(line)

    def reopen(self) -> None:
        self.reopened += 1

    def close(self) -> None:
        self.closed = True


# --------------------------------------------------------------------------------------
# Writer


class CdrWriter:
    """Formats finished calls and writes them to ``sink``.

    ``vendors`` maps a trunk name to its vendor profile (see :meth:`for_trunks`).  A sink
    that fails (disk full, file removed with its directory) is logged and counted in
    :attr:`errors`; the call that failed is not retried and nothing is raised to the caller.
    """

    log = Logger()

    def __init__(self, sink: CdrSink, vendors: Mapping[str, str] | None = None) -> None:
        self.sink = sink
        self.vendors: Mapping[str, str] = dict(vendors or {})
        self.written = 0
        self.errors = 0

    @classmethod
    def for_trunks(cls, sink: CdrSink, trunks: Any) -> "CdrWriter":
        return cls(sink, {t.name: t.vendor for t in trunks or ()})

    def record(self, call: Any) -> dict[str, Any]:
        trunk = getattr(call, "trunk", None)
        return cdr_record(call, vendor=self.vendors.get(trunk) if isinstance(trunk, str) else None)

    def write(self, call: Any, *, end: float | None = None, end_reason: str | None = None) -> dict[str, Any]:
        """Write the CDR of ``call``; returns the record.  ``end`` and ``end_reason`` stand in
        for a call that has not ended (a CDR written at shutdown)."""
        record = self.record(call)
        if end is not None and record["end"] is None:
            record.update(_ended_at(record, end))
        if end_reason is not None and getattr(call, "ended", None) is None:
            record["end_reason"] = end_reason
        try:
            self.sink.write_line(cdr_line(record), record)
        except Exception:
            self.errors += 1
            self.log.failure("writing the CDR of call {call_id} failed", call_id=record["call_id"])
        else:
            self.written += 1
        return record

    def reopen(self) -> None:
        """Reopen the sink (after logrotate); a failure is logged, the next write retries."""
        try:
            self.sink.reopen()
        except Exception:
            self.errors += 1
            self.log.failure("reopening the CDR sink failed")

    def close(self) -> None:
        try:
            self.sink.close()
        except Exception:
            self.log.failure("closing the CDR sink failed")
