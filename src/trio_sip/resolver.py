"""Finding where a request goes: RFC 3263 targets for a URI.

:class:`Target` is what every resolution yields: a transport, an IP address,
a port and the host name that TLS verifies the peer against.

:class:`DNSResolver` is the full locating procedure of RFC 3263 section 4 on
dnspython's asynchronous stub resolver: transport from the URI, else NAPTR,
else SRV, else A/AAAA; SRV records ordered by priority and weighted random
selection (RFC 2782); a cache that honours TTLs and keeps negative answers
briefly (RFC 2308). It runs on trio and on asyncio: dnspython is handed the
backend of the running event loop on every query, because it would otherwise
cache the first one it sees for the whole process.

:class:`SystemResolver` is the fallback for hosts without DNS: the system's
getaddrinfo (hosts file included), default ports, no NAPTR or SRV.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal, Protocol, TypeVar

import anyio
import dns._asyncbackend
import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver
import sniffio

from .errors import ResolveError, ResolveFailure
from .message import URI
from .transport.leg import is_ip_literal

__all__ = [
    "Target",
    "Resolver",
    "DNSResolver",
    "ResolverStatistics",
    "ResolveFailure",
    "SystemResolver",
    "TRANSPORTS",
    "uri_transport",
    "order_srv",
]

#: The transports a resolver picks from when the caller does not restrict them.
TRANSPORTS: Final = ("udp", "tcp", "tls")

#: RFC 3263 section 4.1 / RFC 7118: NAPTR service field -> transport.
NAPTR_SERVICES: Final[Mapping[str, str]] = {
    "SIP+D2U": "udp",
    "SIP+D2T": "tcp",
    "SIPS+D2T": "tls",
    "SIP+D2W": "ws",
    "SIPS+D2W": "wss",
}

#: RFC 3263 section 4.1: the SRV owner-name prefix per transport.
SRV_PREFIXES: Final[Mapping[str, str]] = {
    "udp": "_sip._udp",
    "tcp": "_sip._tcp",
    "tls": "_sips._tcp",
    "ws": "_sip._ws",
    "wss": "_sips._ws",
}

_SECURE_TRANSPORTS: Final = frozenset({"tls", "wss"})
#: Non-terminal NAPTR records followed before the chain counts as a loop.
_MAX_NAPTR_DEPTH: Final = 5


def _default_port(transport: str) -> int:
    # RFC 3261 section 19.1.2 (5060/5061); RFC 7118 leaves WebSocket ports to
    # HTTP (80/443).
    return {"tls": 5061, "ws": 80, "wss": 443}.get(transport, 5060)


@dataclass(frozen=True, slots=True)
class Target:
    """One place to send a request to."""

    #: "udp", "tcp" or "tls"
    transport: str
    #: an IP address (no brackets)
    host: str
    port: int
    #: the name a TLS peer's certificate must match (the SIP domain), if any
    hostname: str | None = None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.host, self.port


class Resolver(Protocol):
    """Anything that turns a URI into an ordered list of targets."""

    async def resolve(self, uri: URI, *, transports: Collection[str] | None = None) -> list[Target]:
        """The targets for ``uri``, best first; raise ResolveError when none.

        ``transports`` are those the caller can send over (the Dispatcher's
        legs); None means :data:`TRANSPORTS`.
        """
        ...


def _error(reason: ResolveFailure, detail: str) -> ResolveError:
    return ResolveError(reason, detail)


def uri_transport(uri: URI) -> str:
    """The transport a URI asks for: ``transport=``, else tls for sips, else udp."""
    transport = uri.transport
    if transport in ("udp", "tcp", "tls"):
        return "tls" if uri.is_secure and transport == "tcp" else transport
    return "tls" if uri.is_secure else "udp"


def _allowed(transports: Collection[str] | None) -> list[str]:
    # None is every transport of TRANSPORTS; an empty collection is a caller
    # that can send over none.
    wanted = TRANSPORTS if transports is None else transports
    return [t for t in (*TRANSPORTS, "ws", "wss") if t in wanted]


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _explicit_transport(uri: URI, allowed: Sequence[str]) -> str | None:
    """The transport named by ``transport=`` (RFC 3263 section 4.1), or None."""
    param = uri.transport
    if param is None:
        return None
    # sips with transport=tcp is TLS (RFC 3261 section 19.1.2); ws stays ws
    # for sip and becomes wss for sips (RFC 7118).
    transport = {"tcp": "tls", "ws": "wss"}.get(param, param) if uri.is_secure else param
    if uri.is_secure and transport not in _SECURE_TRANSPORTS:
        raise _error(ResolveFailure.NO_TRANSPORT, f"{uri} asks for {param} on a sips URI")
    if transport not in allowed:
        raise _error(ResolveFailure.NO_TRANSPORT, f"{uri} asks for {param}, not one of ours")
    return transport


def _default_transport(uri: URI, allowed: Sequence[str]) -> str:
    # RFC 3263 section 4.1: UDP for sip and TLS for sips when the host is
    # numeric or a port is given. A caller without UDP gets TCP (local
    # policy: it is what RFC 3261 section 18.1.1 falls back to anyway).
    preference = ("tls",) if uri.is_secure else ("udp", "tcp")
    for transport in preference:
        if transport in allowed:
            return transport
    raise _error(ResolveFailure.NO_TRANSPORT, f"no {'/'.join(preference)} for {uri}")


class SRVRecord(Protocol):
    """What :func:`order_srv` needs of an SRV record (dnspython's rdata fits)."""

    @property
    def priority(self) -> int:
        """Lower is tried first."""
        ...

    @property
    def weight(self) -> int:
        """Relative share of the selections within one priority."""
        ...


_R = TypeVar("_R", bound=SRVRecord)
_T = TypeVar("_T")


def order_srv(records: Sequence[_R], rng: random.Random) -> list[_R]:
    """Order SRV records as RFC 2782 says: by priority, and within one
    priority by repeated weighted random selection.

    Zero-weight records go first in each round's running sum, so they are
    chosen only when the random number is 0 (RFC 2782, "Weight").
    """
    ordered: list[_R] = []
    for priority in sorted({r.priority for r in records}):
        # Stable: the zero weights first, the rest in the order given.
        remaining = sorted(
            (r for r in records if r.priority == priority), key=lambda r: r.weight != 0
        )
        while remaining:
            pick = rng.randint(0, sum(r.weight for r in remaining))
            running = 0
            for index, record in enumerate(remaining):
                running += record.weight
                if running >= pick:
                    ordered.append(remaining.pop(index))
                    break
    return ordered


@dataclass(frozen=True, slots=True)
class ResolverStatistics:
    """A snapshot of what a :class:`DNSResolver` has done."""

    #: DNS queries sent (cache misses)
    queries: int
    cache_hits: int
    #: entries in the cache, expired ones included until they are looked at
    cache_size: int
    #: ResolveErrors raised by :meth:`DNSResolver.resolve`, by reason value
    failures: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class _CacheEntry:
    expires: float
    #: the records; empty for a negative answer (NXDOMAIN or NODATA)
    records: tuple[Any, ...]


class _Errors:
    """The lookup errors of one resolution: reported only when nothing worked."""

    def __init__(self) -> None:
        self.first: ResolveError | None = None

    def note(self, exc: ResolveError) -> None:
        if self.first is None:
            self.first = exc


async def _gather(calls: Sequence[Callable[[], Awaitable[_T]]]) -> list[_T]:
    """Run ``calls`` concurrently; their results in the order of ``calls``."""
    if len(calls) == 1:
        return [await calls[0]()]
    results: list[Any] = [None] * len(calls)

    async def run(index: int) -> None:
        results[index] = await calls[index]()

    async with anyio.create_task_group() as tg:
        for index in range(len(calls)):
            tg.start_soon(run, index)
    return results


def _has_route(address: str) -> bool:
    """Whether the system has a route to ``address`` (RFC 6724 rule 1).

    Connecting a UDP socket only asks the kernel for a route: no packet
    leaves the host.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((address, 9))
    except OSError:
        return False
    return True


def _domain(name: dns.name.Name) -> str:
    """A record's target name as text; "" for the root ("." means none)."""
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True)


