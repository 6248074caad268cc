# -*- test-case-name: tests.test_config -*-
"""The SBC configuration: one TOML file, read once at start-up into frozen attrs objects.

Loading is the edge where everything is validated and converted (STYLE C4).  Whatever goes
wrong -- a missing or unreadable file, a TOML syntax error, an unknown key at any level, a
value of the wrong type or out of range -- raises :class:`ConfigError`, whose ``str`` is a
single line naming the file, the key path and the problem::

    etc/sbc.toml: trunk[0].allow[1]: '10.0.0.300/32' is not an IPv4 or IPv6 network

The schema is declarative.  A section is a frozen, slotted attrs class whose fields are
declared with :func:`setting` (a scalar or list value; ``secret=True`` keeps it out of
``repr``), :func:`section` (a nested table), :func:`optional_section` (a nested table that
may be absent: ``None``) or :func:`section_list` (an array of tables).  Each setting names a *check*: a function that
receives the raw TOML value and returns the converted value or raises :class:`Invalid`.
Checks that involve several keys of one table go in a ``_check_section`` classmethod.  To
add a section (security, media, agent, vendor ...), write its class and add one
``section(...)`` field to :class:`Config`; unknown-key detection, error paths, defaults and
the README reference table (:func:`iter_schema`) follow automatically.

This module must not import Twisted: the pure core (``sbc.sip``, ``sbc.policy`` ...) may
import it to read its settings.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import string as string_module
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
from attrs import field, frozen

__all__ = [
    "AdminConfig",
    "AgentConfig",
    "AuthConfig",
    "CdrConfig",
    "DigestUsers",
    "DtmfConfig",
    "EventsConfig",
    "MediaConfig",
    "CallsConfig",
    "Config",
    "ConfigError",
    "Invalid",
    "ListenConfig",
    "RegisterConfig",
    "SbcSection",
    "SchemaEntry",
    "SecurityConfig",
    "SipConfig",
    "SniCertificate",
    "TlsConfig",
    "TrunkConfig",
    "VendorOptions",
    "VendorRange",
    "default_config_path",
    "iter_schema",
    "load_config",
    "load_config_text",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")


# --------------------------------------------------------------------------------------
# Errors


class ConfigError(Exception):
    """The configuration cannot be used.  ``str(error)`` is one line: ``file: key: problem``.

    ``key`` is the dotted key path (``trunk[0].allow[1]``) or ``None`` for problems with the
    file as a whole (missing, unreadable, TOML syntax).
    """

    def __init__(self, path: str | os.PathLike[str], key: str | None, problem: str) -> None:
        self.path = os.fspath(path)
        self.key = key
        self.problem = _one_line(problem)
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.key:
            return f"{self.path}: {self.key}: {self.problem}"
        return f"{self.path}: {self.problem}"


class Invalid(Exception):
    """Raised by a check: ``problem`` describes the bad value.

    ``key`` optionally names a key (or ``key[index]``) below the one being checked, so a
    list check can point at the offending element and a table check at the offending key.
    """

    def __init__(self, problem: str, key: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.key = key


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _join(where: str, key: str | None) -> str:
    if not key:
        return where
    if not where:
        return key
    if key.startswith("["):
        return where + key
    return f"{where}.{key}"


# --------------------------------------------------------------------------------------
# Declarative schema


_SCHEMA = "sbc.config.schema"


@frozen
class _Setting:
    key: str | None  # TOML key, when it differs from the attribute name
    check: Callable[..., Any]
    doc: str
    type_name: str


@frozen
class _Section:
    key: str | None
    cls: type
    many: bool
    doc: str


def setting(
    check: Callable[..., Any],
    *,
    doc: str,
    type_name: str,
    default: Any = attrs.NOTHING,
    key: str | None = None,
    secret: bool = False,
) -> Any:
    """Declare a scalar or list setting.  Without ``default`` the key is required.

    ``secret=True`` (passwords) keeps the value out of ``repr()``; its check must not echo
    the value in its error messages either.
    """
    return field(
        default=default,
        repr=not secret,
        metadata={_SCHEMA: _Setting(key, check, doc, type_name)},
    )


def section(cls: type[T], *, doc: str, key: str | None = None) -> Any:
    """Declare a nested table, optional in the file (its own defaults apply)."""
    return field(factory=cls, metadata={_SCHEMA: _Section(key, cls, False, doc)})


def optional_section(cls: type, *, doc: str, key: str | None = None) -> Any:
    """Declare a nested table that may be absent: then the attribute is ``None``.

    Keys the class declares as required are required only when the table is present.
    """
    return field(default=None, metadata={_SCHEMA: _Section(key, cls, False, doc)})


def section_list(cls: type, *, doc: str, key: str | None = None) -> Any:
    """Declare an array of tables (``[[key]]``); absent means an empty tuple."""
    return field(factory=tuple, metadata={_SCHEMA: _Section(key, cls, True, doc)})


def _toml_key(f: attrs.Attribute[Any]) -> str:
    spec = f.metadata[_SCHEMA]
    return spec.key or f.name


def _schema_fields(cls: type) -> list[attrs.Attribute[Any]]:
    return [f for f in attrs.fields(cls) if _SCHEMA in f.metadata]


def _type_name(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _build(cls: type[T], table: object, where: str, ctx: _Context) -> T:
    """Check and convert one TOML table into an instance of the section class ``cls``."""
    if not isinstance(table, dict):
        raise ConfigError(ctx.path, where, f"expected a table, got {_type_name(table)}")
    fields = _schema_fields(cls)
    by_key = {_toml_key(f): f for f in fields}
    for key in table:
        if key not in by_key:
            shown = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)
            raise ConfigError(ctx.path, _join(where, shown), "unknown key")
    values: dict[str, Any] = {}
    for key, f in by_key.items():
        spec = f.metadata[_SCHEMA]
        here = _join(where, key)
        if key not in table:
            if f.default is attrs.NOTHING:
                raise ConfigError(ctx.path, here, "required key is missing")
            continue
        raw = table[key]
        if isinstance(spec, _Section):
            if spec.many:
                if not isinstance(raw, list):
                    raise ConfigError(
                        ctx.path, here, f"expected an array of tables, got {_type_name(raw)}"
                    )
                values[f.name] = tuple(
                    _build(spec.cls, item, f"{here}[{i}]", ctx) for i, item in enumerate(raw)
                )
            else:
                values[f.name] = _build(spec.cls, raw, here, ctx)
        else:
            try:
                values[f.name] = _call_check(spec.check, raw, ctx)
            except Invalid as e:
                raise ConfigError(ctx.path, _join(here, e.key), e.problem) from None
    try:
        instance = cls(**values)
        check_section = getattr(cls, "_check_section", None)
        if check_section is not None:
            check_section(instance, ctx)
    except Invalid as e:
        raise ConfigError(ctx.path, _join(where, e.key), e.problem) from None
    return instance


def _call_check(check: Callable[..., Any], raw: Any, ctx: _Context) -> Any:
    if getattr(check, "needs_context", False):
        return check(raw, ctx)
    return check(raw)


@frozen
class _Context:
    """What checks may need besides the value: where the file is (for relative paths)."""

    path: str
    base_dir: Path


# --------------------------------------------------------------------------------------
# Checks: each takes the raw TOML value and returns the converted one or raises Invalid.


def _expect(value: object, kind: type | tuple[type, ...], what: str) -> None:
    # bool is an int subclass in Python; TOML keeps them apart, and so do we.
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise Invalid(f"expected {what}, got {_type_name(value)}")


def boolean(value: object) -> bool:
    _expect(value, bool, "a boolean")
    assert isinstance(value, bool)
    return value


def integer(low: int | None = None, high: int | None = None) -> Callable[[object], int]:
    def check(value: object) -> int:
        _expect(value, int, "an integer")
        assert isinstance(value, int)
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                raise Invalid(f"{value} is out of range (must be >= {low})")
            raise Invalid(f"{value} is out of range ({low}..{high})")
        return value

    return check


def positive_float(value: object) -> float:
    _expect(value, (int, float), "a number")
    assert isinstance(value, (int, float))
    number = float(value)
    if not (number > 0 and number != float("inf")):
        raise Invalid(f"{value!r} must be a positive number")
    return number


def non_negative_float(value: object) -> float:
    """A finite number >= 0 (0 usually means "off")."""
    _expect(value, (int, float), "a number")
    assert isinstance(value, (int, float))
    number = float(value)
    if not (0 <= number < float("inf")):
        raise Invalid(f"{value!r} must be a number >= 0")
    return number


def string(value: object) -> str:
    _expect(value, str, "a string")
    assert isinstance(value, str)
    return value


def text_line(value: object) -> str:
    """A non-empty printable string that is safe to put into a SIP header."""
    text = string(value)
    if not text or not text.isprintable():
        raise Invalid(f"{text!r} must be a non-empty string of printable characters")
    return text


def one_of(*choices: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        text = string(value)
        if text not in choices:
            raise Invalid(f"{text!r} is not one of {', '.join(repr(c) for c in choices)}")
        return text

    return check


def matches(pattern: str, what: str) -> Callable[[object], str]:
    compiled = re.compile(pattern)

    def check(value: object) -> str:
        text = string(value)
        if not compiled.fullmatch(text):
            raise Invalid(f"{text!r} is not {what}")
        return text

    return check


def secret_text(value: object) -> str:
    """A password: a non-empty printable string.  Errors never show the value."""
    _expect(value, str, "a string")
    assert isinstance(value, str)
    if not value or not value.isprintable():
        raise Invalid("must be a non-empty string of printable characters (value not shown)")
    return value


_MAX_PATTERN = 500


def regex(value: object) -> re.Pattern[str]:
    """A Python regular expression, compiled at load time."""
    text = string(value)
    if not text:
        raise Invalid("must be a non-empty regular expression")
    if len(text) > _MAX_PATTERN:
        raise Invalid(f"regular expression longer than {_MAX_PATTERN} characters")
    try:
        return re.compile(text)
    except (re.error, RecursionError, OverflowError, ValueError) as e:
        raise Invalid(f"{text!r} is not a valid regular expression: {e}") from None


_TOKEN_RE = re.compile(r"[A-Za-z0-9!%'*+.^_`|~-]+")


def header_name(value: object) -> str:
    text = string(value)
    if not _TOKEN_RE.fullmatch(text):
        raise Invalid(f"{text!r} is not a SIP header name")
    return text


def tls_name(value: object) -> str:
    """A certificate name to match: a DNS name, optionally with a leading ``*.`` wildcard."""
    text = string(value)
    bare = text[2:] if text.startswith("*.") else text
    if not bare or not _HOSTNAME.fullmatch(bare) or len(bare) > 253:
        raise Invalid(f"{text!r} is not a DNS name (a leading '*.' is allowed)")
    return text.lower()


def ip_literal(value: object) -> str:
    """An IPv4 or IPv6 address literal (no brackets), returned in canonical form."""
    text = string(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Invalid(f"{text!r} is not an IPv4 or IPv6 address") from None


def network(value: object) -> Network:
    """A CIDR network; an address with host bits set (``10.0.0.1/8``) is an error."""
    text = string(value)
    try:
        loose = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise Invalid(f"{text!r} is not an IPv4 or IPv6 network") from None
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise Invalid(f"{text!r} has host bits set (did you mean {str(loose)!r}?)") from None


def list_of(item: Callable[[object], T], *, non_empty: bool = False) -> Callable[[object], tuple[T, ...]]:
    def check(value: object) -> tuple[T, ...]:
        _expect(value, list, "an array")
        assert isinstance(value, list)
        if non_empty and not value:
            raise Invalid("must list at least one entry")
        out = []
        for i, element in enumerate(value):
            try:
                out.append(item(element))
            except Invalid as e:
                raise Invalid(e.problem, _join(f"[{i}]", e.key)) from None
        return tuple(out)

    return check


_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


def _is_host(text: str) -> bool:
    if text.startswith("[") and text.endswith("]"):
        try:
            return isinstance(ipaddress.ip_address(text[1:-1]), ipaddress.IPv6Address)
        except ValueError:
            return False
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        pass
    # A dotted-quad lookalike that is not a valid IPv4 address is an error, not a name.
    if re.fullmatch(r"[0-9.]+", text):
        return False
    return len(text) <= 253 and bool(_HOSTNAME.fullmatch(text))


def hostname(value: object) -> str:
    """A DNS name or an IP literal (IPv6 with or without brackets)."""
    text = string(value)
    if ":" in text and not text.startswith("["):
        try:
            return str(ipaddress.IPv6Address(text))
        except ValueError:
            raise Invalid(f"{text!r} is not a host name or IP address") from None
    if not _is_host(text):
        raise Invalid(f"{text!r} is not a host name or IP address")
    return text


def _check_sip_uri(text: str) -> None:
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        raise Invalid(f"{text!r} is not a sip: or sips: URI")
    if any(c.isspace() for c in text) or not text.isprintable() or "<" in text or ">" in text:
        raise Invalid(f"{text!r} is not a sip: or sips: URI (bad characters)")
    hostport = rest.rpartition("@")[2]
    hostport = re.split(r"[;?]", hostport, maxsplit=1)[0]
    if hostport.startswith("["):
        host, bracket, tail = hostport.partition("]")
        host += bracket
        port = tail[1:] if tail.startswith(":") else None
        if tail and port is None:
            raise Invalid(f"{text!r} has a bad host part")
    else:
        host, colon, port_text = hostport.partition(":")
        port = port_text if colon else None
    if not _is_host(host):
        raise Invalid(f"{text!r} has a bad host part {host!r}")
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise Invalid(f"{text!r} has a bad port {port!r}")


def sip_uri(value: object) -> str:
    text = string(value)
    _check_sip_uri(text)
    return text


def sip_uri_template(value: object) -> str:
    """A sip:/sips: URI with a ``{user}`` placeholder and no other ``{...}`` fields."""
    text = string(value)
    if "{user}" not in text:
        raise Invalid(f"{text!r} must contain the placeholder {{user}}")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string_module.Formatter().parse(text) if name is not None]
    except ValueError:  # unbalanced braces
        fields = [("", None, None)]
    if any(field != ("user", "", None) for field in fields):
        raise Invalid(f"{text!r} may contain no placeholder but {{user}}")
    sample = text.format(user="user")
    try:
        _check_sip_uri(sample)
    except Invalid:
        raise Invalid(f"{text!r} is not a sip: or sips: URI template") from None
    return text


def _resolve(value: object, ctx: _Context) -> Path:
    text = string(value)
    if not text:
        raise Invalid("must be a file path, got an empty string")
    if "\x00" in text:
        raise Invalid(f"{text!r} is not a valid file path")
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~user that does not exist
        raise Invalid(f"{text!r}: cannot expand the home directory") from None
    if not path.is_absolute():
        path = ctx.base_dir / path
    return path


def _read_pem(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise Invalid(f"file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise Invalid(f"{str(path)!r} is a directory, not a file") from None
    except OSError as e:
        raise Invalid(f"cannot read {str(path)!r}: {e.strerror or e}") from None


def _load_certificates(path: Path) -> list[Any]:
    from cryptography import x509  # imported lazily: only TLS listeners need it

    data = _read_pem(path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise Invalid(f"{str(path)!r} holds no PEM certificate")
    return certs


def certificate_file(value: object, ctx: _Context) -> Path:
    path = _resolve(value, ctx)
    _load_certificates(path)
    return path


certificate_file.needs_context = True  # type: ignore[attr-defined]


def _check_validity(path: Path, cert: Any) -> None:
    """A certificate we present must be valid now: not expired, not valid only later."""
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc)
    before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < before:
        raise Invalid(f"{str(path)!r} is not valid yet (valid from {before:%Y-%m-%d %H:%M:%S} UTC)")
    if now > after:
        raise Invalid(f"{str(path)!r} expired on {after:%Y-%m-%d %H:%M:%S} UTC")


def own_certificate_file(value: object, ctx: _Context) -> Path:
    """A certificate the SBC presents (listener, SNI, client): the first one in the file must
    be valid now."""
    path = _resolve(value, ctx)
    _check_validity(path, _load_certificates(path)[0])
    return path


own_certificate_file.needs_context = True  # type: ignore[attr-defined]


def private_key_file(value: object, ctx: _Context) -> Path:
    from cryptography.hazmat.primitives import serialization

    path = _resolve(value, ctx)
    data = _read_pem(path)
    try:
        serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise Invalid(f"{str(path)!r} is encrypted; the SBC needs an unencrypted key") from None
    except Exception:  # ValueError, UnsupportedAlgorithm, ...
        raise Invalid(f"{str(path)!r} holds no usable PEM private key") from None
    return path


private_key_file.needs_context = True  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------
# Sections


@frozen
class SbcSection:
    """``[sbc]``: identity of this SBC."""

    fqdn: str = setting(
        hostname,
        default="localhost",
        type_name="string",
        doc="Public FQDN (or IP literal) the SBC puts in Contact and Via.",
    )
    user_agent: str = setting(
        text_line,
        default="sbc/0.1",
        type_name="string",
        doc="Value of the User-Agent / Server header.",
    )
    gc_interval: float = setting(
        non_negative_float,
        default=600.0,
        type_name="float",
        doc="Seconds between full runs of Python's cyclic garbage collector; 0 turns them off.",
    )


@frozen
class SniCertificate:
    """``[[listen.sni]]``: a further certificate of a TLS listener, served to clients that ask
    for ``name`` (SNI)."""

    name: str = setting(
        tls_name, type_name="string",
        doc="Server name (SNI) this certificate is served for; `*.` wildcard allowed (required).",
    )
    certificate: Path = setting(
        own_certificate_file, type_name="path",
        doc="PEM certificate (then its chain) served for `name`; must be valid now (required).",
    )
    private_key: Path = setting(
        private_key_file, type_name="path", doc="Unencrypted PEM private key matching `certificate` (required).",
    )
    chain: Path | None = setting(
        certificate_file, default=None, type_name="path",
        doc="Optional PEM file of intermediate CA certificates sent after `certificate`.",
    )

    def _check_section(self, ctx: _Context) -> None:
        _check_key_matches(self.certificate, self.private_key)


@frozen
class ListenConfig:
    """``[[listen]]``: one SIP listening socket."""

    transport: str = setting(
        one_of("udp", "tcp", "tls"), type_name='"udp", "tcp" or "tls"', doc="Transport protocol (required)."
    )
    address: str = setting(
        ip_literal, type_name="string", doc="IPv4 or IPv6 literal to bind, e.g. \"0.0.0.0\" or \"::1\" (required)."
    )
    port: int = setting(integer(1, 65535), type_name="integer", doc="Port, 1..65535 (required).")
    certificate: Path | None = setting(
        own_certificate_file,
        default=None,
        type_name="path",
        doc="TLS only, required for tls: PEM certificate, valid now (expired or not yet valid stops start-up). Relative paths are relative to the config file's directory.",
    )
    private_key: Path | None = setting(
        private_key_file,
        default=None,
        type_name="path",
        doc="TLS only, required for tls: unencrypted PEM private key matching `certificate`.",
    )
    chain: Path | None = setting(
        certificate_file,
        default=None,
        type_name="path",
        doc="TLS only, optional: PEM file of intermediate CA certificates sent after `certificate`.",
    )
    sni: tuple[SniCertificate, ...] = section_list(
        SniCertificate, doc="TLS only: further certificates chosen by the client's server name (SNI)."
    )

    @property
    def key(self) -> tuple[str, str, int]:
        """What makes a listener unique."""
        return (self.transport, self.address, self.port)

    def _check_section(self, ctx: _Context) -> None:
        if self.transport == "tls":
            for name in ("certificate", "private_key"):
                if getattr(self, name) is None:
                    raise Invalid("required for a tls listener", name)
            assert self.certificate is not None and self.private_key is not None
            _check_key_matches(self.certificate, self.private_key)
        else:
            for name in ("certificate", "private_key", "chain"):
                if getattr(self, name) is not None:
                    raise Invalid(f"only valid for a tls listener, not {self.transport}", name)
            if self.sni:
                raise Invalid(f"only valid for a tls listener, not {self.transport}", "sni")


def _check_key_matches(certificate: Path, private_key: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    cert = _load_certificates(certificate)[0]
    key = serialization.load_pem_private_key(_read_pem(private_key), password=None)
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*fmt) != key.public_key().public_bytes(*fmt):
        raise Invalid(f"{str(private_key)!r} does not match certificate {str(certificate)!r}", "private_key")


@frozen
class AdminConfig:
    """``[admin]``: the admin HTTP endpoint (``/healthz``)."""

    address: str = setting(ip_literal, default="127.0.0.1", type_name="string", doc="IP literal to bind.")
    port: int = setting(integer(1, 65535), default=8080, type_name="integer", doc="TCP port, 1..65535.")
    enabled: bool = setting(boolean, default=True, type_name="boolean", doc="Serve the admin endpoint at all.")


@frozen
class SipConfig:
    """``[sip]``: RFC 3261 timers and transport limits."""

    t1: float = setting(positive_float, default=0.5, type_name="float", doc="RTT estimate T1, seconds (RFC 3261 §17.1.1.1).")
    t2: float = setting(
        positive_float, default=4.0, type_name="float", doc="Maximum retransmit interval T2, seconds; must be >= t1."
    )
    t4: float = setting(
        positive_float, default=5.0, type_name="float", doc="Maximum time a message stays in the network T4, seconds."
    )
    max_message_size: int = setting(
        integer(1024, 65535),
        default=65535,
        type_name="integer",
        doc="Largest SIP message accepted, bytes (1024..65535); larger ones get 513.",
    )
    max_udp_size: int = setting(
        integer(512, 65535),
        default=1300,
        type_name="integer",
        doc="Requests larger than this go over TCP instead of UDP (RFC 3261 §18.1.1); <= max_message_size.",
    )
    tcp_idle_timeout: float = setting(
        positive_float, default=300.0, type_name="float", doc="Close idle TCP/TLS connections after this many seconds."
    )
    max_connections: int = setting(
        integer(1), default=1024, type_name="integer", doc="Maximum simultaneous TCP/TLS connections."
    )

    def _check_section(self, ctx: _Context) -> None:
        if self.t2 < self.t1:
            raise Invalid(f"{self.t2} must be >= t1 ({self.t1})", "t2")
        if self.max_udp_size > self.max_message_size:
            raise Invalid(
                f"{self.max_udp_size} must be <= max_message_size ({self.max_message_size})", "max_udp_size"
            )


_NAME = r"[a-z0-9-]+"
_USER = r"[A-Za-z0-9_.!~*'&=+$,-]{1,64}"


@frozen
class RegisterConfig:
    """``[trunk.register]``: outbound REGISTER toward the trunk (RFC 3261 §10.2)."""

    registrar: str = setting(sip_uri, type_name="string", doc="Request-URI of the REGISTER, e.g. \"sip:registrar.example.com\" (required).")
    aor: str = setting(sip_uri, type_name="string", doc="Address of record put in From and To, e.g. \"sip:+15550100@example.com\" (required).")
    username: str | None = setting(text_line, default=None, type_name="string", doc="Digest user name; without it challenges fail.")
    password: str | None = setting(
        secret_text, default=None, type_name="string", secret=True,
        doc="Digest password; required with `username`. Never logged or shown.",
    )
    realm: str | None = setting(text_line, default=None, type_name="string", doc="Only answer challenges for this realm (default: any).")
    expires: int = setting(integer(60, 86400), default=3600, type_name="integer", doc="Registration lifetime asked for, seconds (60..86400).")
    contact_user: str = setting(
        matches(_USER, "a valid SIP user part"), default="sbc", type_name="string",
        doc="User part of the Contact registered (`sip:<contact_user>@<sbc.fqdn>:<port>`).",
    )

    def _check_section(self, ctx: _Context) -> None:
        if self.username is not None and self.password is None:
            raise Invalid("required when `username` is set", "password")
        if self.password is not None and self.username is None:
            raise Invalid("required when `password` is set", "username")



_DIGITS = "0123456789*#ABCD"


def dtmf_key(value: object) -> str:
    """One DTMF key: 0-9, *, #, A-D."""
    _expect(value, str, "a string")
    assert isinstance(value, str)
    if len(value) != 1 or value.upper() not in _DIGITS:
        raise Invalid(f"{value!r} is not a DTMF key (0-9, *, #, A-D)")
    return value.upper()


