# -*- test-case-name: tests.test_admission -*-
"""``sbc explain``: which trunk and which rule admit or refuse a source (and a request), and why.

::

    python -m sbc explain --config etc/sbc.toml --source 203.0.113.7
    python -m sbc explain --config etc/sbc.toml --source 2001:db8::7 --transport tls
    python -m sbc explain --config etc/sbc.toml --source 203.0.113.7 --request invite.txt

It walks the same steps as the running SBC, in order:

1. the pre-parse filter (``[security] allowlist``): the networks that hold the source, with
   their owner (``trunk:<name>``, ``agent``, ``peer:<trunk>`` for a peer the SBC sends to)
   and, for a vendor plugin's published range, its ``vendor:<name>`` origin; none: the
   source is refused (``source-not-allowed``: UDP dropped unanswered, TCP/TLS closed);
2. the trunks in file order, as the B2BUA picks one for a new INVITE: the first trunk whose
   ``allow`` holds the source and, when it has ``match_ruri`` patterns, whose pattern matches
   the Request-URI (with ``--request``) takes the call; a source of trunks whose patterns
   all fail gets 404, a source of no trunk 403 (``no-matching-trunk``); a trunk with
   ``[trunk.auth]`` says when digest credentials are asked for (401);
3. from an ``[agent] allow`` source, the trunk whose ``dial`` pattern matches the called user;
4. the request's header lines against ``security.max_headers`` (400 Too Many Headers) and
   the flood limits that apply to the source.

Exit status: 0 admitted; 1 refused; 2 bad arguments, configuration or message.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any, Mapping, Sequence, TextIO

from sbc.policy.allowlist import Allowlist, Rule, normalise_host, rules_from_config

__all__ = ["Explanation", "explain", "main"]


class _Fail(Exception):
    pass


class Explanation:
    """What :func:`explain` found: ``lines`` to print, ``admitted``, the ``reason`` of a
    refusal (a ``sbc_admission_refusals_total`` reason) and the ``trunk`` that takes the call."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.admitted = False
        self.reason = ""
        self.trunk: str | None = None
        self.status: int | None = None

    def say(self, text: str) -> None:
        self.lines.append(text)

    def refuse(self, reason: str, status: int | None, text: str) -> "Explanation":
        self.admitted = False
        self.reason = reason
        self.status = status
        self.say(f"verdict: REFUSED ({reason}{f', {status}' if status else ''}): {text}")
        return self


def _origin_label(rule: Rule) -> str:
    return f", from {rule.origin}" if rule.origin else ""


def _user_of(uri: str) -> str | None:
    """The user part of a sip:/sips:/tel: URI text (for ``dial`` patterns), unescaped."""
    from sbc.sip.uri import parse_uri, unescape

    try:
        user = parse_uri(uri).user
    except Exception:
        return None
    return unescape(user) if user else None


