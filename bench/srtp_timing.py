#!/usr/bin/env python
"""Micro-benchmark of sbc.media.srtp.SrtpEndpoint: the per-packet SRTP cost in the relay.

Run:  .venv/bin/python bench/srtp_timing.py [--number N]

Prints microseconds per protect_rtp / unprotect_rtp of a 172-byte G.711 RTP packet (12-byte
header + 20 ms of PCMU) for each SDES suite, best of 5 runs of N packets, timeit style.
Each run uses fresh sequence numbers, as a real stream does (libsrtp refuses to protect an
index twice and to unprotect a replay), so the figures include the replay-window bookkeeping.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbc.media.core.sdes import SUITES, new_keying  # noqa: E402
from sbc.media.srtp import SrtpEndpoint  # noqa: E402

PAYLOAD = b"\xd5" * 160


def packets(first: int, count: int) -> list[bytes]:
    return [
        struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, 0x5EED) + PAYLOAD
        for seq in range(first, first + count)
    ]


def measure(suite: str, number: int, repeat: int) -> tuple[float, float]:
    ours, theirs = new_keying(suite), new_keying(suite)
    sender = SrtpEndpoint(theirs, ours)
    receiver = SrtpEndpoint(ours, theirs)
    best_protect = best_unprotect = float("inf")
    seq = 0
    for _ in range(repeat):
        plain = packets(seq, number)
        seq += number
        protect = sender.protect_rtp
        start = time.perf_counter()
        protected = [protect(p) for p in plain]
        best_protect = min(best_protect, time.perf_counter() - start)
        unprotect = receiver.unprotect_rtp
        start = time.perf_counter()
        out = [unprotect(p) for p in protected]
        best_unprotect = min(best_unprotect, time.perf_counter() - start)
        if out != plain:
            raise SystemExit(f"{suite}: round trip failed")
    return best_protect / number * 1e6, best_unprotect / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="packets per run")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"172-byte G.711 RTP packet, best of {args.repeat} x {args.number} packets, us/packet")
    print(f"{'suite':<26} {'protect':>8} {'unprotect':>10}")
    for suite in SUITES:
        protect, unprotect = measure(suite, args.number, args.repeat)
        print(f"{suite:<26} {protect:8.2f} {unprotect:10.2f}")


if __name__ == "__main__":
    main()