def fraction(value: object) -> float:
    """A number from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"expected a number from 0 to 1, got {_type_name(value)}")
    if not 0.0 <= float(value) <= 1.0:
        raise Invalid(f"{value} is not between 0 and 1")
    return float(value)


_SRTP_POLICY = one_of("off", "optional", "required")


@frozen
class DtmfConfig:
    """``[trunk.dtmf]``: how the caller's keypresses become agent events."""

    submit_key: str = setting(
        dtmf_key, default="#", type_name="string",
        doc="Key that submits the buffered digits as text (not part of the text).",
    )
    idle_timeout: float = setting(
        positive_float, default=2.5, type_name="float",
        doc="Seconds without a new keypress after which the buffered digits are submitted.",
    )
    vad_sensitivity: float = setting(
        fraction, default=0.5, type_name="float",
        doc="Voice activity sensitivity, 0 (never) .. 1 (most sensitive): speech submits the buffered digits.",
    )
    pass_tones: bool = setting(
        boolean, default=False, type_name="boolean",
        doc="Also forward RFC 4733 telephone-events to the agent host as RTP (off: the agent gets each key once, as text).",
    )
    info: bool = setting(
        boolean, default=True, type_name="boolean",
        doc="Take SIP INFO DTMF (application/dtmf-relay, application/dtmf) from the PBX; answered 200, not relayed.",
    )
    inband: bool = setting(
        boolean, default=False, type_name="boolean", doc="Detect in-band DTMF tones in G.711 audio (Goertzel).",
    )


