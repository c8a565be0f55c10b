"""Many datagram sockets read by one task: the RTP of every call of a UserAgent.

A task per socket costs a task, a cancel scope and a readiness registration
per call, for sockets that are mostly silent (a held call, a benchmark that
sends no audio). Instead the sockets are registered in one kernel ``epoll``
set, and one task waits for *that* descriptor to become readable (an epoll
descriptor is readable while any socket in its set is), then drains the
sockets that are ready. The set is level-triggered: a socket left with data
after its batch keeps the set readable, and it is read again on the next
round. It works the same under Trio and asyncio, since both backends can
wait on an arbitrary descriptor.

``epoll`` is Linux's; :data:`SUPPORTED` says whether this system has it.
Where it does not, a session receives in a task of its own
(:meth:`trio_sip.media.MediaSession.serve`).
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Callable
from typing import Final

from .leg import Address
from .readable import ReadLoop

__all__ = ["SUPPORTED", "DatagramHandler", "DatagramMultiplexer"]

log = logging.getLogger(__name__)

#: Whether :class:`DatagramMultiplexer` works on this system (it needs epoll).
SUPPORTED: Final = hasattr(select, "epoll")

#: What the multiplexer calls for each datagram: the payload and its source.
#: It runs in the multiplexer's task and must not block.
DatagramHandler = Callable[[bytes, Address], None]

# Sockets taken from the set per wake, and datagrams read from each of them
# per round: bounds one round's work so that a flood on one call's port does
# not starve the others or the rest of the event loop.
_READY_BATCH: Final = 64
_DRAIN_BATCH: Final = 16
# RTP and RTCP datagrams fit well under this (RFC 3550 over UDP).
_MAX_DATAGRAM: Final = 65535


class DatagramMultiplexer:
    """One task receiving on many non-blocking datagram sockets.

    ::

        mux = DatagramMultiplexer()
        async with anyio.create_task_group() as tg:
            tg.start_soon(mux.serve)
            mux.add(sock, lambda data, source: ...)
            ...
            mux.discard(sock)   # before closing the socket
        mux.close()

    A handler that raises loses that datagram only: the error is counted in
    :attr:`handler_errors` and the loop goes on.
    """

    def __init__(self) -> None:
        if not SUPPORTED:
            raise RuntimeError("DatagramMultiplexer needs epoll (Linux)")
        self._epoll: select.epoll | None = select.epoll()
        self._sockets: dict[int, tuple[socket.socket, DatagramHandler]] = {}
        # What serve() waits with, while it runs: close() stops it.
        self._reader: ReadLoop | None = None
        #: Datagrams handed to handlers so far.
        self.datagrams = 0
        #: Datagrams whose handler raised.
        self.handler_errors = 0

    def __len__(self) -> int:
        """The number of sockets registered."""
        return len(self._sockets)

    def add(self, sock: socket.socket, handler: DatagramHandler) -> None:
        """Receive on ``sock`` (bound, non-blocking) and give each datagram to ``handler``."""
        epoll = self._epoll
        if epoll is None:
            raise RuntimeError("the multiplexer is closed")
        fd = sock.fileno()
        epoll.register(fd, select.EPOLLIN)
        self._sockets[fd] = (sock, handler)

    def discard(self, sock: socket.socket) -> None:
        """Stop receiving on ``sock``; call it before closing the socket. No error if absent."""
        fd = sock.fileno()
        entry = self._sockets.get(fd)
        if entry is None or entry[0] is not sock:
            return
        del self._sockets[fd]
        if self._epoll is not None:
            self._epoll.unregister(fd)

    async def serve(self) -> None:
        """Receive until cancelled or closed; run it in a task of its own."""
        epoll = self._epoll
        if epoll is None:
            raise RuntimeError("the multiplexer is closed")
        sockets = self._sockets

        def drain() -> bool:
            if self._epoll is None:
                return False  # closed under us
            for fd, _ in epoll.poll(0, _READY_BATCH):
                entry = sockets.get(fd)
                if entry is not None:
                    self._drain(*entry)
            return True

        reader = self._reader = ReadLoop(epoll.fileno(), drain)
        await reader.serve()

    def _drain(self, sock: socket.socket, handler: DatagramHandler) -> None:
        recvfrom = sock.recvfrom
        for _ in range(_DRAIN_BATCH):
            try:
                data, addr = recvfrom(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:
                # An ICMP error of an earlier send (port unreachable): the
                # socket is still usable. A socket closed without discard()
                # has left the epoll set with its descriptor.
                if sock.fileno() == -1:
                    return
                continue
            self.datagrams += 1
            try:
                handler(data, (addr[0], addr[1]))
            except Exception:
                self.handler_errors += 1
                log.exception("datagram handler %r failed", handler)

    def close(self) -> None:
        """Release the epoll set; a task in :meth:`serve` wakes and returns.

        Call it from a task of the event loop (the waiting task is told).
        """
        epoll, self._epoll = self._epoll, None
        self._sockets.clear()
        if epoll is not None:
            reader, self._reader = self._reader, None
            if reader is not None:
                reader.stop()
            epoll.close()
