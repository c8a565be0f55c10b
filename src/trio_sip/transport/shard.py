"""One UDP address served by several processes, each call always by the same one.

A distributor process reads the SIP socket and hands each datagram to one
of ``n`` workers, chosen by the datagram's Call-ID: every message of a call
(INVITE, ACK, BYE, their retransmissions and answers) carries the same
Call-ID, so a worker keeps its transactions and dialogs to itself and no
state is shared. A worker receives through a local socket (its *inbox*,
one end of a ``SOCK_SEQPACKET`` pair: message boundaries kept, and the
distributor's end closing reads as the end), each datagram framed with the
address it came from, and sends
straight on the shared SIP socket, so answers leave from the address the
peer wrote to.

What a worker starts itself (a REGISTER, an OPTIONS, a call) it gives a
Call-ID of its own shard (:func:`call_id_of_shard`), so that the answers
come back to it.

The framing and the choice of worker are plain functions (no I/O);
:class:`InboxUDPLeg` is the worker's leg. ``trio-sip answer --workers``,
``trio-sip proxy --workers`` and ``trio-sip registrar --workers`` run the
distributor (see :doc:`/cli`).
"""

from __future__ import annotations

import re
import socket
import zlib
from collections.abc import Callable
from typing import Final

from ..message import new_call_id
from .leg import Address, PacketHandler
from .udp import DRAIN_BATCH, MAX_DATAGRAM, UDPLeg

__all__ = ["InboxUDPLeg", "call_id_of_shard", "frame", "shard_of", "unframe"]

# Call-ID = ( "Call-ID" / "i" ) HCOLON callid  (RFC 3261 section 25.1; header
# names are case-insensitive, HCOLON = *( SP / HTAB ) ":" SWS). The first
# line of a message is no header, hence the newline before the name.
_CALL_ID_RE: Final = re.compile(rb"\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)

#: The longest frame: a datagram and the longest address line before it.
MAX_FRAME: Final = MAX_DATAGRAM + 64


def shard_of(data: bytes, source: Address, shards: int) -> int:
    """Which of ``shards`` workers gets ``data`` (0 to ``shards - 1``).

    By the Call-ID, so that all of a call's messages meet in one worker;
    what has none (a keep-alive, garbage) goes by its source address.
    """
    match = _CALL_ID_RE.search(data)
    key = match.group(1).rstrip(b" \t") if match is not None else frame(source, b"")
    return _shard_of_key(key, shards)


def _shard_of_key(key: bytes, shards: int) -> int:
    # The one rule both directions follow: a Call-ID's worker.
    return zlib.crc32(key) % shards


def call_id_of_shard(shard: int, shards: int, make: Callable[[], str] = new_call_id) -> str:
    """A fresh Call-ID (from ``make``) that :func:`shard_of` gives to worker ``shard``.

    ``make``'s Call-IDs are drawn until one falls in ``shard``: ``shards``
    draws on average, as the CRC-32 spreads them evenly.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"no shard {shard} of {shards}")
    while True:
        call_id = make()
        if _shard_of_key(call_id.encode(), shards) == shard:
            return call_id


def frame(source: Address, data: bytes) -> bytes:
    """``data`` with the address it came from before it (``host port\\n``)."""
    return b"%s %d\n%s" % (source[0].encode("ascii"), source[1], data)


def unframe(framed: bytes) -> tuple[Address, bytes]:
    """The address and datagram of a :func:`frame`. Raises ValueError when malformed."""
    head, newline, data = framed.partition(b"\n")
    host, _, port = head.partition(b" ")
    if not newline or not host or not port.isdigit():
        raise ValueError(f"not a framed datagram: {framed[:40]!r}")
    return (host.decode("ascii"), int(port)), data


class InboxUDPLeg(UDPLeg):
    """A worker's UDP leg: it receives from ``inbox``, a local socket the
    distributor writes :func:`frame`\\ d datagrams to, and sends on ``sock``,
    the SIP socket the distributor reads.

    Both sockets are the worker's own to close. To everything above it
    (Dispatcher, Endpoint) it is the UDP leg of the shared address: its Via,
    Contact and sources are those of ``sock``, and a datagram's source is
    the address the distributor saw. When the distributor's end of the inbox
    closes (it ended without stopping this worker first), :meth:`serve`
    returns and calls ``on_end``.
    """

    __slots__ = ("_inbox", "on_end")

    def __init__(
        self,
        sock: socket.socket,
        inbox: socket.socket,
        *,
        advertise: str | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        # The distributor sized the shared socket's receive buffer: this
        # side only sends on it.
        super().__init__(sock=sock, advertise=advertise, receive_buffer=None)
        inbox.setblocking(False)
        self._inbox: socket.socket | None = inbox
        #: Called when the distributor's end of the inbox is closed.
        self.on_end = on_end

    async def serve(self, handler: PacketHandler) -> None:
        """Receive the distributor's datagrams until the leg closes."""
        inbox = self._inbox
        if self._raw is None or inbox is None:
            raise RuntimeError("leg is not bound")
        stats = self.stats
        recv = inbox.recv
        ended = False

        def drain() -> bool:
            nonlocal ended
            for _ in range(DRAIN_BATCH):
                try:
                    framed = recv(MAX_FRAME)
                except BlockingIOError:
                    return True
                except OSError:
                    return False  # closed: the distributor is gone
                if not framed:
                    ended = True  # the distributor's end is closed
                    return False
                try:
                    source, data = unframe(framed)
                except ValueError:
                    continue
                stats.packets_in += 1
                stats.bytes_in += len(data)
                handler(data, self, source)
            return self._raw is not None

        await self._read(inbox.fileno(), drain)
        if ended and self.on_end is not None:
            self.on_end()

    def close(self) -> None:
        """Close both sockets now; a task waiting on the inbox wakes and ends."""
        super().close()
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.close()