# --------------------------------------------------------------------------------------
# Vendor settings of a trunk (issue 6): `vendor:<name>` allow entries, [trunk.vendor_options]


@frozen
class VendorRange:
    """An ``allow`` entry ``"vendor:<name>"``: the signalling ranges the vendor plugin
    ``<name>`` publishes.  The configuration only checks the syntax (this module loads no
    plugin); the service replaces these entries by the plugin's networks at start-up and on
    reload (:meth:`TrunkConfig.with_vendor_ranges`), so the B2BUA only ever sees networks."""

    name: str

    def __str__(self) -> str:
        return f"vendor:{self.name}"


_VENDOR_NAME_RE = re.compile(r"[a-z0-9-]+")


def allow_entry(value: object) -> Network | VendorRange:
    """A CIDR network, or ``vendor:<name>`` (the vendor plugin's published ranges)."""
    text = string(value)
    if text.startswith("vendor:"):
        name = text[len("vendor:"):]
        if not _VENDOR_NAME_RE.fullmatch(name):
            raise Invalid(f"{text!r} is not vendor:<name> with a vendor name of [a-z0-9-]+")
        return VendorRange(name)
    return network(text)


#: Words that make a vendor option secret: its value never appears in repr() or logs.
SECRET_WORDS = ("token", "secret", "password")


