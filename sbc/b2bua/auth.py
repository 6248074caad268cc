# -*- test-case-name: tests.test_b2bua_auth -*-
"""Digest authentication of new calls per trunk (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO.

The B2BUA is a UAS: it challenges with **401** and ``WWW-Authenticate`` (407 is for proxies).
A trunk with a ``[trunk.auth]`` section (:class:`sbc.config.AuthConfig`) takes part:

* its source is inside the trunk's ``allow``: ``auth.required = true`` makes the call
  authenticate as well (allowlist AND digest); otherwise the allowlist alone admits it;
* its source is outside every allowlist: the trunks with ``[trunk.auth]`` and an *empty*
  ``allow`` (digest-only trunks) are candidates, and valid credentials for one of their
  users admit the call for that user's trunk.

What :meth:`TrunkAuth.admit` answers, for the candidates of one request:

* no credentials for any candidate realm, or a nonce we did not issue: a challenge -- one
  ``WWW-Authenticate`` per algorithm, SHA-256 first then MD5 (RFC 8760 §2.4), per realm,
  ``qop="auth"``, a fresh nonce;
* the right answer to an expired nonce: a challenge with ``stale=true`` (RFC 7616 §3.3);
* a wrong password or an unknown user: 403;
* a nonce-count not above the highest already accepted for that nonce: 403.  RFC 7616
  (§3.4, §5.5) leaves the answer to a replay to the server; a fresh challenge would invite
  the same request again, while a client that counts correctly never sends one, so a replay
  is refused, as the request of an attacker;
* credentials that do not parse: 400;
* valid credentials whose user belongs to a trunk that is not a candidate (another trunk's
  user, or a required-auth trunk's user calling from outside its ``allow``): 403.

Trunks may share a realm: they then share one :class:`~sbc.sip.digest.DigestVerifier`
(its nonces and nonce-count table), and the user name picks the trunk (the configuration
makes sure a user name belongs to one trunk per realm).  The nonce key is random per
process unless ``nonce_secret`` is configured.  The reasons given (``why``) are safe to log:
they name the user and the outcome, never a password, response or nonce.  ACK and CANCEL
are never challenged (RFC 3261 §22.1): the core asks only for new INVITEs.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Sequence

from attrs import frozen

from sbc.sip.digest import DigestVerifier, Outcome, VerifyResult
from sbc.sip.message import Request

__all__ = ["Admit", "Challenge", "Refuse", "TrunkAuth", "auth_of", "is_digest_only"]


@frozen
class Admit:
    """Admitted for ``trunk``, as ``user`` of its realm."""

    trunk: Any
    user: str


@frozen
class Challenge:
    """Answer 401 with these ``WWW-Authenticate`` headers."""

    headers: tuple[tuple[str, bytes], ...]
    stale: bool
    why: str


@frozen
class Refuse:
    """Answer ``status`` (403, or 400 for unparsable credentials); ``why`` is safe to log."""

    status: int
    why: str


def auth_of(trunk: Any) -> Any:
    """The trunk's ``[trunk.auth]`` section, or None."""
    return getattr(trunk, "auth", None)


def is_digest_only(trunk: Any) -> bool:
    """A trunk that admits any source that authenticates: ``[trunk.auth]`` and no ``allow``."""
    return auth_of(trunk) is not None and not tuple(getattr(trunk, "allow", ()))


class _Realm:
    """One realm: its verifier and which trunk each user name belongs to."""

    def __init__(self, name: str, auth: Any, secret: bytes, random_bytes: Callable[[int], bytes]) -> None:
        self.name = name
        self.owner: dict[str, str] = {}  # user -> trunk name
        self.passwords: dict[str, str] = {}
        self.params = (tuple(auth.algorithms), float(auth.nonce_ttl), secret)
        self.verifier = DigestVerifier(
            name, self._lookup, secret, nonce_ttl=float(auth.nonce_ttl), algorithms=tuple(auth.algorithms),
            random_bytes=random_bytes)

    def _lookup(self, user: str, realm: str) -> str | None:
        return self.passwords.get(user) if realm == self.name else None

    def __repr__(self) -> str:
        return f"<realm {self.name!r} users={sorted(self.owner)!r}>"


