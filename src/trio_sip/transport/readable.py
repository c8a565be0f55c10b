"""Draining a descriptor each time it is readable, on Trio and on asyncio.

A UDP leg and the RTP multiplexer both wait for a descriptor to become
readable and then read what is queued, a bounded batch at a time. How to
wait is the one thing that differs by backend:

* On Trio the task waits with :func:`anyio.wait_readable` and drains after
  each wake-up (Trio offers no other way).
* On asyncio a reader callback registered once with the event loop drains
  in the loop itself. :func:`anyio.wait_readable` would make a future, add
  the reader, switch to the task and remove the reader again for every
  wake-up: on a busy leg that is more than the datagram's own handling.

:class:`ReadLoop` hides the difference; it is the one place that knows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import sniffio

__all__ = ["Drain", "ReadLoop"]

#: Reads what is queued (a bounded batch); returns False once there is
#: nothing more to read ever (the descriptor was closed): the loop ends.
Drain = Callable[[], bool]


class ReadLoop:
    """Call ``drain()`` whenever descriptor ``fd`` is readable, in :meth:`serve`.

    :meth:`serve` returns when ``drain()`` returns False or :meth:`stop` is
    called, and raises what ``drain()`` raises. Call :meth:`stop` before
    closing the descriptor: it wakes :meth:`serve` (and on asyncio takes the
    reader off the loop first, which must not watch a closed descriptor).
    """

    __slots__ = ("_done", "_drain", "_fd", "_loop", "_stopped")

    def __init__(self, fd: int, drain: Drain) -> None:
        self._fd = fd
        self._drain = drain
        self._stopped = False
        # asyncio only: the loop the reader is on, and the future serve() awaits.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future[None] | None = None

    async def serve(self) -> None:
        """Drain on each readiness until stopped, closed, or cancelled."""
        if sniffio.current_async_library() == "asyncio":
            await self._serve_asyncio()
            return
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

    async def _serve_asyncio(self) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._loop, self._done = loop, done
        if self._stopped:
            return
        loop.add_reader(self._fd, self._on_readable)
        try:
            await done
        finally:
            self._remove_reader()

    def _on_readable(self) -> None:
        # Runs in the event loop, not in a task: it must not raise there.
        # Outside a task, sniffio (and so anyio: current_time, ...) cannot
        # tell which library runs unless told; anyio.run tells it, a
        # program started with asyncio.run does not.
        token = sniffio.current_async_library_cvar.set("asyncio")
        try:
            more = self._drain()
        except Exception as exc:
            self._remove_reader()
            if self._done is not None and not self._done.done():
                self._done.set_exception(exc)
            return
        finally:
            sniffio.current_async_library_cvar.reset(token)
        if not more:
            self.stop()

    def _remove_reader(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.remove_reader(self._fd)

    def stop(self) -> None:
        """End :meth:`serve`; call it from the event loop's thread, before closing ``fd``."""
        if self._stopped:
            return
        self._stopped = True
        done = self._done
        if done is not None:
            self._remove_reader()
            if not done.done():
                done.set_result(None)
        elif sniffio.current_async_library() != "asyncio":
            anyio.notify_closing(self._fd)
