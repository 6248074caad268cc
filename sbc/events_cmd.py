"""``sbc events``: watch the agent event stream of a running SBC (a WebSocket subscriber).

::

    sbc events                                   # ws://127.0.0.1:8080/v1/events, until Ctrl-C
    sbc events --admin 127.0.0.1:8080 --call d45b7eebee1ba39b3 --seconds 60

Prints one JSON object per line (the events exactly as an agent host receives them:
``call.started``, ``input_audio_buffer.dtmf_event_received``, ``conversation.item.create``,
``call.ended``) and exits when the SBC closes the stream (a per-call stream closes after the
call's ``call.ended``), after ``--seconds``, or on Ctrl-C.  Status 0 when it connected, 1 when
it could not.  Built on Twisted's own WebSocket client; for a loopback admin listener (a
listener that requires ``events.token`` needs a client that can send the bearer header).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence, TextIO

__all__ = ["listen", "main"]


class _Printer:
    """The WebSocket protocol: each text message becomes one output line."""

    def __init__(self, out: TextIO, connected: Callable[[], None], lost: Callable[[], None]) -> None:
        self.out = out
        self._connected = connected
        self._lost = lost

    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        self._connected()

    def textMessageReceived(self, data: str) -> None:
        self.out.write(data + "\n")
        self.out.flush()

    def bytesMessageReceived(self, data: bytes) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        self._lost()


class _Factory:
    def __init__(self, protocol: _Printer) -> None:
        self.protocol = protocol

    def buildProtocol(self, url: str) -> _Printer:
        return self.protocol


def listen(url: str, out: TextIO, seconds: float | None = None, *,
           connected: Callable[[], None] = lambda: None, err: TextIO | None = None) -> int:
    """Subscribe to ``url`` and copy its events to ``out`` until the stream ends, ``seconds``
    pass, or the process is interrupted; runs the global reactor (a command-line tool only)."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.web.websocket import WebSocketClientEndpoint

    err = err if err is not None else sys.stderr
    state = {"connected": False}

    def stop() -> None:
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined]

    def on_connected() -> None:
        state["connected"] = True
        connected()

    def failed(failure: Any) -> None:
        err.write(f"sbc events: cannot subscribe to {url}: {failure.getErrorMessage()}\n")
        stop()

    printer = _Printer(out, on_connected, stop)
    endpoint = WebSocketClientEndpoint.new(reactor, url)  # type: ignore[arg-type]
    d = Deferred.fromCoroutine(endpoint.connect(_Factory(printer)))
    d.addErrback(failed)
    if seconds is not None:
        reactor.callLater(seconds, stop)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return 0 if state["connected"] else 1


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "events":
        args = args[1:]
    parser = argparse.ArgumentParser(prog="sbc events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin", default="127.0.0.1:8080", help="the admin listener, HOST:PORT (default %(default)s)")
    parser.add_argument("--call", help="only this call's events (its call_id)")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    try:
        options = parser.parse_args(args)
    except SystemExit as e:
        return int(e.code or 0)
    path = f"/v1/calls/{options.call}/events" if options.call else "/v1/events"
    url = f"ws://{options.admin}{path}"
    return listen(url, out, options.seconds,
                  connected=lambda: err.write(f"# subscribed to {url}\n"), err=err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
