# -*- test-case-name: tests.test_tls_server,tests.test_tls_client,tests.integration.test_tls -*-
"""
SIP over TLS (RFC 3261 §26.2.1, RFC 5630): what the listeners serve and what they ask of
clients, and how the SBC connects out.

Server side (:class:`ServerTls`, one per TLS listener, an ``IOpenSSLServerConnectionCreator``):

* TLS 1.2 or newer, Twisted's modern cipher list, the certificate's full chain served;
* further certificates chosen by the client's server name (SNI, ``[[listen.sni]]``);
* mutual TLS per trunk: every client is asked for a certificate (the CA names of all trunks'
  ``tls_ca`` bundles are sent as a hint).  During the handshake a client whose source address
  belongs only to trunks that require mutual TLS must present a certificate that one of the
  bundles verifies, else the handshake fails.  When the handshake completes,
  :meth:`ServerTls.check_client` decides with :class:`ClientPolicy` per trunk: the chain must
  verify against *that trunk's* bundle and the certificate's DNS-IDs must match one of its
  ``match_tls_names`` (service-identity rules); the connection is closed otherwise, before any
  SIP is read.  A verified certificate whose names match a trunk's ``match_tls_names`` admits
  the connection to that trunk from any source (:meth:`ClientPolicy.admits`).
* :meth:`ServerTls.update` swaps in new certificates, keys and bundles (SIGHUP): handshakes
  that start afterwards use them, established connections keep what they negotiated.  It
  builds everything first and raises :class:`TlsSetupError` without changing anything when
  a file is bad.

Client side (:class:`ClientTls`): ``optionsForClientTLS`` for a server name, verifying the
server's certificate and name with service-identity against ``[tls] ca`` (or the system's
trust store) plus every trunk's ``tls_ca``, presenting ``[tls] client_certificate`` if set.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl as stdlib_ssl
from pathlib import Path
from typing import Any, Iterable, Sequence

from attrs import frozen
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from service_identity.hazmat import DNS_ID, DNSPattern, verify_service_identity
from service_identity.pyopenssl import extract_patterns
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    KeyPair,
    PrivateCertificate,
    TLSVersion,
    optionsForClientTLS,
)
from twisted.logger import Logger
from zope.interface import implementer

__all__ = [
    "ClientPolicy",
    "ClientTls",
    "ClientVerdict",
    "ServerTls",
    "TlsSetupError",
    "TrunkTls",
    "split_pem_certificates",
    "tls_admits",
]

_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s.+?\s-----END CERTIFICATE-----", re.DOTALL
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TlsSetupError(Exception):
    """A certificate, key or CA bundle cannot be used; ``str`` is one line naming the file
    and the problem."""


def split_pem_certificates(data: bytes) -> list[bytes]:
    return _PEM_CERT.findall(data)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TlsSetupError(f"{str(path)!r}: cannot read: {e.strerror or e}") from None


def load_certificates(path: Path) -> list[crypto.X509]:
    """Every PEM certificate in ``path`` (at least one)."""
    pems = split_pem_certificates(_read(path))
    if not pems:
        raise TlsSetupError(f"{str(path)!r} holds no PEM certificate")
    try:
        return [crypto.load_certificate(crypto.FILETYPE_PEM, p) for p in pems]
    except crypto.Error:
        raise TlsSetupError(f"{str(path)!r} holds a certificate that cannot be parsed") from None


def _check_valid_now(path: Path, cert: crypto.X509, now: datetime.datetime | None = None) -> None:
    c = cert.to_cryptography()
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if now < c.not_valid_before_utc:
        raise TlsSetupError(f"{str(path)!r} is not valid yet (valid from {c.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC)")
    if now > c.not_valid_after_utc:
        raise TlsSetupError(f"{str(path)!r} expired on {c.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")


@frozen
class _Identity:
    """A certificate with its key and chain, checked: parsed, matching, valid now."""

    leaf: crypto.X509
    key: crypto.PKey
    chain: tuple[crypto.X509, ...]


def load_identity(certificate: Path, private_key: Path, chain: Path | None = None) -> _Identity:
    """Our certificate (the first one in ``certificate``; the others there and those in
    ``chain`` are its chain) and its key.  Raises :class:`TlsSetupError`."""
    certs = load_certificates(certificate)
    if chain is not None:
        certs += load_certificates(chain)
    try:
        key = crypto.load_privatekey(crypto.FILETYPE_PEM, _read(private_key))
    except crypto.Error:
        raise TlsSetupError(f"{str(private_key)!r} holds no usable unencrypted PEM private key") from None
    _check_valid_now(certificate, certs[0])
    ctx = SSL.Context(SSL.TLS_METHOD)
    try:
        ctx.use_certificate(certs[0])
        ctx.use_privatekey(key)
        ctx.check_privatekey()
    except SSL.Error:
        raise TlsSetupError(f"{str(private_key)!r} does not match certificate {str(certificate)!r}") from None
    return _Identity(certs[0], key, tuple(certs[1:]))


def _options(ident: _Identity) -> CertificateOptions:
    return CertificateOptions(
        privateKey=ident.key,
        certificate=ident.leaf,
        extraCertChain=list(ident.chain),
        raiseMinimumTo=TLSVersion.TLSv1_2,
    )


# -- client certificates (mutual TLS) ----------------------------------------------------


@frozen
class TrunkTls:
    """What a trunk asks of TLS clients: its source networks, its CA bundle (mutual TLS
    when not empty) and the names a client certificate must carry."""

    name: str
    networks: tuple[Network, ...]
    ca: tuple[crypto.X509, ...] = ()
    names: tuple[str, ...] = ()

    @property
    def mutual(self) -> bool:
        return bool(self.ca)

    def holds(self, host: str) -> bool:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr.version == net.version and addr in net for net in self.networks)


@frozen
class ClientVerdict:
    """The outcome of :meth:`ClientPolicy.check`: ``admitted`` false means close the
    connection (``reason`` says why); ``trunks`` are the trunks the certificate satisfies;
    ``names`` the certificate's DNS names (for logs)."""

    admitted: bool
    reason: str = ""
    trunks: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()


