# -*- test-case-name: tests.test_quirks_chain -*-
"""QuirkChain: runs one trunk's vendor plugin hooks on sbc.sip messages, sans-IO.

Each hook runs on a copy of the plugin view (:class:`~sbc.quirks.message.SipMessage`).  When
the hook raises -- or leaves something that cannot be a SIP message, or an SDP hook returns
something other than bytes -- the message stays as it was before that hook, the next hook
runs, and a :class:`QuirkNotice` is recorded; the host drains :meth:`QuirkChain.notices` and
logs them.  Hooks a plugin does not override (the :class:`~sbc.quirks.interface.QuirkBase`
no-ops) are not called at all, so a chain of no-op plugins costs next to nothing and returns
the very message it was given.

Message hooks may not change the headers the transaction and dialog layers match on --
Via, From, To, Call-ID, CSeq (:data:`PROTECTED`): such a change is dropped like a failure.
The Request-URI, Contact, Route/Record-Route, any other header and the body may change.

SDP hooks run on bodies whose Content-Type is ``application/sdp`` (the ``*_from_pbx`` SDP
hook after the message hooks of a message from the PBX, the ``*_to_pbx`` one after those of
a message toward it).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from attrs import frozen

from sbc.sip.message import Request, Response

from .canonical import CanonicalCall, build_canonical
from .interface import IVendorQuirk, QuirkBase, QuirkContext
from .message import SipMessage, from_sip, to_sip

__all__ = ["PROTECTED", "QuirkChain", "QuirkNotice", "UnknownVendor", "build_chains", "recognised_by"]

#: Headers a message hook may not change (the transaction and dialog layers match on them).
PROTECTED = ("Via", "From", "To", "Call-ID", "CSeq")

_M = TypeVar("_M", Request, Response)


@frozen
class QuirkNotice:
    """A hook that failed; its change was dropped."""

    trunk: str
    quirk: str
    hook: str
    error: str
    call_id: str = ""


class UnknownVendor(Exception):
    """A trunk names a vendor no installed plugin provides."""


def _overrides(quirk: Any, hook: str) -> bool:
    impl = getattr(type(quirk), hook, None)
    return impl is None or impl is not getattr(QuirkBase, hook)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_sdp(view: SipMessage) -> bool:
    ctype = view.content_type
    return bool(view.body) and ctype is not None and ctype.split(";")[0].strip().lower() == "application/sdp"


class QuirkChain:
    """The plugins of one trunk, run in (order, name) order.  ``vendor`` (default: the name
    of the first plugin given) is the trunk's vendor: it goes into
    :attr:`QuirkContext.vendor` and ``X-SBC-Vendor``.  ``options``: the trunk's vendor
    options (``country_code`` and ``international_prefix`` are read by the host itself)."""

    def __init__(self, quirks: Sequence[IVendorQuirk], *, trunk: str, sbc_fqdn: str,
                 options: Mapping[str, Any] | None = None, vendor: str | None = None,
                 max_notices: int = 1000) -> None:
        self.trunk = trunk
        self.sbc_fqdn = sbc_fqdn
        self.options = dict(options or {})
        self.quirks = tuple(sorted(quirks, key=lambda q: (q.order, q.name)))
        self.vendor = vendor if vendor is not None else (quirks[0].name if quirks else "generic")
        self._notices: deque[QuirkNotice] = deque(maxlen=max_notices)
        self._hooks: dict[str, tuple[IVendorQuirk, ...]] = {}
        for hook in ("request_from_pbx", "request_to_pbx", "response_from_pbx", "response_to_pbx", "canonical",
                     "sdp_from_pbx", "sdp_to_pbx"):
            self._hooks[hook] = tuple(q for q in self.quirks if _overrides(q, hook))

    def __repr__(self) -> str:
        return f"<QuirkChain trunk={self.trunk!r} quirks={[q.name for q in self.quirks]!r}>"

    @property
    def primary(self) -> IVendorQuirk | None:
        """The plugin of the trunk's vendor (None for an empty chain)."""
        for q in self.quirks:
            if q.name == self.vendor:
                return q
        return None

    def context(self, direction: str = "inbound", call_id: str = "") -> QuirkContext:
        return QuirkContext(self.trunk, self.vendor, self.sbc_fqdn, direction, self.options, call_id)

    def notices(self) -> list[QuirkNotice]:
        """The failures since the last call (and forget them)."""
        out = list(self._notices)
        self._notices.clear()
        return out

    def _fail(self, quirk: IVendorQuirk, hook: str, exc: BaseException, ctx: QuirkContext) -> None:
        self._notices.append(QuirkNotice(self.trunk, str(getattr(quirk, "name", "?")), hook, _describe(exc),
                                         ctx.call_id))

    # ---- running hooks

    def _run(self, message: _M, hook: str, sdp_hook: str, ctx: QuirkContext) -> _M:
        hooks = self._hooks[hook]
        sdp_hooks = self._hooks[sdp_hook]
        if not hooks and not sdp_hooks:
            return message
        view = from_sip(message)
        for quirk in hooks:
            work = view.copy()
            try:
                getattr(quirk, hook)(work, ctx)
                for name in PROTECTED:
                    if work.get_all(name) != view.get_all(name):
                        raise ValueError(f"changed {name}, which plugins may not change")
                to_sip(work, message)  # refuse what cannot be sent, here, blaming this hook
            except Exception as e:  # noqa: BLE001 - a plugin's failure must not break the call
                self._fail(quirk, hook, e, ctx)
                continue
            view = work
        if sdp_hooks and _is_sdp(view):
            for quirk in sdp_hooks:
                try:
                    body = getattr(quirk, sdp_hook)(view.body, ctx)
                    if not isinstance(body, bytes):
                        raise TypeError(f"{sdp_hook} returned {type(body).__name__}, not bytes")
                except Exception as e:  # noqa: BLE001
                    self._fail(quirk, sdp_hook, e, ctx)
                    continue
                view.body = body
        try:
            return to_sip(view, message)  # type: ignore[return-value]
        except Exception as e:  # noqa: BLE001 - defensive: each step was checked above
            self._notices.append(QuirkNotice(self.trunk, "*", hook, _describe(e), ctx.call_id))
            return message

    def request_from_pbx(self, request: Request, ctx: QuirkContext | None = None) -> Request:
        """A request from the PBX, through every ``request_from_pbx`` and ``sdp_from_pbx`` hook."""
        return self._run(request, "request_from_pbx", "sdp_from_pbx", ctx or self.context())

    def request_to_pbx(self, request: Request, ctx: QuirkContext | None = None) -> Request:
        return self._run(request, "request_to_pbx", "sdp_to_pbx", ctx or self.context())

    def response_from_pbx(self, response: Response, ctx: QuirkContext | None = None) -> Response:
        return self._run(response, "response_from_pbx", "sdp_from_pbx", ctx or self.context())

    def response_to_pbx(self, response: Response, ctx: QuirkContext | None = None) -> Response:
        return self._run(response, "response_to_pbx", "sdp_to_pbx", ctx or self.context())

    def canonical(self, request: Request, ctx: QuirkContext | None = None) -> CanonicalCall:
        """The canonical call for an INVITE from the PBX (run :meth:`request_from_pbx` first):
        the standard part, then every plugin's ``canonical`` hook (a hook that raises leaves
        the call as it was before it)."""
        ctx = ctx or self.context(call_id=_call_id(request))
        view = from_sip(request)
        call = build_canonical(view, ctx)
        for quirk in self._hooks["canonical"]:
            work = call.copy()
            try:
                quirk.canonical(work, view.copy(), ctx)
                work.headers()
            except Exception as e:  # noqa: BLE001
                self._fail(quirk, "canonical", e, ctx)
                continue
            call = work
        return call

    def recognise(self, request: Request) -> bool:
        """Whether the trunk's own vendor plugin recognises ``request`` (False when it raises)."""
        primary = self.primary
        if primary is None:
            return False
        try:
            return bool(primary.recognise(from_sip(request)))
        except Exception as e:  # noqa: BLE001
            self._fail(primary, "recognise", e, self.context(call_id=_call_id(request)))
            return False