def is_secret_option(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_WORDS)


class SecretStr(str):
    """A string whose ``repr()`` hides it (vendor options such as ``telnyx_token``).

    It is a ``str`` in every other respect (``==``, formatting, ``str()``, encoding), so a
    plugin puts it into a header as it would any string; but a mapping or object holding it
    -- ``dict(options)``, a ``QuirkContext``, a log event formatted with ``repr`` -- shows
    ``'<secret>'``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<secret>'"


Scalar = str | int | float | bool


def _scalar_type(value: object) -> type:
    return str if isinstance(value, str) else type(value)


class VendorOptions(Mapping[str, Scalar]):
    """``[trunk.vendor_options]``: an immutable mapping of option names to scalars.

    ``repr()`` shows it as a TOML inline table, with the values of secret keys (names
    containing ``token``, ``secret`` or ``password``) replaced by ``<secret>``."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Scalar] | Iterable[tuple[str, Scalar]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, Scalar] = {}
        for key, value in pairs:
            if is_secret_option(key) and isinstance(value, str) and not isinstance(value, SecretStr):
                value = SecretStr(value)
            self._items[key] = value

    def __getitem__(self, key: str) -> Scalar:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def _typed(self) -> dict[str, tuple[type, Scalar]]:
        return {k: (_scalar_type(v), v) for k, v in self._items.items()}

    def __eq__(self, other: object) -> bool:
        # Types count: `true` is not `1` to a plugin that checks `is True`.
        if isinstance(other, VendorOptions):
            return self._typed() == other._typed()
        if isinstance(other, Mapping):
            return self._typed() == {k: (_scalar_type(v), v) for k, v in other.items()}
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, t.__name__, v) for k, (t, v) in self._typed().items())))

    def __repr__(self) -> str:
        shown = []
        for key, value in self._items.items():
            if is_secret_option(key):
                text = '"<secret>"'
            elif isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str):
                text = json.dumps(value)
            else:
                text = repr(value)
            shown.append(f"{key} = {text}")
        return "{" + ", ".join(shown) + "}"


_OPTION_KEY_RE = re.compile(r"[a-z0-9_]+")