def certificate_dns_names(cert: crypto.X509) -> tuple[str, ...]:
    """The DNS-IDs of a certificate (subjectAltName dNSName; the CN only when there is no
    SAN, as service-identity does)."""
    return tuple(p.pattern.decode("ascii", "replace").lower()
                 for p in extract_patterns(cert) if isinstance(p, DNSPattern))


def names_match(cert: crypto.X509, wanted: Sequence[str]) -> bool:
    """Whether the certificate carries one of ``wanted`` (configured names; ``*.example.com``
    stands for any single label under example.com).  A plain wanted name is checked as a
    reference DNS-ID with service-identity (the certificate may hold a wildcard)."""
    patterns = extract_patterns(cert)
    for name in wanted:
        if name.startswith("*."):
            suffix = name[1:]
            for have in certificate_dns_names(cert):
                head, dot, rest = have.partition(".")
                if dot and "*" not in have and head and "." + rest == suffix:
                    return True
            continue
        try:
            verify_service_identity(patterns, [DNS_ID(name)], [])
            return True
        except (VerificationError, ValueError):
            continue
    return False


def _verify_error(errno: int) -> str:
    """OpenSSL's text for a certificate verification error number."""
    try:
        from OpenSSL._util import ffi, lib  # pyOpenSSL's binding, as its own errors use

        return ffi.string(lib.X509_verify_cert_error_string(errno)).decode("ascii", "replace")
    except Exception:  # pragma: no cover - binding layout changed
        return f"error {errno}"


def _store(cas: Iterable[crypto.X509]) -> crypto.X509Store:
    store = crypto.X509Store()
    for ca in cas:
        store.add_cert(ca)
    return store


def _verify(store: crypto.X509Store, leaf: crypto.X509, chain: Sequence[crypto.X509]) -> str | None:
    """None if ``leaf`` (with ``chain``) verifies against ``store``, else the error."""
    try:
        crypto.X509StoreContext(store, leaf, list(chain)).verify_certificate()
        return None
    except crypto.X509StoreContextError as e:
        return str(e.args[0] if e.args else e)


def system_ca() -> tuple[crypto.X509, ...]:
    """The system's trust store as certificates (for names-only trunks without a bundle)."""
    paths = stdlib_ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            try:
                return tuple(load_certificates(Path(candidate)))
            except TlsSetupError:
                continue
    return ()


