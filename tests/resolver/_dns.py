"""A tiny authoritative DNS server on loopback, serving a zone a test defines.

It answers over UDP on 127.0.0.1 at a port chosen at run time, built on
dnspython's message API. Besides records it can answer slowly, answer
SERVFAIL, or send raw bytes (malformed answers), per name.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import anyio
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from anyio.abc import TaskGroup, UDPSocket
from anyio.streams.buffered import BufferedByteReceiveStream

#: The SOA every negative answer carries (its minimum is the negative TTL).
SOA = "ns.test. hostmaster.test. 1 3600 600 86400 {minimum}"


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


@dataclass
class Zone:
    """Records and behaviours, keyed by owner name (absolute, lower case)."""

    rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = field(default_factory=dict)
    #: seconds to wait before answering a name
    delays: dict[dns.name.Name, float] = field(default_factory=dict)
    servfail: set[dns.name.Name] = field(default_factory=set)
    #: raw reply bytes per name (the query id is patched in)
    raw: dict[dns.name.Name, bytes] = field(default_factory=dict)
    #: names whose UDP answers are truncated (TC set, no records): the
    #: client must ask again over TCP
    truncated: set[dns.name.Name] = field(default_factory=set)
    #: SOA minimum for negative answers; None: no SOA in negative answers
    negative_minimum: int | None = 60

    def add(self, name: str, ttl: int, rdtype: str, *rdatas: str) -> Zone:
        """Add records: ``zone.add("example.test.", 300, "A", "127.0.0.1")``."""
        rrset = dns.rrset.from_text(name, ttl, "IN", rdtype, *rdatas)
        key = (rrset.name, int(rrset.rdtype))
        old = self.rrsets.get(key)
        if old is not None:
            rrset = dns.rrset.from_rdata_list(rrset.name, rrset.ttl, [*old, *rrset])
        self.rrsets[key] = rrset
        return self

    def remove(self, name: str, rdtype: str) -> None:
        """Drop the records of one type at one name."""
        del self.rrsets[(_name(name), int(dns.rdatatype.from_text(rdtype)))]

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        """The response to ``query`` from the records."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name, rdtype = question.name, int(question.rdtype)
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        # Follow CNAMEs as an authoritative server does (bounded: a loop in
        # the zone shows as a long chain, which the client must refuse).
        for _ in range(20):
            rrset = self.rrsets.get((name, rdtype))
            if rrset is not None:
                response.answer.append(rrset)
                return response
            cname = self.rrsets.get((name, int(dns.rdatatype.CNAME)))
            if cname is None:
                break
            response.answer.append(cname)
            name = next(iter(cname)).target
        else:
            return response
        if not any(owner == name for owner, _ in self.rrsets):
            response.set_rcode(dns.rcode.NXDOMAIN)
        if self.negative_minimum is not None:
            soa = dns.rrset.from_text(
                "test.", 3600, "IN", "SOA", SOA.format(minimum=self.negative_minimum)
            )
            response.authority.append(soa)
        return response


@dataclass
class DNSServer:
    """A running server: its port and the queries it got."""

    sock: UDPSocket
    zone: Zone
    tg: TaskGroup
    queries: list[tuple[str, str]] = field(default_factory=list)
    #: the queries that came over TCP
    tcp_queries: list[tuple[str, str]] = field(default_factory=list)
    #: replies to concurrent queries take turns on the socket
    send_lock: anyio.Lock = field(default_factory=anyio.Lock)

    @property
    def port(self) -> int:
        return int(self.sock.extra(anyio.abc.SocketAttribute.local_address)[1])

    def count(self, name: str, rdtype: str) -> int:
        """How often ``rdtype`` at ``name`` was asked."""
        return self.queries.count((_name(name).to_text().lower(), rdtype))

    async def _run(self) -> None:
        try:
            async for data, addr in self.sock:
                self.tg.start_soon(self._reply, data, (str(addr[0]), int(addr[1])))
        except anyio.ClosedResourceError:
            return

    async def _answer(self, data: bytes, *, tcp: bool) -> bytes:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name
        asked = (name.to_text().lower(), dns.rdatatype.to_text(question.rdtype))
        self.queries.append(asked)
        if tcp:
            self.tcp_queries.append(asked)
        delay = self.zone.delays.get(name)
        if delay is not None:
            await anyio.sleep(delay)
        raw = self.zone.raw.get(name)
        if raw is not None:
            # Raw bytes get the query's id, so that only their content is wrong.
            return data[:2] + raw[2:]
        if not tcp and name in self.zone.truncated:
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC
            return response.to_wire()
        return self.zone.answer(query).to_wire()

    async def _serve_tcp(self, stream: anyio.abc.SocketStream) -> None:
        # RFC 1035 section 4.2.2: each message after a two-byte length.
        reader = BufferedByteReceiveStream(stream)
        async with stream:
            try:
                while True:
                    size = int.from_bytes(await reader.receive_exactly(2), "big")
                    wire = await self._answer(await reader.receive_exactly(size), tcp=True)
                    await stream.send(len(wire).to_bytes(2, "big") + wire)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                return

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        wire = await self._answer(data, tcp=False)
        try:
            async with self.send_lock:
                await self.sock.sendto(wire, *addr)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return


@asynccontextmanager
async def dns_server(zone: Zone, *, tcp: bool = False) -> AsyncIterator[DNSServer]:
    """Serve ``zone`` on 127.0.0.1 at a free port until the block ends: UDP,
    and TCP on the same port number when ``tcp`` is true."""
    async with AsyncExitStack() as closers, anyio.create_task_group() as tg:
        for _attempt in range(10):
            sock = await anyio.create_udp_socket(family=socket.AF_INET, local_host="127.0.0.1")
            server = DNSServer(sock, zone, tg)
            if not tcp:
                break
            try:
                listener = await anyio.create_tcp_listener(
                    local_host="127.0.0.1", local_port=server.port
                )
            except OSError:
                # The port is free for UDP but taken for TCP: try another.
                await sock.aclose()
                continue
            # Closed once the task group is done, not under a running serve().
            closers.push_async_callback(listener.aclose)
            tg.start_soon(listener.serve, server._serve_tcp)
            break
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        async with sock:
            tg.start_soon(server._run)
            yield server
        tg.cancel_scope.cancel()