def _call_id(message: Request | Response) -> str:
    value = message.get("Call-ID")
    return value.decode("latin-1") if value else ""


def recognised_by(quirks: Iterable[IVendorQuirk], request: Request) -> list[str]:
    """Names of the plugins whose ``recognise`` accepts ``request`` (a raising one does not)."""
    view = from_sip(request)
    out = []
    for quirk in quirks:
        try:
            if quirk.recognise(view.copy()):
                out.append(quirk.name)
        except Exception:  # noqa: BLE001
            continue
    return out


def build_chains(trunks: Iterable[Any], registry: Mapping[str, IVendorQuirk], sbc_fqdn: str,
                 options_of: Callable[[Any], Mapping[str, Any]] | None = None) -> dict[str, QuirkChain]:
    """One chain per trunk (``trunk.name``, ``trunk.vendor``; optional ``trunk.quirks``: more
    plugin names to run after the vendor's).  ``options_of(trunk)`` gives the trunk's vendor
    options (default: its ``vendor_options`` attribute, if any).  Raises
    :class:`UnknownVendor` naming the trunk when a plugin is missing."""
    chains = {}
    for trunk in trunks:
        vendor = getattr(trunk, "vendor", None) or "generic"
        names = [vendor, *(n for n in getattr(trunk, "quirks", ()) if n != vendor)]
        missing = [n for n in names if n not in registry]
        if missing:
            raise UnknownVendor(
                f"trunk {trunk.name!r}: no vendor plugin named {', '.join(map(repr, missing))} "
                f"(installed: {', '.join(sorted(registry)) or 'none'})")
        options = options_of(trunk) if options_of is not None else getattr(trunk, "vendor_options", None)
        chains[trunk.name] = QuirkChain([registry[n] for n in names], trunk=trunk.name, sbc_fqdn=sbc_fqdn,
                                        options=options, vendor=vendor)
    return chains