class ClientPolicy:
    """Decides on a TLS client's certificate, per trunk (pure: no sockets, no reactor).

    ``trunks``: every trunk's :class:`TrunkTls`; ``default_ca``: what verifies the
    certificates of clients admitted by name to trunks without a bundle of their own
    (``[tls] ca``, else the system's trust store)."""

    def __init__(self, trunks: Sequence[TrunkTls] = (), default_ca: Sequence[crypto.X509] = ()) -> None:
        self.trunks = tuple(trunks)
        self._stores = {t.name: _store(t.ca) for t in self.trunks if t.mutual}
        self._default = _store(default_ca) if default_ca else None

    @property
    def active(self) -> bool:
        """Whether any trunk looks at client certificates at all."""
        return any(t.mutual or t.names for t in self.trunks)

    def all_cas(self) -> list[crypto.X509]:
        """Every trunk's CA certificates, each once (the handshake's trust anchors)."""
        seen: dict[bytes, crypto.X509] = {}
        for t in self.trunks:
            for ca in t.ca:
                seen.setdefault(ca.digest("sha256"), ca)
        return list(seen.values())

    def requires_certificate(self, host: str) -> bool:
        """The source belongs to trunks and every one of them requires mutual TLS."""
        holding = [t for t in self.trunks if t.holds(host)]
        return bool(holding) and all(t.mutual for t in holding)

    def check(self, host: str, leaf: crypto.X509 | None, chain: Sequence[crypto.X509] = ()) -> ClientVerdict:
        """The verdict on a client at ``host`` that presented ``leaf`` (None: nothing) and
        ``chain`` (intermediates).  Refused only when the source belongs to trunks, all of
        them require mutual TLS, and none of them accepts the certificate (a certificate another
        trunk would take does not open a mutual-TLS trunk's sources)."""
        names = certificate_dns_names(leaf) if leaf is not None else ()
        accepted: set[str] = set()
        problems: list[str] = []
        default_error: str | None | bool = False  # False: not computed yet
        for t in self.trunks:
            if leaf is None or not (t.mutual or t.names):
                continue
            if t.mutual:
                error = _verify(self._stores[t.name], leaf, chain)
            elif self._default is not None:
                if default_error is False:
                    default_error = _verify(self._default, leaf, chain)
                error = default_error  # type: ignore[assignment]
            else:
                error = "no CA to verify it against"
            if error is not None:
                if t.holds(host):
                    problems.append(f"trunk {t.name}: certificate not verified by its CA bundle ({error})")
                continue
            if t.names and not names_match(leaf, t.names):
                if t.holds(host):
                    problems.append(f"trunk {t.name}: certificate names {list(names) or 'none'} match none of "
                                    f"{list(t.names)}")
                continue
            accepted.add(t.name)
        holding = [t for t in self.trunks if t.holds(host)]
        if holding and all(t.mutual for t in holding) and not accepted & {t.name for t in holding}:
            if leaf is None:
                reason = f"no client certificate (trunk {', '.join(t.name for t in holding)} requires mutual TLS)"
            else:
                reason = "; ".join(problems) or "client certificate refused"
            return ClientVerdict(False, reason, frozenset(), names)
        return ClientVerdict(True, "", frozenset(accepted), names)



def tls_admits(trunk: Any, transport: str, accepted: frozenset[str]) -> bool | None:
    """For the B2BUA's trunk matching: True when the request's TLS connection has a client
    certificate that satisfies ``trunk`` (admitted whatever the source), False when
    ``trunk`` requires mutual TLS and it has not (another transport, another certificate),
    None when certificates do not matter to ``trunk`` (its ``allow`` networks decide).
    ``accepted``: the trunks the connection's certificate satisfies
    (:attr:`ClientVerdict.trunks`)."""
    name = getattr(trunk, "name", None)
    mutual = getattr(trunk, "tls_ca", None) is not None
    by_name = bool(getattr(trunk, "match_tls_names", ()))
    ok = transport == "tls" and name in accepted
    if mutual:
        return ok
    if by_name and ok:
        return True
    return None