def _dnspython_backend() -> dns._asyncbackend.Backend:
    # dnspython remembers the first backend it detects for the whole process;
    # a program (or a test run) that uses trio and asyncio in turn needs the
    # one of the loop running now.
    return dns.asyncbackend.get_backend(sniffio.current_async_library())


class DNSResolver:
    """RFC 3263 section 4 on DNS: NAPTR, SRV (RFC 2782) and A/AAAA, cached.

    ``nameservers`` and ``port`` choose the servers (default: the system's
    configuration, read on first use). Every DNS query is bounded by
    ``query_bound`` seconds and every :meth:`resolve` by ``resolve_bound``
    (anyio's clock); a caller tightens either with a cancel scope. Positive
    answers are cached for their TTL (at most ``max_ttl``), negative ones
    (NXDOMAIN, NODATA) for the SOA's negative TTL but at most
    ``negative_ttl`` (RFC 2308); failures are not cached.

    ``address_order`` is "system" (IPv6 addresses the host has a route to,
    then IPv4, then the other IPv6 ones, as RFC 6724's default policy),
    "ipv6" or "ipv4". ``system_fallback`` asks getaddrinfo (hosts file
    included) for a name DNS has no address for, so ``localhost`` works.
    ``rng`` drives the SRV weighted selection (seed it for tests).
    """

    def __init__(
        self,
        *,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        query_bound: float = 4.0,
        resolve_bound: float = 10.0,
        negative_ttl: float = 30.0,
        max_ttl: float = 86400.0,
        cache_size: int = 4096,
        max_srv_targets: int = 16,
        address_order: Literal["system", "ipv6", "ipv4"] = "system",
        system_fallback: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.nameservers = list(nameservers) if nameservers is not None else None
        self.port = port
        self.query_bound = query_bound
        self.resolve_bound = resolve_bound
        self.negative_ttl = negative_ttl
        self.max_ttl = max_ttl
        self.cache_size = cache_size
        self.max_srv_targets = max_srv_targets
        self.address_order = address_order
        self.system_fallback = system_fallback
        self.rng = rng if rng is not None else random.Random()
        self._dns: dns.asyncresolver.Resolver | None = None
        self._cache: dict[tuple[str, int], _CacheEntry] = {}
        self._queries = 0
        self._hits = 0
        self._failures: dict[str, int] = {}

    # ----- the public interface -------------------------------------------------------

    async def resolve(self, uri: URI, *, transports: Collection[str] | None = None) -> list[Target]:
        """The targets for ``uri`` in the order RFC 3263 section 4 gives.

        ``transports`` restricts the choice to what the caller can send over
        (default :data:`TRANSPORTS`). Raises :class:`ResolveError` whose message
        starts with a :class:`ResolveFailure` value when there is no target.
        """
        allowed = _allowed(transports)
        try:
            with anyio.fail_after(self.resolve_bound):
                return await self._resolve(uri, allowed)
        except TimeoutError:
            exc = _error(ResolveFailure.TIMEOUT, f"{uri}: over {self.resolve_bound} s")
        except ResolveError as error:
            exc = error
        reason = str(exc).split(":", 1)[0]
        self._failures[reason] = self._failures.get(reason, 0) + 1
        raise exc

    def statistics(self) -> ResolverStatistics:
        """Queries, cache hits, cache size and failures so far."""
        return ResolverStatistics(
            queries=self._queries,
            cache_hits=self._hits,
            cache_size=len(self._cache),
            failures=dict(self._failures),
        )

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    # ----- RFC 3263 section 4 ---------------------------------------------------------

    async def _resolve(self, uri: URI, allowed: Sequence[str]) -> list[Target]:
        if not uri.is_sip:
            raise _error(ResolveFailure.NO_TRANSPORT, f"{uri} is not a sip or sips URI")
        # Section 4: maddr, when present, is the target instead of the host.
        target = _strip_brackets(uri.maddr or uri.host).rstrip(".")
        if not target:
            raise _error(ResolveFailure.MALFORMED, f"{uri} has no host")
        # RFC 5922 section 4: TLS verifies the URI's domain, not what DNS
        # turned it into.
        hostname = None if is_ip_literal(uri.host) else uri.host
        explicit = _explicit_transport(uri, allowed)
        errors = _Errors()
        if is_ip_literal(target):
            transport = explicit or _default_transport(uri, allowed)
            return [Target(transport, target, uri.port or _default_port(transport), hostname)]
        if uri.port is not None:
            # Section 4.2: an explicit port means A/AAAA, no SRV.
            transport = explicit or _default_transport(uri, allowed)
            targets = await self._address_targets(target, transport, uri.port, hostname, errors)
        elif explicit is not None:
            # Section 4.2: a transport but no port: SRV for that transport.
            srv = await self._srv_targets(target, explicit, hostname, errors)
            if srv is None:
                port = _default_port(explicit)
                srv = await self._address_targets(target, explicit, port, hostname, errors)
            targets = srv
        else:
            targets = await self._locate(uri, target, allowed, hostname, errors)
        if not targets:
            raise errors.first or _error(ResolveFailure.NOT_FOUND, f"no address for {uri}")
        return list(dict.fromkeys(targets))

    async def _locate(
        self,
        uri: URI,
        target: str,
        allowed: Sequence[str],
        hostname: str | None,
        errors: _Errors,
    ) -> list[Target]:
        """Neither transport nor port given: NAPTR, else SRV, else A/AAAA."""
        services = await self._naptr_services(target, uri.is_secure, allowed, errors)
        targets: list[Target] = []
        # RFC 2782 "Usage rules", RFC 3263 section 4.2: the domain's own
        # addresses are a fallback only when no SRV records were found; an
        # SRV set that leads nowhere ("." or targets without addresses) is
        # the domain's answer.
        srv_found = False
        if services:
            calls: list[Callable[[], Awaitable[list[Target] | None]]] = [
                partial(self._srv_targets_at, name, transport, hostname, errors)
                if flag == "s"
                else partial(
                    self._address_targets,
                    name,
                    transport,
                    _default_port(transport),
                    hostname,
                    errors,
                )
                for transport, flag, name in services
            ]
            for (_, flag, _), found in zip(services, await _gather(calls), strict=True):
                if found is not None:
                    srv_found = srv_found or flag == "s"
                    targets.extend(found)
            # Section 4.2: no SRV behind the chosen NAPTR: A/AAAA of the
            # target with that transport's default port.
            fallback = services[0][0]
        else:
            # Section 4.1: no NAPTR: SRV queries for the transports we have
            # (sips only over TLS), in our order of preference.
            candidates = [
                t
                for t in allowed
                if t in SRV_PREFIXES and (not uri.is_secure or t in _SECURE_TRANSPORTS)
            ]
            calls = [
                partial(self._srv_targets, target, transport, hostname, errors)
                for transport in candidates
            ]
            for found in await _gather(calls) if calls else []:
                if found is not None:
                    srv_found = True
                    targets.extend(found)
            fallback = _default_transport(uri, allowed)
        if targets or srv_found:
            return targets
        port = _default_port(fallback)
        return await self._address_targets(target, fallback, port, hostname, errors)

    async def _naptr_services(
        self, domain: str, secure: bool, allowed: Sequence[str], errors: _Errors
    ) -> list[tuple[str, str, str]]:
        """Usable NAPTR records of ``domain`` as (transport, flag, replacement),
        in order and preference (RFC 3403 section 4.1), following non-terminal
        records (empty flags) to the NAPTR set at their replacement."""
        found: list[tuple[str, str, str]] = []
        chain = [domain.lower()]
        await self._follow_naptr(domain, secure, allowed, errors, chain, found)
        return found

    async def _follow_naptr(
        self,
        domain: str,
        secure: bool,
        allowed: Sequence[str],
        errors: _Errors,
        chain: list[str],
        found: list[tuple[str, str, str]],
    ) -> None:
        try:
            records = await self._lookup(domain, dns.rdatatype.NAPTR)
        except ResolveError as exc:
            errors.note(exc)
            return
        for record in sorted(records, key=lambda r: (r.order, r.preference)):
            flags = record.flags.decode("ascii", "replace").lower()
            service = record.service.decode("ascii", "replace").upper()
            replacement = _domain(record.replacement)
            # RFC 3263 section 4.1: SIP uses the replacement, never a regexp;
            # a record with a regexp or without a replacement is not ours.
            if record.regexp or not replacement:
                continue
            if flags == "":
                if len(chain) > _MAX_NAPTR_DEPTH or replacement.lower() in chain:
                    raise _error(
                        ResolveFailure.LOOP, f"NAPTR {' -> '.join(chain)} -> {replacement}"
                    )
                chain.append(replacement.lower())
                await self._follow_naptr(replacement, secure, allowed, errors, chain, found)
                chain.pop()
                continue
            transport = NAPTR_SERVICES.get(service)
            if flags not in ("s", "a") or transport is None or transport not in allowed:
                continue
            # Section 4.1: a sips URI uses only SIPS services; a sip URI may
            # use them too (TLS is fine for sip).
            if secure and not service.startswith("SIPS+"):
                continue
            found.append((transport, flags, replacement))

    async def _srv_targets(
        self, domain: str, transport: str, hostname: str | None, errors: _Errors
    ) -> list[Target] | None:
        return await self._srv_targets_at(
            f"{SRV_PREFIXES[transport]}.{domain}", transport, hostname, errors
        )

    async def _srv_targets_at(
        self, name: str, transport: str, hostname: str | None, errors: _Errors
    ) -> list[Target] | None:
        """Targets of the SRV set at ``name``, in RFC 2782 order; None when
        there is no SRV set (none, or the lookup failed), which is when
        RFC 2782 falls back to the domain's addresses."""
        try:
            records = await self._lookup(name, dns.rdatatype.SRV)
        except ResolveError as exc:
            errors.note(exc)
            return None
        if not records:
            return None
        # RFC 2782: a lone record with target "." says the service is
        # decidedly not available here; a "." among others is skipped.
        usable = [r for r in records if _domain(r.target) and r.port]
        if not usable:
            errors.note(_error(ResolveFailure.NOT_FOUND, f"SRV {name}: service not available"))
        ordered = order_srv(usable, self.rng)[: self.max_srv_targets]
        calls = [
            partial(
                self._address_targets,
                _domain(record.target),
                transport,
                record.port,
                hostname,
                errors,
            )
            for record in ordered
        ]
        targets: list[Target] = []
        for found in await _gather(calls) if calls else []:
            targets.extend(found)
        return targets

    async def _address_targets(
        self, host: str, transport: str, port: int, hostname: str | None, errors: _Errors
    ) -> list[Target]:
        return [
            Target(transport, address, port, hostname)
            for address in await self._addresses(host, errors)
        ]

    async def _addresses(self, host: str, errors: _Errors) -> list[str]:
        """The IPv6 and IPv4 addresses of ``host`` in the preferred order."""
        if is_ip_literal(host):
            return [host]

        async def lookup(rdtype: dns.rdatatype.RdataType) -> list[str]:
            try:
                return [r.address for r in await self._lookup(host, rdtype)]
            except ResolveError as exc:
                errors.note(exc)
                return []

        v6, v4 = await _gather(
            [partial(lookup, dns.rdatatype.AAAA), partial(lookup, dns.rdatatype.A)]
        )
        if not v6 and not v4 and self.system_fallback:
            return await self._system_addresses(host, errors)
        if self.address_order == "ipv4":
            return v4 + v6
        if self.address_order == "ipv6":
            return v6 + v4
        routed = [a for a in v6 if _has_route(a)]
        return routed + v4 + [a for a in v6 if a not in routed]

    async def _system_addresses(self, host: str, errors: _Errors) -> list[str]:
        try:
            with anyio.fail_after(self.query_bound):
                infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except TimeoutError:
            errors.note(_error(ResolveFailure.TIMEOUT, f"getaddrinfo {host}"))
            return []
        except OSError as exc:
            errors.note(_error(ResolveFailure.NOT_FOUND, f"getaddrinfo {host}: {exc}"))
            return []
        # getaddrinfo has sorted them already (RFC 6724, gai.conf).
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    # ----- DNS with a cache -----------------------------------------------------------

    def _stub(self) -> dns.asyncresolver.Resolver:
        if self._dns is None:
            try:
                stub = dns.asyncresolver.Resolver(configure=self.nameservers is None)
            except dns.exception.DNSException as exc:
                raise _error(ResolveFailure.SERVER_FAILURE, f"no DNS configuration: {exc}") from exc
            if self.nameservers is not None:
                stub.nameservers = list(self.nameservers)
                stub.port = self.port
            # Our cache keeps time on anyio's clock; dnspython's would use the
            # wall clock.
            stub.cache = None
            stub.timeout = self.query_bound
            stub.lifetime = self.query_bound
            self._dns = stub
        return self._dns

    async def _lookup(self, name: str, rdtype: dns.rdatatype.RdataType) -> tuple[Any, ...]:
        """The records of type ``rdtype`` at ``name`` (empty when there are
        none), from the cache while their TTL lasts."""
        key = (name.lower().rstrip("."), int(rdtype))
        now = anyio.current_time()
        entry = self._cache.get(key)
        if entry is not None:
            if entry.expires > now:
                self._hits += 1
                return entry.records
            del self._cache[key]
        records, ttl = await self._query(key[0], rdtype)
        if ttl > 0:
            if len(self._cache) >= self.cache_size:
                # The oldest entry goes first (dicts keep insertion order).
                del self._cache[next(iter(self._cache))]
            self._cache[key] = _CacheEntry(now + ttl, records)
        return records

    async def _query(
        self, name: str, rdtype: dns.rdatatype.RdataType
    ) -> tuple[tuple[Any, ...], float]:
        """Ask DNS; the records and how long they may be cached."""
        what = f"{dns.rdatatype.to_text(rdtype)} {name}"
        stub = self._stub()
        self._queries += 1
        try:
            qname = dns.name.from_text(name)
            # dnspython bounds the query on the wall clock; anyio's bound is
            # the one that holds on a virtual clock too.
            with anyio.fail_after(self.query_bound):
                answer = await stub.resolve(
                    qname,
                    rdtype,
                    search=False,
                    raise_on_no_answer=False,
                    lifetime=self.query_bound,
                    backend=_dnspython_backend(),
                )
        except TimeoutError as exc:
            raise _error(ResolveFailure.TIMEOUT, f"{what}: over {self.query_bound} s") from exc
        except dns.resolver.NXDOMAIN as exc:
            # dnspython leaves responses() unannotated.
            responses: dict[dns.name.Name, dns.message.Message] = exc.responses()  # type: ignore[no-untyped-call]
            return (), self._negative_ttl(responses.values())
        except dns.resolver.LifetimeTimeout as exc:
            raise _error(ResolveFailure.TIMEOUT, f"{what}: {exc}") from exc
        except dns.message.ChainTooLong as exc:
            raise _error(ResolveFailure.LOOP, f"{what}: CNAME chain {exc}") from exc
        except dns.resolver.NoNameservers as exc:
            # Each server's error is noted; answers that did not parse are
            # a bad answer, not a failing server.
            server_errors = exc.kwargs.get("errors") or []
            causes = [e[3] for e in server_errors]
            reason = ResolveFailure.SERVER_FAILURE
            if any(isinstance(c, dns.message.ChainTooLong) for c in causes):
                reason = ResolveFailure.LOOP
            elif any(isinstance(c, dns.exception.FormError) for c in causes):
                reason = ResolveFailure.MALFORMED
            raise _error(reason, f"{what}: {exc}") from exc
        except dns.exception.DNSException as exc:
            raise _error(ResolveFailure.MALFORMED, f"{what}: {exc!r}") from exc
        if answer.rrset is None:
            return (), self._negative_ttl([answer.response])
        records = tuple(answer.rrset)
        if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            # dnspython checks A/AAAA text; refuse addresses no socket takes.
            for record in records:
                try:
                    ipaddress.ip_address(record.address)
                except ValueError as exc:
                    raise _error(ResolveFailure.MALFORMED, f"{what}: {exc}") from exc
        return records, min(float(answer.chaining_result.minimum_ttl), self.max_ttl)

    def _negative_ttl(self, responses: Collection[dns.message.Message]) -> float:
        # RFC 2308 section 5: a negative answer lives min(SOA TTL, SOA
        # minimum); without an SOA we still keep it briefly, as asked.
        ttl = self.negative_ttl
        for response in responses:
            for rrset in response.authority:
                if rrset.rdtype == dns.rdatatype.SOA:
                    for soa in rrset:
                        ttl = min(ttl, float(rrset.ttl), float(soa.minimum))
        return ttl


class SystemResolver:
    """Resolution through getaddrinfo: no NAPTR or SRV, default ports only.

    The fallback for hosts without a usable DNS configuration; names come
    from wherever the system looks (hosts file, mDNS ...).
    """

    async def resolve(self, uri: URI, *, transports: Collection[str] | None = None) -> list[Target]:
        """Targets for ``uri`` (``maddr`` overrides the host)."""
        # RFC 3263 section 4.1: the transport parameter as DNSResolver reads
        # it (never UDP for sips, no stand-in for one we lack).
        transport = _explicit_transport(uri, _allowed(transports)) or uri_transport(uri)
        if transports is not None and transport not in transports:
            raise _error(ResolveFailure.NO_TRANSPORT, f"no {transport} for {uri}")
        host = _strip_brackets(uri.maddr or uri.host)
        port = uri.port or _default_port(transport)
        hostname = None if is_ip_literal(uri.host) else uri.host
        if is_ip_literal(host):
            return [Target(transport, host, port, hostname)]
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        try:
            infos = await anyio.getaddrinfo(host, port, type=kind)
        except OSError as exc:
            raise _error(ResolveFailure.NOT_FOUND, f"cannot resolve {host!r}: {exc}") from exc
        targets: list[Target] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            target = Target(transport, str(sockaddr[0]), port, hostname)
            if target not in targets:
                targets.append(target)
        if not targets:
            raise _error(ResolveFailure.NOT_FOUND, f"no address for {host!r}")
        return targets
