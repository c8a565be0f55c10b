"""Helpers for testing SIP applications built on trio-sip.

:class:`FakeNetwork` joins any number of Dispatchers in memory: its legs
behave like UDP legs (unreliable datagrams) and the network can lose, delay
and reorder packets on purpose, deterministically from a seed. No socket is
opened, so tests need no free ports, and on a virtual clock (Trio's
``MockClock(autojump_threshold=0)``, or a looptime event loop for asyncio) a
test of Timer B takes milliseconds::

    async with FakeNetwork(loss=0.2, seed=1) as net:
        async with Dispatcher([net.leg("192.0.2.1:5060")]) as a, \\
                   Dispatcher([net.leg("192.0.2.2:5060")]) as b:
            ...
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from types import TracebackType

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import DeliveryFailure, TransportError
from .transport.leg import Address, Leg, PacketHandler, TransportFailure, parse_address
from .transport.udp import MAX_DATAGRAM

__all__ = ["FakeNetwork", "FakeNetworkStatistics", "MemoryLeg"]

_Datagram = tuple[bytes, Address]


@dataclass
class FakeNetworkStatistics:
    """What the network did with the datagrams given to it."""

    sent: int = 0
    delivered: int = 0
    lost: int = 0
    #: sent to an address no leg is bound to (dropped, as UDP would)
    unroutable: int = 0
    #: delivered after a datagram that was sent later
    reordered: int = 0


@dataclass(order=True)
class _InFlight:
    due: float
    seq: int
    data: bytes = field(compare=False)
    src: Address = field(compare=False)
    dst: Address = field(compare=False)


class FakeNetwork:
    """An in-memory datagram network with loss, delay and reordering knobs.

    ``loss`` is the probability that a datagram vanishes; ``delay`` the time
    each one takes; ``jitter`` a random extra delay up to that many seconds,
    which reorders datagrams whose delays cross. ``seed`` makes the choices
    repeatable. The knobs may be changed while the network runs.
    """

    def __init__(
        self,
        *,
        loss: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= loss <= 1.0:
            raise ValueError("loss is a probability, from 0 to 1")
        self.loss = loss
        self.delay = delay
        self.jitter = jitter
        self._random = random.Random(seed)
        self._legs: dict[Address, MemoryLeg] = {}
        self._heap: list[_InFlight] = []
        self._seq = itertools.count()
        self._last_delivered_seq = -1
        self._wakeup = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self.stats = FakeNetworkStatistics()

    async def __aenter__(self) -> FakeNetwork:
        if self._tg is not None:
            # A second carrier would share the heap, and the first exit
            # would leave the second without its task group.
            raise RuntimeError("this FakeNetwork is already running; enter it only once")
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._carrier, name="trio-sip fake network")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg, self._tg = self._tg, None
        assert tg is not None
        tg.cancel_scope.cancel()
        return await tg.__aexit__(exc_type, exc, tb)

    def leg(self, address: str | Address) -> MemoryLeg:
        """A new unbound leg at ``address`` (``"192.0.2.1:5060"`` or a tuple)."""
        host, port = parse_address(address) if isinstance(address, str) else address
        return MemoryLeg(self, host, port)

    def statistics(self) -> FakeNetworkStatistics:
        """Counters of the datagrams carried, lost and reordered."""
        return self.stats

    # ----- used by the legs -----------------------------------------------------------

    def _attach(self, leg: MemoryLeg) -> None:
        if self._tg is None:
            # Nothing would carry the datagrams: the test would wait for
            # them until its timeout instead of failing here.
            raise RuntimeError("the FakeNetwork is not running: use 'async with FakeNetwork(...)'")
        if leg.address in self._legs:
            raise TransportFailure(DeliveryFailure.TRANSPORT, f"{leg.address} is in use")
        self._legs[leg.address] = leg

    def _detach(self, leg: MemoryLeg) -> None:
        if self._legs.get(leg.address) is leg:
            del self._legs[leg.address]

    def _transmit(self, data: bytes, src: Address, dst: Address) -> None:
        self.stats.sent += 1
        if self.loss and self._random.random() < self.loss:
            self.stats.lost += 1
            return
        extra = self._random.uniform(0.0, self.jitter) if self.jitter else 0.0
        due = anyio.current_time() + self.delay + extra
        heapq.heappush(self._heap, _InFlight(due, next(self._seq), data, src, dst))
        self._wakeup.set()

    async def _carrier(self) -> None:
        # One task carries every datagram, in order of arrival time.
        while True:
            if not self._heap:
                self._wakeup = anyio.Event()
                await self._wakeup.wait()
                continue
            first = self._heap[0]
            if first.due > anyio.current_time():
                self._wakeup = anyio.Event()
                with anyio.move_on_after(first.due - anyio.current_time()):
                    await self._wakeup.wait()
                continue
            heapq.heappop(self._heap)
            leg = self._legs.get(first.dst)
            if leg is None:
                self.stats.unroutable += 1
                continue
            if first.seq < self._last_delivered_seq:
                self.stats.reordered += 1
            self._last_delivered_seq = max(self._last_delivered_seq, first.seq)
            self.stats.delivered += 1
            leg._arrive(first.data, first.src)


class MemoryLeg(Leg):
    """A leg on a :class:`FakeNetwork`: UDP's semantics, no socket."""

    proto = "udp"
    reliable = False

    def __init__(self, network: FakeNetwork, host: str, port: int) -> None:
        if port == 0:
            raise ValueError("a leg on a fake network needs an explicit port")
        super().__init__(host, port)
        self.network = network
        self._send_stream: MemoryObjectSendStream[_Datagram] | None = None
        self._receive_stream: MemoryObjectReceiveStream[_Datagram] | None = None

    async def bind(self) -> None:
        """Take the address on the network."""
        if self._send_stream is not None:
            return
        self.network._attach(self)
        self._send_stream, self._receive_stream = anyio.create_memory_object_stream[_Datagram](
            10000
        )

    def _arrive(self, data: bytes, src: Address) -> None:
        stream = self._send_stream
        if stream is None:
            return
        try:
            stream.send_nowait((data, src))
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            self.network.stats.lost += 1  # a full receive buffer drops, as a socket would

    async def serve(self, handler: PacketHandler) -> None:
        """Hand every datagram that arrives to ``handler``, until the leg closes."""
        stream = self._receive_stream
        if stream is None:
            raise TransportError("leg is not bound")
        try:
            async for data, src in stream:
                self.stats.packets_in += 1
                self.stats.bytes_in += len(data)
                handler(data, self, src)
        except anyio.ClosedResourceError:
            return  # closed while waiting: the end, as for a UDP leg

    def send_nowait(self, data: bytes, dst: Address) -> bool:
        """Give a datagram to the network; it never waits, so always True.

        Raises :class:`~trio_sip.transport.TransportFailure` on a closed leg
        and for more than a datagram holds, as a UDP leg does. The
        per-packet callers (``Dispatcher.respond_nowait``) then take the path
        they take on a UDP leg.
        """
        if self._send_stream is None:
            raise TransportFailure(DeliveryFailure.TRANSPORT, "leg is closed")
        if len(data) > MAX_DATAGRAM:
            # What a UDP leg refuses must not get through in a test.
            raise TransportFailure(
                DeliveryFailure.TRANSPORT, f"{len(data)} bytes do not fit a datagram"
            )
        self.network._transmit(data, self.address, dst)
        self.stats.packets_out += 1
        self.stats.bytes_out += len(data)
        return True

    async def send(self, data: bytes, dst: Address, *, tls_hostname: str | None = None) -> None:
        """Give a datagram to the network (which may lose or delay it)."""
        self.send_nowait(data, dst)

    async def aclose(self) -> None:
        """Leave the network."""
        self.network._detach(self)
        if self._send_stream is not None:
            await self._send_stream.aclose()
            self._send_stream = None
        if self._receive_stream is not None:
            await self._receive_stream.aclose()
            self._receive_stream = None