def trunk_tls(trunks: Iterable[Any]) -> list[TrunkTls]:
    """:class:`TrunkTls` of configured trunks (``tls_ca`` read now).  Raises
    :class:`TlsSetupError`."""
    out = []
    for t in trunks:
        ca_path = getattr(t, "tls_ca", None)
        ca = tuple(load_certificates(Path(ca_path))) if ca_path is not None else ()
        networks = tuple(n for n in getattr(t, "allow", ()) if isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network)))
        out.append(TrunkTls(t.name, networks, ca, tuple(getattr(t, "match_tls_names", ()))))
    return out


# -- the listener ------------------------------------------------------------------------


def _sni_match(pattern: str, name: str) -> bool:
    if pattern.startswith("*."):
        head, dot, rest = name.partition(".")
        return bool(dot and head) and "." + rest == pattern[1:]
    return pattern == name


class _Material:
    """One generation of a listener's contexts: default certificate, SNI certificates, the
    client policy.  Immutable once built."""

    def __init__(self, default: _Identity, sni: Sequence[tuple[str, _Identity]], policy: ClientPolicy) -> None:
        self.policy = policy
        cas = policy.all_cas()
        self.default = self._context(default, cas)
        self.sni = [(name, self._context(ident, cas)) for name, ident in sni]
        self.default.set_tlsext_servername_callback(self._servername)

    @staticmethod
    def _context(ident: _Identity, cas: Sequence[crypto.X509]) -> SSL.Context:
        ctx = _options(ident).getContext()
        if cas:
            store = ctx.get_cert_store()
            assert store is not None
            for ca in cas:
                store.add_cert(ca)
            ctx.set_client_ca_list([ca.get_subject() for ca in cas])
        return ctx

    def context_for(self, server_name: str | None) -> SSL.Context:
        if server_name:
            name = server_name.lower().rstrip(".")
            for pattern, ctx in self.sni:
                if pattern == name:
                    return ctx
            for pattern, ctx in self.sni:
                if _sni_match(pattern, name):
                    return ctx
        return self.default

    def _servername(self, conn: SSL.Connection) -> None:
        raw = conn.get_servername()
        name = raw.decode("ascii", "replace") if raw else None
        ctx = self.context_for(name)
        if ctx is not self.default:
            conn.set_context(ctx)


