"""A raw UDP peer for dispatcher tests: records what arrives, and when."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup, UDPSocket

from trio_sip.message import Message, Request, new_call_id, new_tag, parse_message

#: Seconds (real or virtual) a test waits for packets before it fails.
WAIT_BOUND = 60.0


@dataclass
class Arrival:
    time: float
    message: Message
    source: tuple[str, int]


@dataclass
class UDPPeer:
    sock: UDPSocket
    start: float
    arrivals: list[Arrival] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.extra(anyio.abc.SocketAttribute.local_address)[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        return self.address[1]

    def times(self) -> list[float]:
        return [round(a.time - self.start, 6) for a in self.arrivals]

    async def send(self, data: bytes | Message, dst: tuple[str, int]) -> None:
        await self.sock.sendto(bytes(data), dst[0], dst[1])

    async def wait_for(self, count: int) -> list[Arrival]:
        """Wait until ``count`` packets have arrived (bounded, also in virtual time)."""
        with anyio.fail_after(WAIT_BOUND):
            while len(self.arrivals) < count:
                self.changed = anyio.Event()
                await self.changed.wait()
        return self.arrivals

    async def _run(self) -> None:
        try:
            async for data, addr in self.sock:
                source = (str(addr[0]), int(addr[1]))
                self.arrivals.append(Arrival(anyio.current_time(), parse_message(data), source))
                self.changed.set()
        except anyio.ClosedResourceError:
            return


@asynccontextmanager
async def udp_peer(tg: TaskGroup, host: str = "127.0.0.1") -> AsyncIterator[UDPPeer]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    async with await anyio.create_udp_socket(family=family, local_host=host) as sock:
        peer = UDPPeer(sock, anyio.current_time())
        tg.start_soon(peer._run)
        yield peer


def request(
    method: str,
    target: str,
    *,
    cseq: int = 1,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
) -> Request:
    """A request without Via (the Dispatcher's leg adds it)."""
    req = Request(
        method,
        target,
        [
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@example.com>;tag={new_tag()}"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", new_call_id()),
            ("CSeq", f"{cseq} {method}"),
            *headers,
        ],
    )
    if body:
        req.body = body
    else:
        req.headers.set("Content-Length", "0")
    return req


def raw_request(method: str, peer: tuple[str, int], *, branch: str, call_id: str = "c1") -> bytes:
    """A complete request as a client on ``peer`` would send it."""
    host, port = peer
    return (
        f"{method} sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
        f"To: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\n"
        f"Contact: <sip:alice@{host}:{port}>\r\nContent-Length: 0\r\n\r\n"
    ).encode()
