# -*- test-case-name: tests.test_quirks_normalize -*-
"""``sbc normalize``: show what the vendor plugins do to a SIP message file.

::

    python -m sbc.normalize_cmd --config etc/sbc.toml --trunk teams invite.txt
    python -m sbc.normalize_cmd --vendor twilio --option country_code=1 invite.txt
    python -m sbc.normalize_cmd --vendor teams --to-pbx invite.txt      # request_to_pbx
    python -m sbc.normalize_cmd --list                                    # installed plugins

For an INVITE from the PBX (the default) the message goes through a real B2BUA core with
the trunk's quirk chain -- exactly the code path of a call -- and the command prints the
INVITE the agent host would get (its Via, Call-ID and tags are the SBC's; media anchoring
is not simulated, so the SDP is the PBX's after the plugins' SDP hooks), then the canonical
header list (what the ``call.started`` agent event carries), the plugins that recognise
the message, hook failures, and the vendor's defaults and unconfirmed facts.  With
``--to-pbx`` it prints the message after the ``request_to_pbx`` hooks instead (a request the
SBC sends toward the PBX), or after ``response_to_pbx`` for a response.

The file holds one SIP message; lines may end in LF or CRLF, leading lines starting with
``#`` are skipped (the vendor-message fixtures have such a header) and Content-Length is
set to the body's length.  ``-`` reads standard input.

Exit status: 0 shown; 1 the SBC refused the INVITE (the response is printed); 2 bad
arguments, configuration, plugin or message.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any, Sequence, TextIO

from sbc.config import Invalid

__all__ = ["main", "read_message_text"]


class _Fail(Exception):
    pass


def read_message_text(data: bytes) -> bytes:
    """A message file's bytes as a wire message (CRLF header lines, Content-Length fixed)."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    while lines and (lines[0].startswith(b"#") or not lines[0].strip()):
        lines.pop(0)
    text = b"\n".join(lines)
    head, sep, body = text.partition(b"\n\n")
    header_lines = [line for line in head.split(b"\n") if line.strip()]
    kept = [line for line in header_lines if line.split(b":", 1)[0].strip().lower() not in (b"content-length", b"l")]
    ctype = b""
    for line in header_lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-type", b"c"):
            ctype = value.strip().lower()
    if body and ctype.startswith(b"application/sdp"):
        body = body.rstrip(b"\n").replace(b"\n", b"\r\n") + b"\r\n"
    kept.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise _Fail(f"--option wants NAME=VALUE, not {pair!r}")
        out[name.strip()] = value.strip()
    return out


class _AnyResolver:
    """Locates every agent-host URI at a documentation address (nothing is sent)."""

    def resolve(self, uri: Any) -> list[Any]:
        from sbc.sip.endpoint import Peer

        transport = (uri.transport or "udp").lower()
        if transport not in ("udp", "tcp", "tls"):
            transport = "udp"
        return [Peer(transport, "192.0.2.200", uri.port or 5060, 0)]