class TrunkAuth:
    """The digest state of every trunk with ``[trunk.auth]``.  ``default_realm`` is used
    when a trunk names none (the SBC's FQDN); ``secret`` keys the nonces of trunks without
    ``nonce_secret`` (default: 32 random bytes, per process)."""

    def __init__(self, trunks: Iterable[Any] = (), *, default_realm: str, secret: bytes | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.default_realm = default_realm
        self._secret = secret if secret is not None else os.urandom(32)
        self._random = random_bytes
        self._realms: dict[str, _Realm] = {}
        self._trunk_realm: dict[str, str] = {}
        self.open_trunks: tuple[Any, ...] = ()
        self.update(trunks)

    def __repr__(self) -> str:
        return f"<TrunkAuth realms={list(self._realms.values())!r}>"

    def update(self, trunks: Iterable[Any]) -> None:
        """A new trunk table (start-up, SIGHUP).  A realm whose algorithms, nonce lifetime
        and key are unchanged keeps its verifier, so nonces issued before the reload stay
        valid and their nonce-counts stay tracked."""
        old, self._realms = self._realms, {}
        self._trunk_realm = {}
        open_trunks = []
        for trunk in trunks:
            auth = auth_of(trunk)
            if auth is None:
                continue
            name = auth.realm or self.default_realm
            configured = getattr(auth, "nonce_secret", None)
            secret = configured.encode("utf-8") if configured else self._secret
            realm = self._realms.get(name)
            if realm is None:
                kept = old.get(name)
                if kept is not None and kept.params == (tuple(auth.algorithms), float(auth.nonce_ttl), secret):
                    kept.owner.clear()
                    kept.passwords.clear()
                    realm = kept
                else:
                    realm = _Realm(name, auth, secret, self._random)
                self._realms[name] = realm
            for user, password in auth.users.items():
                # The configuration refuses a user name twice in one realm; should it get here
                # anyway, the first trunk keeps it.
                if user not in realm.owner:
                    realm.owner[user] = trunk.name
                    realm.passwords[user] = str(password)
            self._trunk_realm[trunk.name] = name
            if is_digest_only(trunk):
                open_trunks.append(trunk)
        self.open_trunks = tuple(open_trunks)

    def required(self, trunk: Any) -> bool:
        """Must a call from inside this trunk's ``allow`` authenticate too?"""
        auth = auth_of(trunk)
        return auth is not None and bool(getattr(auth, "required", False))

    def realm_of(self, trunk: Any) -> str | None:
        return self._trunk_realm.get(getattr(trunk, "name", None))  # type: ignore[arg-type]

    def admit(self, candidates: Sequence[Any], request: Request, now: float) -> Admit | Challenge | Refuse:
        """Check ``request``'s ``Authorization`` against the candidate trunks' realms."""
        names = {t.name: t for t in candidates if t.name in self._trunk_realm}
        realms: list[_Realm] = []
        for trunk in candidates:
            realm = self._realms.get(self._trunk_realm.get(trunk.name, ""))
            if realm is not None and realm not in realms:
                realms.append(realm)
        if not realms:
            return Refuse(403, "no trunk with digest authentication for this source")
        results: list[tuple[_Realm, VerifyResult]] = []
        for realm in realms:
            result = realm.verifier.verify(request, now)
            if result.ok:
                user = result.username or ""
                owner = realm.owner.get(user)
                if owner in names:
                    return Admit(names[owner], user)
                return Refuse(403, f"user {user!r} of realm {realm.name!r} authenticated, but its trunk "
                                   f"({owner}) does not admit this source or Request-URI")
            results.append((realm, result))
        for outcome in (Outcome.MALFORMED, Outcome.REPLAYED, Outcome.FAILED):
            for realm, result in results:
                if result.outcome is outcome:
                    who = f"user {result.username!r} of realm {realm.name!r}" if result.username is not None \
                        else f"realm {realm.name!r}"
                    return Refuse(400 if outcome is Outcome.MALFORMED else 403, f"{who}: {result.reason}")
        stale = {realm.name for realm, result in results if result.stale}
        headers: list[tuple[str, bytes]] = []
        for realm in realms:
            headers.extend(realm.verifier.challenge(401, now=now, stale=realm.name in stale))
        why = "; ".join(f"realm {realm.name!r}: {result.reason}" for realm, result in results)
        return Challenge(tuple(headers), bool(stale), why)
