"""A real WebSocket subscriber for the end-to-end tests, run as its own process:

    python ws_listen.py ws://127.0.0.1:8080/v1/events OUT.jsonl SECONDS

It is ``sbc events`` (:mod:`sbc.events_cmd`) with the output going to OUT.jsonl (one event
per line, flushed) and ``connected`` written to stdout once the handshake is done, so that a
test can wait for the subscription before it places its call.
"""

from __future__ import annotations

import sys

from sbc.events_cmd import listen


def main() -> int:
    url, path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with open(path, "a", encoding="utf-8") as out:
        return listen(url, out, seconds, connected=lambda: print("connected", flush=True),
                      err=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