def explain(config: Any, source: str, *, transport: str = "udp", request: Any = None,
            vendor_ranges: Mapping[str, Sequence[str]] | None = None) -> Explanation:
    """Explain the admission of ``source`` (and ``request``, a parsed
    :class:`~sbc.sip.message.Request`, or None) under ``config`` (a loaded
    :class:`~sbc.config.Config` whose ``vendor:`` allow entries may still be unresolved;
    ``vendor_ranges`` resolves them: vendor name -> its published networks).  Pure."""
    ex = Explanation()
    try:
        addr = ipaddress.ip_address(normalise_host(source))
    except ValueError:
        raise _Fail(f"--source {source!r} is not an IP address") from None
    ex.say(f"source {source} over {transport}" + (f" (judged as {addr})" if str(addr) != source else ""))
    security = config.security
    agent_nets = tuple(getattr(config.agent, "allow", ()))
    rules, why = rules_from_config(config.trunks, agent_nets, vendor_ranges=vendor_ranges)
    allowlist = Allowlist(rules, admit_all=bool(why), admit_all_why=why)

    # 1. The pre-parse filter.
    matching = allowlist.rules_for(str(addr))
    if not security.allowlist:
        ex.say("pre-parse filter: off (security.allowlist = false): every source is parsed")
    elif allowlist.admit_all:
        ex.say(f"pre-parse filter: admits every source: {allowlist.admit_all_why}")
    elif matching:
        for rule in matching:
            ex.say(f"pre-parse filter: admitted by {rule.network} ({rule.owner}{_origin_label(rule)})")
    else:
        how = "datagrams dropped unanswered" if transport == "udp" else "connections closed as they are accepted"
        return ex.refuse("source-not-allowed", None,
                         f"no trunk's or agent's network and no peer the SBC sends to holds {addr}; {how}, "
                         "before any parsing")

    # 2./3. Which trunk would take a new call.
    uri = None
    if request is not None:
        uri = request.uri.decode("utf-8", "replace") if isinstance(request.uri, bytes) else str(request.uri)
        ex.say(f"request: {request.method} {uri}")
        limit = security.max_headers
        n = len(request.headers)
        if limit and n > limit:
            return ex.refuse("too-many-headers", 400,
                             f"{n} header lines, more than security.max_headers ({limit}): 400 Too Many Headers")
    from_agent = any(addr.version == net.version and addr in net for net in agent_nets)
    if from_agent:
        net = next(n for n in agent_nets if addr.version == n.version and addr in n)
        ex.say(f"agent: {addr} is in [agent] allow {net}: its INVITEs are calls toward a trunk's dial patterns")
        user = _user_of(uri) if uri else None
        if user is not None:
            for trunk in config.trunks:
                if getattr(trunk, "peer_uri", None) is None:
                    continue
                for pattern in getattr(trunk, "dial", ()):
                    if pattern.fullmatch(user):
                        ex.trunk = trunk.name
                        ex.admitted = True
                        ex.say(f"trunk {trunk.name}: dial pattern {pattern.pattern!r} matches the called user "
                               f"{user!r}: outbound call to {trunk.peer_uri}")
                        ex.say(f"verdict: ADMITTED: outbound through trunk {trunk.name} "
                               f"(rule: [agent] allow {net}, dial {pattern.pattern!r})")
                        return _limits(ex, security)
            ex.say(f"agent: no trunk's dial pattern matches {user!r}; trying the trunks as for any source")
    mismatch = False
    for trunk in config.trunks:
        owned = [r for r in matching if r.owner == f"trunk:{trunk.name}"]
        auth = getattr(trunk, "auth", None)
        if not owned:
            if not tuple(getattr(trunk, "allow", ()) or ()) and auth is not None:
                owned_text = "any source (no allow networks: digest credentials alone admit)"
            else:
                ex.say(f"trunk {trunk.name}: none of its allow networks holds {addr}")
                continue
        else:
            rule = owned[0]
            owned_text = f"{rule.network}{_origin_label(rule)}"
        patterns = tuple(getattr(trunk, "match_ruri", ()))
        if patterns:
            if uri is None:
                ex.say(f"trunk {trunk.name}: source in {owned_text}; match_ruri "
                       f"{', '.join(repr(p.pattern) for p in patterns)} decides per request (give --request)")
            else:
                hit = next((p for p in patterns if p.search(uri)), None)
                if hit is None:
                    mismatch = True
                    ex.say(f"trunk {trunk.name}: source in {owned_text}, but no match_ruri pattern "
                           f"({', '.join(repr(p.pattern) for p in patterns)}) matches {uri}; next trunk")
                    continue
                owned_text += f"; match_ruri {hit.pattern!r} matches"
        ex.trunk = trunk.name
        ex.admitted = True
        ex.say(f"trunk {trunk.name}: source in {owned_text}: takes the call")
        if auth is not None:
            networks = tuple(getattr(trunk, "allow", ()) or ())
            if getattr(auth, "required", False) or not networks:
                ex.say(f"trunk {trunk.name}: [trunk.auth]: digest credentials required (401 challenge; "
                       "refusal auth-failed, 403)")
        ex.say(f"verdict: ADMITTED by trunk {trunk.name} (rule: {owned_text})")
        return _limits(ex, security)
    if mismatch:
        return ex.refuse("no-matching-trunk", 404, "the source belongs to trunks whose match_ruri patterns do not "
                         "match the Request-URI: INVITE answered 404 Not Found")
    if from_agent:
        return ex.refuse("no-matching-trunk", 404, "no trunk dials the Request-URI user: INVITE answered 404")
    peers = [r for r in matching if r.owner.startswith("peer:")]
    if peers:
        rule = peers[0]
        ex.say(f"peer: {addr} is {rule.owner}'s {rule.origin}: its answers and in-dialog requests get in, "
               "but it is no trunk's source")
    return ex.refuse("no-matching-trunk", 403, f"source {addr} matches no trunk: INVITE answered 403 Forbidden")


def _limits(ex: Explanation, security: Any) -> Explanation:
    rate = (f"{security.request_rate:g} requests/s (burst {security.request_burst})"
            if security.request_rate else "no request rate limit")
    cap = (f"at most {security.max_calls_per_source} calls in progress (then 503)"
           if security.max_calls_per_source else "no per-source call cap")
    ban = (f"banned for {security.ban_duration:g} s after {security.ban_threshold} refusals within "
           f"{security.ban_window:g} s" if security.ban_threshold else "never banned")
    ex.say(f"limits for this source: {rate}; {cap}; {ban}")
    return ex


def _vendor_ranges() -> dict[str, tuple[str, ...]]:
    from sbc.quirks.loader import PluginError, registry

    try:
        plugins = registry()
    except PluginError as e:
        raise _Fail(f"vendor plugins: {e}") from None
    return {name: tuple(q.defaults.signalling_ranges) for name, q in plugins.items()}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["explain"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(
        prog="sbc explain",
        description="Show which trunk and which rule admit or refuse a source address (and a request), and why.")
    parser.add_argument("--config", "-c", default="etc/sbc.toml", help="the SBC configuration (TOML)")
    parser.add_argument("--source", "-s", required=True, help="the source IP address")
    parser.add_argument("--transport", "-t", default="udp", choices=("udp", "tcp", "tls"))
    parser.add_argument("--request", "-r", help="file with one SIP request (an INVITE ...; '-': standard input)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if e.code in (0, None) else 2
    from sbc.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        ranges = _vendor_ranges() if any(getattr(t, "allow_vendors", ()) for t in config.trunks) else None
        request = _read_request(args.request) if args.request else None
        ex = explain(config, args.source, transport=args.transport, request=request, vendor_ranges=ranges)
    except ConfigError as e:
        err.write(f"sbc explain: {e}\n")
        return 2
    except _Fail as e:
        err.write(f"sbc explain: {e}\n")
        return 2
    for line in ex.lines:
        out.write(line + "\n")
    return 0 if ex.admitted else 1


def _read_request(path: str) -> Any:
    from sbc.normalize_cmd import read_message_text
    from sbc.sip.errors import SipParseError
    from sbc.sip.message import Request, parse_message

    try:
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as e:
        raise _Fail(f"cannot read {path}: {e.strerror or e}") from None
    try:
        message = parse_message(read_message_text(data))
    except SipParseError as e:
        raise _Fail(f"{path}: not a SIP message: {e.reason}") from None
    if not isinstance(message, Request):
        raise _Fail(f"{path}: a response, not a request")
    return message


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