def _trunk_and_chain(args: argparse.Namespace, registry: dict[str, Any]) -> tuple[Any, Any, str]:
    from sbc.quirks.chain import QuirkChain, build_chains

    extra = _options(args.option)
    if args.config:
        from sbc.config import ConfigError, load_config

        try:
            config = load_config(args.config)
        except ConfigError as e:
            raise _Fail(str(e)) from None
        trunks = {t.name: t for t in config.trunks}
        if args.trunk is None:
            if len(trunks) != 1:
                raise _Fail(f"--trunk is needed: the configuration has {len(trunks)} trunks "
                            f"({', '.join(trunks) or 'none'})")
            args.trunk = next(iter(trunks))
        trunk = trunks.get(args.trunk)
        if trunk is None:
            raise _Fail(f"no trunk {args.trunk!r} in {args.config} (trunks: {', '.join(trunks) or 'none'})")
        try:  # `allow = ["vendor:<name>"]` entries become the vendor's published networks
            trunk = trunk.with_vendor_ranges({n: q.defaults.signalling_ranges for n, q in registry.items()})
        except Invalid as e:
            where = f".{e.key}" if e.key else ""
            raise _Fail(f"{args.config}: trunk {trunk.name}{where}: {e.problem}") from None
        fqdn = config.sbc.fqdn
        chain = build_chains([trunk], registry, fqdn)[trunk.name]
        if extra:
            chain = QuirkChain(chain.quirks, trunk=chain.trunk, sbc_fqdn=fqdn,
                               options={**chain.options, **extra}, vendor=chain.vendor)
        return trunk, chain, fqdn
    vendor = args.vendor or "generic"
    if vendor not in registry:
        raise _Fail(f"no vendor plugin {vendor!r} (installed: {', '.join(registry) or 'none'})")
    from sbc.config import TrunkConfig

    name = args.trunk or vendor
    trunk = TrunkConfig(name=name, allow=(ipaddress.ip_network("0.0.0.0/0"),),
                        agent_uri="sip:{user}@agent.invalid", vendor=vendor)
    fqdn = args.fqdn
    return trunk, QuirkChain([registry[vendor]], trunk=name, sbc_fqdn=fqdn, options=extra, vendor=vendor), fqdn


def _source_host(trunk: Any) -> str:
    for net in getattr(trunk, "allow", ()):
        if net.num_addresses == 1:
            return str(net.network_address)
        return str(next(iter(net.hosts()), net.network_address))
    return "192.0.2.1"


def _print_message(out: TextIO, data: bytes) -> None:
    out.write(data.decode("utf-8", "replace").replace("\r\n", "\n"))
    if not data.endswith(b"\n"):
        out.write("\n")


def _run_invite(message: Any, trunk: Any, chain: Any, fqdn: str, out: TextIO) -> int:
    from sbc.b2bua.core import B2bua
    from sbc.sip.endpoint import Peer
    from sbc.sip.message import Request, Response

    host = _source_host(trunk)
    transport = "udp"
    b2b = B2bua(trunks=[trunk], local_host="192.0.2.10", local_port=5060, fqdn=fqdn,
                resolver=_AnyResolver(), quirks={trunk.name: chain})
    peer = Peer(transport, host, 5060, 1)
    via = f"SIP/2.0/UDP {host}:5060;branch=z9hG4bKnormalize;received={host};rport=5060".encode()
    if message.has("Via"):
        message = message.with_header("Via", via) if len(message.vias) == 1 else message.prepend_header("Via", via)
    b2b.handle_request(message, peer, 0.0)
    sent = b2b.messages_to_send()
    toward_agent = [m for m, p in sent if isinstance(m, Request) and m.method == "INVITE"]
    final = [m for m, p in sent if isinstance(m, Response) and m.status >= 200]
    notices = b2b.notices()
    if not toward_agent:
        out.write("# the SBC refused this INVITE:\n")
        for response in final:
            _print_message(out, response.to_bytes())
        for n in notices:
            out.write(f"# notice {n.reason}: {n.detail}\n")
        return 1
    out.write("# ---- the INVITE toward the agent host\n")
    _print_message(out, toward_agent[0].to_bytes())
    call = next(iter(b2b.calls.values()), None)
    out.write("# ---- canonical headers (call.started)\n")
    for name, value in getattr(call, "canonical_headers", ()):
        out.write(f"{name}: {value}\n")
    for n in notices:
        out.write(f"# notice {n.reason}: {n.detail}\n")
    return 0