def scalar_table(value: object) -> VendorOptions:
    """A table of scalars (string, integer, float, boolean) with keys ``[a-z0-9_]+``.

    A nested table or an array is an error naming its key.  A secret option (see
    :data:`SECRET_WORDS`) must be a non-empty printable string, and its errors never show
    the value."""
    _expect(value, dict, "a table")
    assert isinstance(value, dict)
    out: list[tuple[str, Scalar]] = []
    for key, item in value.items():
        shown = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)
        if not _OPTION_KEY_RE.fullmatch(key):
            raise Invalid(f"{key!r} is not a vendor option name ([a-z0-9_]+)", shown)
        if isinstance(item, (dict, list)):
            raise Invalid(f"expected a string, integer, float or boolean, got {_type_name(item)}", key)
        if not isinstance(item, (str, int, float, bool)):  # TOML dates and times
            raise Invalid(f"expected a string, integer, float or boolean, got {_type_name(item)}", key)
        if is_secret_option(key):
            try:
                item = secret_text(item)
            except Invalid as e:
                raise Invalid(e.problem, key) from None
        out.append((key, item))
    return VendorOptions(out)


# --------------------------------------------------------------------------------------
# Digest authentication of a trunk's requests (issue 4): [trunk.auth]


class DigestUsers(Mapping[str, "SecretStr"]):
    """``[trunk.auth] users``: user name -> password, immutable.  ``repr()`` shows the user
    names only; every password is a :class:`SecretStr`."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, SecretStr] = {k: v if isinstance(v, SecretStr) else SecretStr(v) for k, v in pairs}

    def __getitem__(self, key: str) -> "SecretStr":
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items())))

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{json.dumps(k)} = \"<secret>\"" for k in self._items) + "}"

    __str__ = __repr__


_DIGEST_USER_MAX = 128


def _digest_user(value: object) -> str:
    text = string(value)
    if not text or len(text) > _DIGEST_USER_MAX or not text.isprintable() or '"' in text or "\\" in text:
        raise Invalid(f"{text[:40]!r} is not a digest user name (1..{_DIGEST_USER_MAX} printable "
                      "characters, no quote or backslash)")
    return text


def digest_users(value: object) -> DigestUsers:
    """User names and passwords: a table ``{alice = "pw"}`` or an array of tables
    ``[{username = "alice", password = "pw"}]``; at least one.  Errors never show a password."""
    pairs: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            shown = key if re.fullmatch(r"[A-Za-z0-9_.-]+", key) else json.dumps(key)
            try:
                pairs.append((_digest_user(key), secret_text(item)))
            except Invalid as e:
                raise Invalid(e.problem, shown) from None
    elif isinstance(value, list):
        for i, item in enumerate(value):
            where = f"[{i}]"
            if not isinstance(item, dict):
                raise Invalid(f"expected a table {{username, password}}, got {_type_name(item)}", where)
            for key in item:
                if key not in ("username", "password"):
                    shown = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)
                    raise Invalid("unknown key", f"{where}.{shown}")
            for key in ("username", "password"):
                if key not in item:
                    raise Invalid("required key is missing", f"{where}.{key}")
            try:
                user = _digest_user(item["username"])
            except Invalid as e:
                raise Invalid(e.problem, f"{where}.username") from None
            try:
                password = secret_text(item["password"])
            except Invalid as e:
                raise Invalid(e.problem, f"{where}.password") from None
            if any(user == u for u, _ in pairs):
                raise Invalid(f"duplicate user name {user!r}", f"{where}.username")
            pairs.append((user, password))
    else:
        raise Invalid(f"expected a table of user = password or an array of tables, got {_type_name(value)}")
    if not pairs:
        raise Invalid("must list at least one user")
    return DigestUsers(pairs)


def _digest_algorithm(value: object) -> str:
    text = string(value)
    for name in ("SHA-256", "MD5"):
        if text.upper() == name:
            return name
    raise Invalid(f"{text!r} is not a digest algorithm ('SHA-256' or 'MD5')")


def digest_algorithms(value: object) -> tuple[str, ...]:
    names = list_of(_digest_algorithm, non_empty=True)(value)
    if len(set(names)) != len(names):
        raise Invalid("lists an algorithm twice")
    return names


def nonce_secret(value: object) -> str:
    text = secret_text(value)
    if len(text.encode("utf-8")) < 16:
        raise Invalid("must be at least 16 bytes long (value not shown)")
    return SecretStr(text)


@frozen
class AuthConfig:
    """``[trunk.auth]``: SIP digest authentication of the trunk's requests (RFC 3261 §22,
    RFC 8760).  The SBC is the UAS: it challenges with 401 and WWW-Authenticate."""

    users: DigestUsers = setting(
        digest_users, type_name="table or array of tables",
        doc="Digest users: a table `{alice = \"password\"}` or an array of `{username, password}` tables "
            "(required, at least one). A user name may appear once per realm. Passwords are never logged or shown.",
    )
    realm: str | None = setting(
        text_line, default=None, type_name="string",
        doc="Realm of the challenges; not set: `[sbc] fqdn`. Trunks may share a realm (one challenge for all); "
            "then they must agree on `algorithms`, `nonce_ttl` and `nonce_secret`.",
    )
    algorithms: tuple[str, ...] = setting(
        digest_algorithms, default=("SHA-256", "MD5"), type_name="array of strings",
        doc="Digest algorithms offered, in order of preference (one WWW-Authenticate per algorithm, RFC 8760): "
            "\"SHA-256\", \"MD5\".",
    )
    nonce_ttl: float = setting(
        positive_float, default=300.0, type_name="float",
        doc="Seconds a nonce stays valid; an older one is answered 401 with `stale=true`.",
    )
    required: bool = setting(
        boolean, default=False, type_name="boolean",
        doc="Also challenge sources inside `allow` (allowlist AND digest). Off: `allow` alone admits, "
            "digest admits sources outside it only when `allow` is empty.",
    )
    nonce_secret: str | None = setting(
        nonce_secret, default=None, type_name="string", secret=True,
        doc="Key of the nonces' HMAC (16 bytes or more); not set: random per process, so nonces do not "
            "survive a restart. Give the same value to processes that must accept each other's nonces.",
    )


#: Seconds between OPTIONS pings to a trunk's ``peer_uri`` when neither the trunk nor its
#: vendor plugin says otherwise.
DEFAULT_OPTIONS_INTERVAL = 30.0


class _NoAllow(tuple):  # type: ignore[type-arg]
    """The default of ``trunk.allow``: empty, and recognisably "not given"."""

    __slots__ = ()


_NO_ALLOW: tuple = _NoAllow()


@frozen
class TrunkConfig:
    """``[[trunk]]``: a PBX or carrier allowed to send calls, and where its calls go."""

    name: str = setting(
        matches(_NAME, "a valid name ([a-z0-9-]+)"), type_name="string", doc="Unique name, [a-z0-9-]+ (required)."
    )
    agent_uri: str = setting(
        sip_uri_template,
        type_name="string",
        doc="sip:/sips: URI template for the B-leg; `{user}` is replaced by the called user (required).",
    )
    allow: tuple[Network | VendorRange, ...] = setting(
        list_of(allow_entry),
        default=_NO_ALLOW,
        type_name="array of strings",
        doc="Source networks admitted, CIDR, IPv4 or IPv6; host bits must be zero (required, non-empty, unless "
            "`[trunk.auth]` is given: then empty or absent means a digest-only trunk that admits any source that "
            "authenticates). `vendor:<name>` stands for the signalling ranges the vendor plugin publishes.",
    )
    vendor: str = setting(
        matches(_NAME, "a valid vendor name ([a-z0-9-]+)"),
        default="generic",
        type_name="string",
        doc="Vendor quirk plugin applied to this trunk.",
    )
    outbound_proxy: str | None = setting(
        sip_uri, default=None, type_name="string", doc="Optional sip: URI every request toward this trunk is sent to."
    )
    match_tls_names: tuple[str, ...] = setting(
        list_of(tls_name), default=(), type_name="array of strings",
        doc="TLS peers whose verified client certificate carries one of these DNS names (`*.` wildcard allowed) are admitted to this trunk from any source; with `tls_ca`, the names a client certificate must carry.",
    )
    tls_ca: Path | None = setting(
        certificate_file, default=None, type_name="path",
        doc="Mutual TLS: PEM CA bundle. TLS clients from this trunk's sources must present a certificate it verifies (with a name in `match_tls_names`, when given), else the connection is closed; the trunk takes calls over TLS only. Also trusted for our TLS connections to `peer_uri`.",
    )
    match_ruri: tuple[re.Pattern[str], ...] = setting(
        list_of(regex), default=(), type_name="array of strings",
        doc="Regular expressions; when given, the Request-URI must match one of them (`re.search`), else the next trunk admitting the source is tried (none: 404).",
    )
    peer_uri: str | None = setting(
        sip_uri, default=None, type_name="string",
        doc="The PBX's own address: target of calls from the agent host toward this trunk, and of OPTIONS pings.",
    )
    dial: tuple[re.Pattern[str], ...] = setting(
        list_of(regex), default=(), type_name="array of strings",
        doc="Regular expressions on the Request-URI user (`re.fullmatch`): calls from the agent host that match go to this trunk.",
    )
    options_interval: float | None = setting(
        non_negative_float, default=None, type_name="float",
        doc="Seconds between OPTIONS pings to `peer_uri`; 0 turns them off. Not set: the vendor "
            "plugin's interval (Teams 60), else 30.",
    )
    allow_refer: bool = setting(
        boolean, default=False, type_name="boolean", doc="Relay REFER (transfer) from the agent host to this trunk."
    )
    register: RegisterConfig | None = optional_section(
        RegisterConfig, doc="Outbound registration toward this trunk."
    )
    srtp: str | None = setting(
        _SRTP_POLICY, default=None, type_name='"off", "optional" or "required"',
        doc="SRTP (SDES) toward this trunk: `required` refuses plain RTP (488), `optional` follows the PBX's offer, `off` speaks plain RTP only. Unset: the vendor plugin's default (Teams: required), else `optional`.",
    )
    strict_source: bool = setting(
        boolean, default=False, type_name="boolean",
        doc="Accept this trunk's RTP only from the address in its SDP (no latching to where it really sends from).",
    )
    dtmf: DtmfConfig = section(DtmfConfig, doc="DTMF to agent events for this trunk's callers.")
    vendor_options: VendorOptions = setting(
        scalar_table, default=VendorOptions(), type_name="table of scalars",
        doc="`[trunk.vendor_options]`: options for the vendor plugins (`x_ms_sbc`, `plus_e164`, "
            "`country_code` ...); values containing token/secret/password in their name are never shown.",
    )
    auth: AuthConfig | None = optional_section(
        AuthConfig, doc="SIP digest authentication of this trunk's requests (401 challenges).",
    )

    def _check_section(self, ctx: _Context) -> None:
        if not self.allow and self.auth is None:
            if self.allow is _NO_ALLOW:
                raise Invalid("required key is missing", "allow")
            raise Invalid("must list at least one entry", "allow")
        if self.dial and self.peer_uri is None:
            raise Invalid("needs `peer_uri`: calls matched by `dial` are sent there", "dial")

    @property
    def networks(self) -> tuple[Network, ...]:
        """The ``allow`` entries that are networks (all of them once vendor ranges are resolved)."""
        return tuple(n for n in self.allow if not isinstance(n, VendorRange))

    @property
    def allow_vendors(self) -> tuple[str, ...]:
        """The vendor names of the ``vendor:<name>`` entries of ``allow`` still to resolve."""
        return tuple(n.name for n in self.allow if isinstance(n, VendorRange))

    def with_vendor_ranges(self, ranges: Mapping[str, Iterable[str]]) -> "TrunkConfig":
        """This trunk with every ``vendor:<name>`` entry of ``allow`` replaced by the networks
        ``ranges[name]`` lists (the plugin's ``VendorDefaults.signalling_ranges``), duplicates
        dropped, order kept.  ``ranges`` maps every installed plugin's name to its ranges.
        Raises :class:`Invalid` (key ``allow[i]``) for an unknown vendor, a vendor that
        publishes no ranges, or a range that is not a network.  Pure: the caller loads the
        plugins."""
        if not self.allow_vendors:
            return self
        out: list[Network] = []
        for i, entry in enumerate(self.allow):
            if not isinstance(entry, VendorRange):
                out.append(entry)
                continue
            where = f"allow[{i}]"
            if entry.name not in ranges:
                installed = ", ".join(sorted(ranges)) or "none"
                raise Invalid(f"no vendor plugin named {entry.name!r} (installed: {installed})", where)
            published = tuple(ranges[entry.name])
            if not published:
                raise Invalid(f"vendor plugin {entry.name!r} publishes no signalling ranges: list the "
                              "vendor's networks in CIDR instead", where)
            for text in published:
                try:
                    out.append(network(text))
                except Invalid as e:
                    raise Invalid(f"vendor plugin {entry.name!r}: {e.problem}", where) from None
        unique = tuple(dict.fromkeys(out))
        return attrs.evolve(self, allow=unique)

    def ping_interval(self, vendor_default: float | None = None) -> float:
        """Seconds between OPTIONS pings to ``peer_uri`` (0: off): ``options_interval`` when
        the file sets it, else the vendor plugin's interval, else
        :data:`DEFAULT_OPTIONS_INTERVAL`."""
        if self.options_interval is not None:
            return self.options_interval
        if vendor_default is not None:
            return float(vendor_default)
        return DEFAULT_OPTIONS_INTERVAL

    def agent_target(self, user: str) -> str:
        """The B-leg request URI for ``user``."""
        return self.agent_uri.format(user=user)


_DEFAULT_COPY_HEADERS = ("P-Asserted-Identity", "Privacy", "User-to-User", "Diversion", "History-Info")


@frozen
class CallsConfig:
    """``[calls]``: call limits, timeouts, header copying and shutdown drain."""

    max_calls: int = setting(integer(1), default=1000, type_name="integer", doc="Concurrent calls overall; beyond it 503 with Retry-After.")
    max_calls_per_trunk: int = setting(
        integer(0), default=0, type_name="integer", doc="Concurrent calls per trunk; 0 means no per-trunk limit."
    )
    no_answer_timeout: float = setting(
        non_negative_float, default=60.0, type_name="float", doc="Seconds a call may ring before it is given up (480); 0 turns it off."
    )
    max_call_duration: float = setting(
        non_negative_float, default=14400.0, type_name="float", doc="Seconds after which an answered call is ended with BYE; 0 turns it off."
    )
    retry_after: int = setting(
        integer(1, 86400), default=30, type_name="integer", doc="Retry-After seconds sent with 503/480 refusals."
    )
    drain_timeout: float = setting(
        non_negative_float, default=30.0, type_name="float",
        doc="On shutdown, seconds to let calls in progress finish before both legs get BYE.",
    )
    copy_headers: tuple[str, ...] = setting(
        list_of(header_name), default=_DEFAULT_COPY_HEADERS, type_name="array of strings",
        doc="Headers copied from the A leg's INVITE to the B leg's (others are dropped).",
    )
    copy_x_headers: bool = setting(
        boolean, default=True, type_name="boolean",
        doc="Also copy every `X-` header from leg to leg on generic trunks (a vendor's plugin decides for its own trunks).",
    )


@frozen
class AgentConfig:
    """``[agent]``: the agent host(s) as a source of calls and as a ping target."""

    allow: tuple[Network, ...] = setting(
        list_of(network), default=(), type_name="array of strings",
        doc="Source networks of the agent host(s), admitted for calls toward the trunks (CIDR).",
    )
    options_interval: float = setting(
        non_negative_float, default=30.0, type_name="float",
        doc="Seconds between OPTIONS pings to each trunk's agent host; 0 turns them off.",
    )
    down_after: int = setting(
        integer(1, 100), default=2, type_name="integer",
        doc="Consecutive failed pings (timeout or 503) before a target is marked down; one success marks it up.",
    )
    srtp: str = setting(
        _SRTP_POLICY, default="off", type_name='"off", "optional" or "required"',
        doc="SRTP (SDES) toward the agent host(s).",
    )
    reliable_provisionals: bool = setting(
        boolean, default=True, type_name="boolean",
        doc="Offer 100rel (RFC 3262) in INVITEs toward the agent host and PRACK its reliable provisional "
            "responses. Off: no 100rel offered; a reliable provisional is relayed as an unreliable one.",
    )


@frozen
class SecurityConfig:
    """``[security]``: admission at the edge (source allowlist, flood control, message limits)."""

    allowlist: bool = setting(
        boolean, default=True, type_name="boolean",
        doc="Drop UDP datagrams and close TCP/TLS connections from sources outside every trunk's and the "
            "agent's `allow` networks (and the peers the SBC sends to) before parsing. Off: every source is parsed.",
    )
    request_rate: float = setting(
        non_negative_float, default=5000.0, type_name="float",
        doc="Requests per second each source may send (token bucket; responses and CRLF keep-alives are free); "
            "beyond it requests are dropped (`rate-limited`). 0 turns the limit off.",
    )
    request_burst: int = setting(
        integer(1), default=10000, type_name="integer",
        doc="Requests a source may send at once above `request_rate` (the bucket's size).",
    )
    max_calls_per_source: int = setting(
        integer(0), default=0, type_name="integer",
        doc="Calls in progress from one source address; a new INVITE beyond it gets 503 with Retry-After "
            "(`rate-limited`). 0: no limit.",
    )
    ban_threshold: int = setting(
        integer(0), default=200, type_name="integer",
        doc="Refusals (rate-limited, too many headers, parse errors, no matching trunk, failed authentication) "
            "within `ban_window` that ban a source; 0: never ban.",
    )
    ban_window: float = setting(
        positive_float, default=10.0, type_name="float", doc="Seconds over which `ban_threshold` refusals are counted.",
    )
    ban_duration: float = setting(
        positive_float, default=60.0, type_name="float",
        doc="Seconds a banned source is dropped before parsing (`banned`).",
    )
    max_headers: int = setting(
        integer(0), default=100, type_name="integer",
        doc="Header lines a message may have; a request with more gets 400 Too Many Headers "
            "(dropped when it cannot be answered). 0: no limit.",
    )
    max_sources: int = setting(
        integer(16), default=65536, type_name="integer",
        doc="Source addresses the rate, refusal and ban tables each remember (the oldest forgotten first).",
    )


@frozen
class MediaConfig:
    """``[media]``: the RTP/SRTP relay that anchors every call's media."""

    enabled: bool = setting(
        boolean, default=True, type_name="boolean",
        doc="Anchor media: rewrite SDP on both legs and relay RTP through the SBC. Off: SDP passes through untouched (no DTMF from RTP).",
    )
    address: str = setting(ip_literal, default="127.0.0.1", type_name="string", doc="IP literal the relay's sockets bind to.")
    advertise: str | None = setting(
        ip_literal, default=None, type_name="string",
        doc="Address written into SDP (behind 1:1 NAT); defaults to `address`.",
    )
    port_min: int = setting(integer(1024, 65534), default=10000, type_name="integer", doc="Lowest RTP port (even).")
    port_max: int = setting(integer(1025, 65535), default=19999, type_name="integer", doc="Highest RTP/RTCP port.")
    timeout: float = setting(
        non_negative_float, default=60.0, type_name="float",
        doc="Hang up both legs when no RTP arrived from either side for this many seconds (not while on hold); 0 turns it off.",
    )

    def _check_section(self, ctx: _Context) -> None:
        if self.port_min % 2:
            raise Invalid(f"{self.port_min} must be even (RTP on even ports, RTCP on the next odd one)", "port_min")
        if self.port_max - self.port_min < 3:
            raise Invalid(f"{self.port_max} must be at least port_min + 3 ({self.port_min + 3})", "port_max")


@frozen
class EventsConfig:
    """``[events]``: the agent event channel (WebSocket on the admin server, SIP INFO, webhook)."""

    token: str | None = setting(
        secret_text, default=None, type_name="string", secret=True,
        doc="Bearer token WebSocket subscribers must send; required when `[admin] address` is not loopback.",
    )
    replay_per_call: int = setting(
        integer(0, 100000), default=256, type_name="integer",
        doc="Events kept per call for subscribers that connect late.",
    )
    replay_seconds: float = setting(
        non_negative_float, default=60.0, type_name="float",
        doc="Seconds a call's events stay replayable after it ended.",
    )
    sip_info: bool = setting(
        boolean, default=False, type_name="boolean",
        doc="Also send each event to the agent host as an in-dialog INFO with an application/json body.",
    )
    webhook_url: str | None = setting(
        matches(r"https?://\S+", "an http:// or https:// URL"), default=None, type_name="string",
        doc="POST each event here, signed the Standard Webhooks way.",
    )
    webhook_secret: str | None = setting(
        secret_text, default=None, type_name="string", secret=True,
        doc="Signing secret (`whsec_<base64>` or plain text); required with `webhook_url`.",
    )
    webhook_retries: int = setting(
        integer(0, 20), default=5, type_name="integer", doc="Retries of a failed webhook delivery (exponential backoff).",
    )

    def _check_section(self, ctx: _Context) -> None:
        if self.webhook_url is not None and self.webhook_secret is None:
            raise Invalid("required when `webhook_url` is set", "webhook_secret")


def output_file(value: object, ctx: _Context) -> Path:
    """A file the SBC writes (created if missing); its directory must exist at load time."""
    path = _resolve(value, ctx)
    if path.is_dir():
        raise Invalid(f"{str(path)!r} is a directory, not a file")
    if not path.parent.is_dir():
        raise Invalid(f"directory {str(path.parent)!r} does not exist")
    return path


output_file.needs_context = True  # type: ignore[attr-defined]


@frozen
class CdrConfig:
    """``[cdr]``: call detail records, one JSON object per line per finished call."""

    enabled: bool = setting(boolean, default=True, type_name="boolean", doc="Write a CDR for every finished call.")
    path: Path | None = setting(
        output_file, default=None, type_name="path",
        doc="File the CDRs are appended to; reopened on SIGHUP (logrotate). Without it they go to the log.",
    )


@frozen
class TlsConfig:
    """``[tls]``: TLS connections the SBC opens (to agent hosts and PBXs)."""

    client_certificate: Path | None = setting(
        own_certificate_file, default=None, type_name="path",
        doc="PEM certificate (then its chain) presented on our outgoing TLS connections (Teams, Zoom want the SBC's own); must be valid now.",
    )
    client_private_key: Path | None = setting(
        private_key_file, default=None, type_name="path",
        doc="Unencrypted PEM private key of `client_certificate` (required with it).",
    )
    ca: Path | None = setting(
        certificate_file, default=None, type_name="path",
        doc="PEM CA bundle that verifies the servers we connect to over TLS (their name is checked too); not set: the system's trust store.",
    )

    def _check_section(self, ctx: _Context) -> None:
        if (self.client_certificate is None) != (self.client_private_key is None):
            missing = "client_private_key" if self.client_private_key is None else "client_certificate"
            raise Invalid("required with client_certificate / client_private_key", missing)
        if self.client_certificate is not None and self.client_private_key is not None:
            try:
                _check_key_matches(self.client_certificate, self.client_private_key)
            except Invalid as e:
                raise Invalid(e.problem, "client_private_key") from None


@frozen
class Config:
    """The whole configuration.  Build it with :func:`load_config`; never mutate it."""

    path: Path = field(default=Path("<memory>"))
    sbc: SbcSection = section(SbcSection, doc="Identity of this SBC.")
    listen: tuple[ListenConfig, ...] = section_list(ListenConfig, doc="SIP listening sockets.")
    admin: AdminConfig = section(AdminConfig, doc="Admin HTTP endpoint.")
    sip: SipConfig = section(SipConfig, doc="SIP timers and limits.")
    trunks: tuple[TrunkConfig, ...] = section_list(TrunkConfig, key="trunk", doc="Trunks (PBXs) admitted.")
    calls: CallsConfig = section(CallsConfig, doc="Call limits, timeouts and shutdown.")
    agent: AgentConfig = section(AgentConfig, doc="The agent host(s).")
    security: SecurityConfig = section(SecurityConfig, doc="Admission at the edge and flood control.")
    media: MediaConfig = section(MediaConfig, doc="Media relay (RTP/SRTP).")
    events: EventsConfig = section(EventsConfig, doc="Agent event channel.")
    cdr: CdrConfig = section(CdrConfig, doc="Call detail records.")
    tls: TlsConfig = section(TlsConfig, doc="Outgoing TLS connections.")

    def _check_section(self, ctx: _Context) -> None:
        seen: dict[tuple[str, str, int], int] = {}
        for i, listener in enumerate(self.listen):
            if listener.key in seen:
                raise Invalid(
                    f"duplicate listener {listener.transport} {listener.address} port {listener.port} "
                    f"(same as listen[{seen[listener.key]}])",
                    f"listen[{i}]",
                )
            seen[listener.key] = i
        if self.admin.enabled and self.events.token is None and not ipaddress.ip_address(self.admin.address).is_loopback:
            raise Invalid(
                f"required: the admin listener {self.admin.address} is not loopback, so event subscribers must "
                "authenticate", "events.token")
        names: dict[str, int] = {}
        for i, trunk in enumerate(self.trunks):
            if trunk.name in names:
                raise Invalid(
                    f"duplicate trunk name {trunk.name!r} (same as trunk[{names[trunk.name]}])", f"trunk[{i}].name"
                )
            names[trunk.name] = i
        _check_auth_realms(self.trunks, self.sbc.fqdn)


def _check_auth_realms(trunks: Iterable[TrunkConfig], fqdn: str) -> None:
    """Trunks that share a digest realm share its nonces: they must agree on how nonces are
    made and checked, and a user name may belong to only one of them."""
    first: dict[str, tuple[int, AuthConfig]] = {}
    owner: dict[tuple[str, str], int] = {}
    for i, trunk in enumerate(trunks):
        auth = trunk.auth
        if auth is None:
            continue
        realm = auth.realm or fqdn
        if realm in first:
            j, other = first[realm]
            for key in ("algorithms", "nonce_ttl", "nonce_secret"):
                if getattr(auth, key) != getattr(other, key):
                    raise Invalid(f"differs from trunk[{j}]'s, which shares the realm {realm!r}",
                                  f"trunk[{i}].auth.{key}")
        else:
            first[realm] = (i, auth)
        for user in auth.users:
            if (realm, user) in owner:
                raise Invalid(f"user {user!r} of realm {realm!r} is already a user of trunk[{owner[realm, user]}]",
                              f"trunk[{i}].auth.users")
            owner[realm, user] = i


# --------------------------------------------------------------------------------------
# Loading


def load_config_text(text: str, path: str | os.PathLike[str] = "<string>") -> Config:
    """Parse and validate TOML ``text``; ``path`` is used in errors and for relative paths."""
    where = os.fspath(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(where, None, f"TOML syntax error: {e}") from None
    except RecursionError:  # tomllib recurses once per nesting level
        raise ConfigError(where, None, "TOML syntax error: arrays or tables nested too deeply") from None
    base_dir = Path(where).parent if where and not where.startswith("<") else Path.cwd()
    ctx = _Context(path=where, base_dir=base_dir)
    config = _build(Config, data, "", ctx)
    return attrs.evolve(config, path=Path(where))


def load_config(path: str | os.PathLike[str] | Any) -> Config:
    """Read and validate the TOML file at ``path`` (a ``str``, ``Path`` or Twisted ``FilePath``)."""
    fp_path = getattr(path, "path", None)  # twisted.python.filepath.FilePath
    where = fp_path if isinstance(fp_path, str) else os.fspath(path)
    try:
        raw = Path(where).read_bytes()
    except FileNotFoundError:
        raise ConfigError(where, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(where, None, "is a directory, not a file") from None
    except OSError as e:
        raise ConfigError(where, None, f"cannot read file: {e.strerror or e}") from None
    except ValueError as e:  # e.g. an embedded NUL byte in the path
        raise ConfigError(repr(where), None, f"cannot read file: {e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(where, None, f"not valid UTF-8 (byte {e.start})") from None
    return load_config_text(text, where)


def default_config_path() -> Path:
    """The configuration shipped with the source tree: ``<repo>/etc/sbc.toml``.

    ``twistd sbc`` itself defaults to ``etc/sbc.toml`` relative to the working directory;
    this helper finds the same file from anywhere (tests, tools).
    """
    return Path(__file__).resolve().parent.parent / "etc" / "sbc.toml"


# --------------------------------------------------------------------------------------
# Introspection, for documentation and tests


@frozen
class SchemaEntry:
    """One key of the schema, as the README reference table lists it."""

    key: str  # e.g. "sip.t1", "trunk[].allow"
    type_name: str
    default: str  # rendered as TOML, or "required" / "none"
    doc: str


def _render_default(value: Any) -> str:
    if value is attrs.NOTHING:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_render_default(v) for v in value) + "]"
    return repr(value)


def iter_schema(cls: type = Config, prefix: str = "") -> Iterator[SchemaEntry]:
    """Yield every key of the schema, depth first, in declaration order."""
    for f in _schema_fields(cls):
        spec = f.metadata[_SCHEMA]
        key = _join(prefix, _toml_key(f))
        if isinstance(spec, _Section):
            yield from iter_schema(spec.cls, key + ("[]" if spec.many else ""))
        else:
            yield SchemaEntry(key, spec.type_name, _render_default(f.default), spec.doc)