@implementer(IOpenSSLServerConnectionCreator)
class ServerTls:
    """The TLS side of one listener (see the module docstring).  Build it with
    :meth:`from_config`; hand it to the listener's endpoint as its context factory."""

    log = Logger()

    def __init__(self, material: _Material) -> None:
        self._material = material
        #: Connections refused during the handshake (their source needed a certificate).
        self.refused_in_handshake = 0
        #: ``(host, port, reason)``: told of each refusal in the handshake (the service sets
        #: the driver's :meth:`~sbc.transport.driver.SipDriver.tls_refused`: counted, logged).
        self.on_refused: Any = None

    @classmethod
    def from_config(cls, listener: Any, trunks: Iterable[Any] = (), tls: Any = None) -> "ServerTls":
        return cls(cls.build(listener, trunks, tls))

    @staticmethod
    def build(listener: Any, trunks: Iterable[Any] = (), tls: Any = None) -> _Material:
        """Read every file a listener needs.  Raises :class:`TlsSetupError`."""
        default = load_identity(Path(listener.certificate), Path(listener.private_key),
                                Path(listener.chain) if getattr(listener, "chain", None) else None)
        sni = [
            (s.name, load_identity(Path(s.certificate), Path(s.private_key), Path(s.chain) if s.chain else None))
            for s in getattr(listener, "sni", ())
        ]
        trunk_list = trunk_tls(trunks)
        default_ca: Sequence[crypto.X509] = ()
        if any(t.names and not t.mutual for t in trunk_list):
            ca = getattr(tls, "ca", None) if tls is not None else None
            default_ca = load_certificates(Path(ca)) if ca is not None else system_ca()
        return _Material(default, sni, ClientPolicy(trunk_list, default_ca))

    def update(self, listener: Any, trunks: Iterable[Any] = (), tls: Any = None) -> None:
        """New certificates, keys and bundles for the handshakes to come (SIGHUP).  Raises
        :class:`TlsSetupError` and keeps the old ones when a file is bad."""
        self._material = self.build(listener, trunks, tls)

    @property
    def policy(self) -> ClientPolicy:
        return self._material.policy

    @property
    def admits_by_name(self) -> bool:
        """Whether a client certificate can admit a source no allowlist holds (some trunk
        has ``match_tls_names``)."""
        return any(t.names for t in self._material.policy.trunks)

    def context_for(self, server_name: str | None) -> SSL.Context:
        return self._material.context_for(server_name)

    def serverConnectionForTLS(self, protocol: Any) -> SSL.Connection:
        material = self._material
        conn = SSL.Connection(material.default)
        if material.policy.active:
            conn.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, self._verify_callback(protocol, material.policy))
        return conn

    def _verify_callback(self, protocol: Any, policy: ClientPolicy) -> Any:
        """During the handshake: a source that needs mutual TLS must present a certificate
        some trunk's bundle verifies (``ok`` from OpenSSL); any other source's certificate is
        looked at once the handshake is done."""

        def callback(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
            try:
                if ok:
                    return True
                transport = getattr(protocol, "transport", None)
                address = transport.getPeer() if transport is not None else None
                host = getattr(address, "host", "")
                if policy.requires_certificate(host):
                    self.refused_in_handshake += 1
                    reason = (f"in the handshake: certificate not verified by any trunk's CA bundle "
                              f"({_verify_error(errno)}, depth {depth})")
                    if self.on_refused is not None:
                        self.on_refused(host, getattr(address, "port", 0), reason)
                    else:
                        self.log.info("TLS connection from {host} refused {reason}", host=host, reason=reason)
                    return False
                return True
            except Exception:
                self.log.failure("TLS verify callback raised")
                return False

        return callback

    def check_client(self, host: str, connection: SSL.Connection) -> ClientVerdict:
        """The verdict on an established connection's client certificate."""
        leaf = connection.get_peer_certificate()
        chain = connection.get_peer_cert_chain() or []
        if leaf is not None:
            digest = leaf.digest("sha256")
            chain = [c for c in chain if c.digest("sha256") != digest]
        return self._material.policy.check(host, leaf, chain)


# -- outgoing connections ----------------------------------------------------------------


@implementer(IOpenSSLTrustRoot)
class _TrustRoot:
    """The system's trust store (unless a bundle replaces it) plus further CA certificates."""

    def __init__(self, cas: Sequence[crypto.X509], system: bool) -> None:
        self.cas = tuple(cas)
        self.system = system

    def _addCACertsToContext(self, context: SSL.Context) -> None:
        if self.system:
            context.set_default_verify_paths()
        store = context.get_cert_store()
        assert store is not None
        for ca in self.cas:
            store.add_cert(ca)


class ClientTls:
    """How we connect out over TLS: :meth:`creator` gives the ``optionsForClientTLS`` for a
    server name (its certificate and name are verified with service-identity)."""

    def __init__(self, trust: _TrustRoot, client: PrivateCertificate | None, chain: Sequence[crypto.X509]) -> None:
        self.trust = trust
        self.client = client
        self.chain = tuple(chain)

    @classmethod
    def from_config(cls, tls: Any = None, trunks: Iterable[Any] = ()) -> "ClientTls":
        """``[tls]`` and the trunks' ``tls_ca``.  Raises :class:`TlsSetupError`."""
        cas: list[crypto.X509] = []
        ca = getattr(tls, "ca", None) if tls is not None else None
        if ca is not None:
            cas += load_certificates(Path(ca))
        for t in trunks:
            if getattr(t, "tls_ca", None) is not None:
                cas += load_certificates(Path(t.tls_ca))
        client = None
        chain: list[crypto.X509] = []
        cert_path = getattr(tls, "client_certificate", None) if tls is not None else None
        if cert_path is not None:
            ident = load_identity(Path(cert_path), Path(tls.client_private_key))
            client = PrivateCertificate.fromCertificateAndKeyPair(Certificate(ident.leaf), KeyPair(ident.key))
            chain = list(ident.chain)
        return cls(_TrustRoot(cas, system=ca is None), client, chain)

    def creator(self, server_name: str) -> Any:
        extra: dict[str, Any] = {"raiseMinimumTo": TLSVersion.TLSv1_2}
        if self.chain:
            extra["extraCertChain"] = list(self.chain)
        return optionsForClientTLS(server_name, trustRoot=self.trust, clientCertificate=self.client,
                                   extraCertificateOptions=extra)