def _describe(chain: Any, out: TextIO) -> None:
    primary = chain.primary
    if primary is None:
        out.write("# vendor: none (empty chain)\n")
        return
    d = primary.defaults
    out.write(f"# vendor: {primary.name} ({primary.title}), plugins run: "
              f"{', '.join(q.name for q in chain.quirks)}\n")
    out.write(f"# defaults: transport={d.transport} mutual_tls={d.mutual_tls} srtp={d.srtp} dtmf={d.dtmf} "
              f"options_interval={d.options_interval} record_route={d.record_route} "
              f"fqdn_contact={d.fqdn_contact} follow_record_route={d.follow_record_route} "
              f"allow_replaces={d.allow_replaces}\n")
    if d.signalling_ranges:
        out.write(f"# signalling ranges ({'confirmed' if d.ranges_confirmed else 'UNCONFIRMED'}): "
                  f"{', '.join(d.signalling_ranges)}\n")
    for fact in d.unconfirmed:
        out.write(f"# unconfirmed: {fact}\n")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["normalize"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(
        prog="sbc normalize",
        description="Show what the vendor quirk plugins do to a SIP message (see docs/plugins.md).")
    parser.add_argument("message", nargs="?", help="file with one SIP message ('-': standard input)")
    parser.add_argument("--config", "-c", help="the SBC configuration (TOML): the trunk comes from it")
    parser.add_argument("--trunk", "-t", help="trunk name (with --config), or the name to show")
    parser.add_argument("--vendor", help="vendor plugin to use without a configuration (default generic)")
    parser.add_argument("--fqdn", default="sbc.example.com", help="the SBC's FQDN without --config")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="NAME=VALUE",
                        help="a vendor option (country_code=1 ...), repeatable")
    parser.add_argument("--to-pbx", action="store_true",
                        help="apply the toward-the-PBX hooks instead (request_to_pbx / response_to_pbx)")
    parser.add_argument("--list", action="store_true", help="list the installed vendor plugins")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if e.code in (0, None) else 2
    from sbc.quirks.loader import PluginError, registry

    try:
        plugins = registry()
    except PluginError as e:
        err.write(f"sbc normalize: {e}\n")
        return 2
    if args.list:
        for quirk in plugins.values():
            module = type(quirk).__module__
            out.write(f"{quirk.name:14s} order {quirk.order:<5d} {quirk.title}  [{module}]\n")
        return 0
    if args.message is None:
        err.write("sbc normalize: a message file is needed (or --list)\n")
        return 2
    try:
        if args.config and args.vendor:
            raise _Fail("--vendor is for use without --config (the trunk names its vendor)")
        trunk, chain, fqdn = _trunk_and_chain(args, plugins)
        try:
            if args.message == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(args.message, "rb") as f:
                    data = f.read()
        except OSError as e:
            raise _Fail(f"cannot read {args.message}: {e.strerror or e}") from None
        from sbc.quirks.chain import recognised_by
        from sbc.sip.errors import SipParseError
        from sbc.sip.message import Request, parse_message, validate_request, validate_response

        try:
            message = parse_message(read_message_text(data))
            if isinstance(message, Request):
                validate_request(message)
            else:
                validate_response(message)
        except SipParseError as e:
            raise _Fail(f"{args.message}: not a valid SIP message: {e.reason}") from None
    except _Fail as e:
        err.write(f"sbc normalize: {e}\n")
        return 2
    _describe(chain, out)
    if isinstance(message, Request):
        names = recognised_by(plugins.values(), message)
        out.write(f"# recognised by: {', '.join(names) or 'no plugin'}\n")
    if args.to_pbx:
        ctx = chain.context("inbound")
        result = chain.request_to_pbx(message, ctx) if isinstance(message, Request) \
            else chain.response_to_pbx(message, ctx)
        out.write("# ---- toward the PBX, after the plugins\n")
        _print_message(out, result.to_bytes())
        for n in chain.notices():
            out.write(f"# notice quirk-error: {n.quirk}.{n.hook}: {n.error}\n")
        return 0
    if not isinstance(message, Request) or message.method != "INVITE":
        ctx = chain.context("inbound")
        result = chain.request_from_pbx(message, ctx) if isinstance(message, Request) \
            else chain.response_from_pbx(message, ctx)
        out.write("# ---- from the PBX, after the plugins (only an INVITE is canonicalised)\n")
        _print_message(out, result.to_bytes())
        for n in chain.notices():
            out.write(f"# notice quirk-error: {n.quirk}.{n.hook}: {n.error}\n")
        return 0
    return _run_invite(message, trunk, chain, fqdn, out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
