"""A real WebSocket subscriber for the end-to-end tests, run as its own process:

    python ws_listen.py ws://127.0.0.1:8080/v1/events OUT.jsonl SECONDS

It connects with Twisted's WebSocket client, writes ``connected`` to stdout once the
handshake is done, appends every text message to OUT.jsonl (one per line, flushed), and
exits after SECONDS (or when the server closes the stream).
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.web.websocket import WebSocketClientEndpoint


class Listener:
    def __init__(self, out: Any) -> None:
        self.out = out

    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        print("connected", flush=True)

    def textMessageReceived(self, data: str) -> None:
        self.out.write(data + "\n")
        self.out.flush()

    def bytesMessageReceived(self, data: bytes) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        if reactor.running:
            reactor.stop()


class Factory:
    def __init__(self, out: Any) -> None:
        self.out = out

    def buildProtocol(self, url: str) -> Listener:
        return Listener(self.out)


def main() -> None:
    url, path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    out = open(path, "a", encoding="utf-8")
    endpoint = WebSocketClientEndpoint.new(reactor, url)

    def failed(failure: Any) -> None:
        print(f"failed: {failure.getErrorMessage()}", flush=True)
        if reactor.running:
            reactor.stop()

    d = Deferred.fromCoroutine(endpoint.connect(Factory(out)))
    d.addErrback(failed)
    reactor.callLater(seconds, lambda: reactor.running and reactor.stop())
    reactor.run()
    out.close()


if __name__ == "__main__":
    main()
