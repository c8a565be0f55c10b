"""Draining a descriptor each time it is readable.

A UDP leg and the RTP multiplexer both wait for a descriptor to become
readable and then read what is queued, a bounded batch at a time, until
the descriptor is closed. :class:`ReadLoop` is that loop, written once.

(A reader callback registered once with asyncio's loop, instead of
:func:`anyio.wait_readable` per wake-up, was tried: it saved no measurable
CPU under load, so both backends wait the same way, through anyio.)
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

__all__ = ["Drain", "ReadLoop"]

#: Reads what is queued (a bounded batch); returns False once there is
#: nothing more to read ever (the descriptor was closed): the loop ends.
Drain = Callable[[], bool]


class ReadLoop:
    """Call ``drain()`` whenever descriptor ``fd`` is readable, in :meth:`serve`.

    :meth:`serve` returns when ``drain()`` returns False or :meth:`stop` is
    called, and raises what ``drain()`` raises. Call :meth:`stop` before
    closing the descriptor: it tells the event loop, which wakes
    :meth:`serve`.
    """

    __slots__ = ("_drain", "_fd", "_stopped")

    def __init__(self, fd: int, drain: Drain) -> None:
        self._fd = fd
        self._drain = drain
        self._stopped = False

    async def serve(self) -> None:
        """Drain on each readiness until stopped, closed, or cancelled."""
        drain = self._drain
        while True:
            try:
                await anyio.wait_readable(self._fd)
            except (anyio.ClosedResourceError, OSError, ValueError):
                # Closed under us (stop() told the loop) or before we waited.
                if self._stopped:
                    return
                raise
            if self._stopped or not drain():
                return

    def stop(self) -> None:
        """End :meth:`serve`; call it from the event loop's thread, before closing ``fd``."""
        if not self._stopped:
            self._stopped = True
            anyio.notify_closing(self._fd)
