"""Server digest authentication: challenge, verify, refuse replays.

RFC 3261 section 22 with RFC 7616 and RFC 8760: the challenge offers SHA-256
and MD5 (in that order, configurable) with ``qop="auth"``. Nonces carry their
own proof: a timestamp and an HMAC of it under a secret, so a nonce is
checked without a lookup and survives nothing but its lifetime; an expired
nonce with a correct digest is answered with ``stale=true`` (RFC 7616 section
3.3) so that the client retries without asking its user. The nonce count of
each nonce in use is remembered, so a replayed Authorization is refused.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ParseError
from ..message import URI, Request, Response
from ..message.digest import Algorithm, Challenge, Credentials, verify
from ..transport.leg import Address, Leg
from .chain import AnsweredInvites, reply

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher

__all__ = [
    "Authorize",
    "AuthorizeStatistics",
    "NonceState",
    "Nonces",
    "Secret",
    "CredentialLookup",
]

#: What a user's secret is: the password, or H(user:realm:password) per algorithm
#: (a ``-sess`` algorithm falls back to the value of its plain variant).
Secret = str | Mapping[Algorithm, str]

#: An async lookup of a user's secret (None: no such user).
CredentialLookup = Callable[[str, str], Awaitable[Secret | None]]


class NonceState(enum.Enum):
    """What :meth:`Nonces.check` found."""

    VALID = "valid"
    STALE = "stale"
    INVALID = "invalid"


class Nonces:
    """Stateless nonces: ``<timestamp hex>.<HMAC(secret, timestamp, realm)>``.

    ``lifetime`` seconds after it was made, a nonce is stale. The nonce
    counts of nonces in use are kept (bounded by ``max_tracked``, oldest
    first out) so that :meth:`use` refuses an Authorization seen before.
    A retransmission of the request that used a count is let through for
    ``retransmission_window`` seconds (64*T1, the life of its transaction).
    """

    def __init__(
        self,
        realm: str,
        *,
        secret: bytes | None = None,
        lifetime: float = 300.0,
        max_tracked: int = 100000,
        retransmission_window: float = 32.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.realm = realm
        self.lifetime = lifetime
        self.max_tracked = max_tracked
        self.retransmission_window = retransmission_window
        self._secret = secret if secret is not None else os.urandom(32)
        self._clock = clock
        # nonce -> (highest nc seen, branch and fingerprint of the request
        # that used it, when it did)
        self._counts: OrderedDict[str, tuple[int, str | None, str | None, float]] = OrderedDict()

    def _mac(self, stamp: str) -> str:
        data = f"{stamp}:{self.realm}".encode()
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()[:32]

    def make(self) -> str:
        """A fresh nonce."""
        stamp = f"{int(self._clock() * 1000):x}"
        return f"{stamp}.{self._mac(stamp)}"

    def check(self, nonce: str) -> NonceState:
        """Whether ``nonce`` is one of ours, and still fresh."""
        stamp, dot, mac = nonce.partition(".")
        if not dot or not hmac.compare_digest(mac.encode(), self._mac(stamp).encode()):
            return NonceState.INVALID
        try:
            made = int(stamp, 16) / 1000
        except ValueError:
            return NonceState.INVALID
        age = self._clock() - made
        if age < -1.0 or age > self.lifetime:
            return NonceState.STALE
        return NonceState.VALID

    def use(
        self, nonce: str, nc: int | None, branch: str | None, *, fingerprint: str | None = None
    ) -> bool:
        """Record one use of ``nonce`` with count ``nc``; False for a replay.

        The count must grow (RFC 7616 section 3.4, nc). A retransmission of
        the same request is not a replay: the same count, the same top-Via
        ``branch`` and the same ``fingerprint`` (a hash of the message: a
        retransmission repeats it byte for byte), within
        ``retransmission_window`` of the first use. Without the fingerprint
        and the window, a captured request could be replayed with its branch
        kept and its Contact changed (qop=auth does not cover headers) once
        the transaction is gone, for the nonce's whole lifetime. Without qop
        there is no count: the nonce is then good for one request.
        """
        count = nc if nc is not None else 1
        now = self._clock()
        seen = self._counts.get(nonce)
        if seen is not None:
            last, last_branch, last_fingerprint, used_at = seen
            if count < last:
                return False
            if count == last:
                return (
                    branch is not None
                    and branch == last_branch
                    and fingerprint == last_fingerprint
                    and now - used_at <= self.retransmission_window
                )
        self._counts[nonce] = (count, branch, fingerprint, now)
        self._counts.move_to_end(nonce)
        while len(self._counts) > self.max_tracked:
            self._counts.popitem(last=False)
        return True

    def tracked(self) -> int:
        """How many nonces have their counts remembered."""
        return len(self._counts)


@dataclass(frozen=True, slots=True)
class AuthorizeStatistics:
    """Counters of an :class:`Authorize`."""

    challenged: int
    accepted: int
    refused: int
    stale: int
    replays: int


class Authorize:
    """Let only authenticated requests through; challenge or refuse the rest.

    ``credentials`` maps a user name to its secret (a password, or a mapping
    algorithm -> HA1), or is an async callable ``(user, realm) -> secret``.
    As a proxy (``proxy=True``) it challenges with 407 and reads
    Proxy-Authorization, otherwise with 401 and Authorization (RFC 3261
    sections 22.2, 22.3). ``methods`` limits which requests need
    authentication (all but ``exempt`` when None); ACK and CANCEL are exempt
    by default: they follow their INVITE (section 22.1). An ACK is never
    challenged, whatever ``exempt`` says: it can get no answer. With
    ``check_from``, the user must be the one in From, and for a REGISTER
    also the one in To, whose bindings change (section 10.3 step 4).

    Returns False (pass on) for an authenticated request, True when it
    answered (a challenge, 400, 403) or absorbed the ACK of a challenge.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        realm: str,
        credentials: Mapping[str, Secret] | CredentialLookup,
        *,
        proxy: bool = False,
        algorithms: Iterable[Algorithm] = (Algorithm.SHA_256, Algorithm.MD5),
        nonce_lifetime: float = 300.0,
        secret: bytes | None = None,
        methods: Iterable[str] | None = None,
        exempt: Iterable[str] = ("ACK", "CANCEL"),
        check_from: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dispatcher = dispatcher
        self.realm = realm
        self._credentials = credentials
        self.proxy = proxy
        self.algorithms = tuple(algorithms)
        self.methods = frozenset(methods) if methods is not None else None
        self.exempt = frozenset(exempt)
        self.check_from = check_from
        self.nonces = Nonces(
            realm,
            secret=secret,
            lifetime=nonce_lifetime,
            # A retransmission comes within the life of its transaction.
            retransmission_window=64 * dispatcher.timers.t1,
            clock=clock,
        )
        self._answered = AnsweredInvites()
        self._status = 407 if proxy else 401
        self._challenge_header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        self._credentials_header = "Proxy-Authorization" if proxy else "Authorization"
        self._challenged = 0
        self._accepted = 0
        self._refused = 0
        self._stale = 0
        self._replays = 0

    async def _secret_of(self, user: str) -> Secret | None:
        source = self._credentials
        if isinstance(source, Mapping):
            return source.get(user)
        return await source(user, self.realm)

    def _challenges(self, *, stale: bool) -> list[tuple[str, str]]:
        nonce = self.nonces.make()
        return [
            (
                self._challenge_header,
                str(Challenge(self.realm, nonce, algorithm=alg, qop=("auth",), stale=stale)),
            )
            for alg in self.algorithms
        ]

    async def _challenge(self, request: Request, leg: Leg, *, stale: bool = False) -> bool:
        self._challenged += 1
        await reply(
            self.dispatcher,
            request,
            self._status,
            leg,
            headers=self._challenges(stale=stale),
            answered=self._answered,
        )
        return True

    async def _refuse(self, request: Request, leg: Leg, status: int, reason: str) -> bool:
        self._refused += 1
        await reply(self.dispatcher, request, status, leg, reason=reason, answered=self._answered)
        return True

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        """Challenge, refuse, or pass on (False) an authenticated request."""
        if not isinstance(packet, Request):
            return False
        method = packet.method
        if method == "ACK":
            # An ACK can get no answer, so no challenge either (17.1.1.3,
            # 22.1), whatever ``exempt`` says: that of a challenge stops
            # here, the others (a 2xx's, through a proxy) go on.
            return self._answered.absorbs(packet)
        if method in self.exempt or (self.methods is not None and method not in self.methods):
            return False
        credentials = self._find_credentials(packet)
        if credentials is None:
            return await self._challenge(packet, leg)
        if isinstance(credentials, ParseError):
            return await self._refuse(packet, leg, 400, "Bad credentials")
        algorithm = credentials.effective_algorithm
        if algorithm is None or algorithm not in self.algorithms:
            return await self._challenge(packet, leg)
        state = self.nonces.check(credentials.nonce)
        if state is NonceState.INVALID:
            return await self._challenge(packet, leg)
        if not _same_uri(credentials.uri, packet):
            return await self._refuse(packet, leg, 400, "Digest URI mismatch")
        user = credentials.username
        secret = None if credentials.userhash else await self._secret_of(user)
        if secret is None or not _verify(credentials, packet, user, algorithm, secret):
            return await self._refuse(packet, leg, 403, "Forbidden")
        if state is NonceState.STALE:
            # RFC 7616 section 3.3: right password, old nonce: stale=true.
            self._stale += 1
            return await self._challenge(packet, leg, stale=True)
        fingerprint = hashlib.blake2b(packet.to_bytes(), digest_size=16).hexdigest()
        if not self.nonces.use(
            credentials.nonce, credentials.nc, packet.top_via.branch, fingerprint=fingerprint
        ):
            self._replays += 1
            return await self._refuse(packet, leg, 403, "Replayed credentials")
        if self.check_from and packet.from_.uri.user != user:
            return await self._refuse(packet, leg, 403, "User does not match From")
        if self.check_from and method == "REGISTER" and packet.to.uri.user != user:
            # Section 10.3 step 4: else any user could bind a device of hers
            # to another user's AOR and receive his calls.
            return await self._refuse(packet, leg, 403, "User does not match To")
        self._accepted += 1
        return False

    def _find_credentials(self, request: Request) -> Credentials | ParseError | None:
        # Section 22.3: several credentials may come, one per realm; ours counts.
        error: ParseError | None = None
        for value in request.headers.get_all(self._credentials_header):
            try:
                credentials = Credentials.parse(value)
            except ParseError as exc:
                error = exc
                continue
            if credentials.realm == self.realm:
                return credentials
        return error

    def statistics(self) -> AuthorizeStatistics:
        """Counters of challenges, acceptances, refusals, stale nonces and replays."""
        return AuthorizeStatistics(
            self._challenged, self._accepted, self._refused, self._stale, self._replays
        )


def _same_uri(digest_uri: str, request: Request) -> bool:
    # RFC 7616 section 3.4.6: the digest-uri must be the Request-URI, or the
    # credentials could be replayed against another resource.
    if digest_uri == request.uri_text:
        return True
    try:
        return URI.parse(digest_uri) == request.uri
    except ParseError:
        return False


def _verify(
    credentials: Credentials, request: Request, user: str, algorithm: Algorithm, secret: Secret
) -> bool:
    if isinstance(secret, str):
        return verify(credentials, method=request.method, body=request.body, password=secret)
    ha1 = secret.get(algorithm)
    if ha1 is None and algorithm.is_session:
        # RFC 7616 section 3.4.2: the -sess H(A1) is made from the plain one,
        # which verify() is given; ha1() cannot make a -sess one without a nonce.
        ha1 = secret.get(Algorithm(algorithm.value.removesuffix("-sess")))
    if ha1 is None:
        return False
    return verify(credentials, method=request.method, body=request.body, ha1=ha1, username=user)
