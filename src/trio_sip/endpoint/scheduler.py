"""Many timers on one task: a heap of deadlines with lazy cancellation.

The Endpoint runs every transaction timer (RFC 3261 section 17), the delayed
100 Trying (17.2.1) and the 2xx retransmission schedule (13.3.1.4) here. A task
and a cancel scope per timer cost about ten tasks per call in an answering UA,
and the tasks of held calls most of its memory; with the heap, arming a timer
is a push and cancelling it sets a flag. One task sleeps until the earliest
deadline (a cancel scope whose deadline moves when an earlier timer is armed)
and fires what is due in deadline order, timers due at the same instant in the
order they were armed.

The coarse timers (:meth:`Scheduler.call_coarse`) of one grid step share one
heap entry, a list in the order they were armed: under load they are most of
the timers armed and most of those waiting (the ends of finished
transactions, 64*T1 later), and a heap entry each would be a tuple more per
timer for the garbage collector to walk and a deeper heap to sift.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVarTuple

import anyio

__all__ = ["COARSE_GRID", "Scheduled", "Scheduler", "SchedulerStatistics", "TimerCallback"]

#: What a timer calls when due (with the arguments given when it was armed): it
#: returns None, or an awaitable that the timer task awaits before it fires the
#: next timer (so it must not wait long: work that may, such as a new
#: transaction, goes into a task of its own).
TimerCallback = Callable[..., Awaitable[object] | None]

PosArgsT = TypeVarTuple("PosArgsT")

#: The grid (seconds) that :meth:`Scheduler.call_coarse` rounds deadlines up
#: to. A power of two, so that the rounding is exact in binary floating point.
COARSE_GRID = 0.25

# Cancelled entries stay in the heap until their deadline; once they are more
# than half of it (and more than this many), the heap is rebuilt without them.
_COMPACT_AT = 256


class Scheduled:
    """A timer armed with :meth:`Scheduler.call_at`; :meth:`cancel` stops it."""

    __slots__ = ("_args", "_callback", "_scheduler", "deadline")

    def __init__(
        self,
        scheduler: Scheduler,
        deadline: float,
        callback: TimerCallback,
        args: tuple[Any, ...],
    ) -> None:
        self._scheduler: Scheduler | None = scheduler
        self._callback: TimerCallback | None = callback
        self._args = args
        #: When it fires, on the anyio clock.
        self.deadline = deadline

    @property
    def pending(self) -> bool:
        """True until it fires or is cancelled."""
        return self._scheduler is not None

    def cancel(self) -> None:
        """Stop it; nothing happens if it fired or was cancelled already."""
        scheduler = self._scheduler
        if scheduler is not None:
            self._scheduler = None
            # Let go of what the callback holds at once.
            self._callback = None
            self._args = ()
            scheduler._forget(self)


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    """What a :class:`Scheduler` holds and has done."""

    #: Timers armed and neither fired nor cancelled.
    pending: int
    #: Entries in the heap, cancelled ones not removed yet included (the
    #: coarse timers of one grid step are one entry).
    heap_size: int
    fired: int
    cancelled: int
    #: Times the timer task woke up (once per batch of timers due together).
    wakeups: int


class Scheduler:
    """Timers on the anyio clock, fired by one task: :meth:`run`.

    Arm with :meth:`call_at` or :meth:`call_later` (no task, no cancel
    scope), stop with :meth:`Scheduled.cancel`. Run :meth:`run` in a task
    group; cancelling that task group stops every timer.
    """

    def __init__(self) -> None:
        # An entry is one timer, or the list of a grid step's coarse timers.
        self._heap: list[tuple[float, int, Scheduled | list[Scheduled]]] = []
        # The coarse timers of each grid step still in the heap, by deadline.
        self._steps: dict[float, list[Scheduled]] = {}
        self._seq = itertools.count()
        # The cancel scope the run() task sleeps in, while it sleeps.
        self._sleep: anyio.CancelScope | None = None
        self._pending = 0
        self._dead = 0
        self._fired = 0
        self._cancelled = 0
        self._wakeups = 0

    def call_at(
        self,
        deadline: float,
        callback: Callable[[*PosArgsT], Awaitable[object] | None],
        *args: *PosArgsT,
    ) -> Scheduled:
        """Call ``callback(*args)`` at ``deadline`` (:func:`anyio.current_time`'s clock).

        Arguments rather than a closure: an entry is then two small objects.
        """
        entry = Scheduled(self, deadline, callback, args)
        heapq.heappush(self._heap, (deadline, next(self._seq), entry))
        self._pending += 1
        self._wake_by(deadline)
        return entry

    def call_later(
        self,
        delay: float,
        callback: Callable[[*PosArgsT], Awaitable[object] | None],
        *args: *PosArgsT,
    ) -> Scheduled:
        """Call ``callback(*args)`` ``delay`` seconds from now."""
        return self.call_at(anyio.current_time() + delay, callback, *args)

    def call_coarse(
        self,
        delay: float,
        callback: Callable[[*PosArgsT], Awaitable[object] | None],
        *args: *PosArgsT,
    ) -> Scheduled:
        """Like :meth:`call_later`, for a timer that may fire a little late.

        Its deadline is rounded up to the next multiple of :data:`COARSE_GRID`:
        it never fires early, at most that much late, and every timer armed
        this way within one grid step shares one wake-up of the timer task.
        For the waits that only keep state around (RFC 3261's Timers D, I,
        J, K and RFC 6026's L, M), whose ends come two a call under load.
        """
        deadline = math.ceil((anyio.current_time() + delay) / COARSE_GRID) * COARSE_GRID
        entry = Scheduled(self, deadline, callback, args)
        self._pending += 1
        step = self._steps.get(deadline)
        if step is not None:
            step.append(entry)
            return entry
        step = self._steps[deadline] = [entry]
        heapq.heappush(self._heap, (deadline, next(self._seq), step))
        self._wake_by(deadline)
        return entry

    def _wake_by(self, deadline: float) -> None:
        sleep = self._sleep
        if sleep is not None and deadline < sleep.deadline:
            sleep.deadline = deadline  # an earlier timer: wake up for it

    def _forget(self, entry: Scheduled) -> None:
        self._pending -= 1
        self._cancelled += 1
        self._dead += 1
        # Even when it is the one the task sleeps for, the sleep is left
        # alone: moving a deadline costs more than waking once for nothing
        # (a 2xx cancelled by its ACK is the earliest timer, call after call).
        if self._dead > _COMPACT_AT and self._dead > self._pending:
            self._compact()

    def _compact(self) -> None:
        # Drop the cancelled timers, and the grid steps left empty.
        kept: list[tuple[float, int, Scheduled | list[Scheduled]]] = []
        for item in self._heap:
            timers = item[2]
            if isinstance(timers, list):
                timers[:] = [entry for entry in timers if entry._scheduler is not None]
                if timers:
                    kept.append(item)
                else:
                    del self._steps[item[0]]
            elif timers._scheduler is not None:
                kept.append(item)
        heapq.heapify(kept)
        self._heap = kept
        self._dead = 0

    def _fire(self, entry: Scheduled) -> Awaitable[object] | None:
        # Call a timer that is due. A cancelled one is skipped: it was
        # counted out of the dead when its entry left the heap (one
        # cancelled while its grid step fires stays counted until the next
        # compaction, which only brings that forward).
        callback = entry._callback
        if entry._scheduler is None or callback is None:
            return None
        args = entry._args
        entry._scheduler = None
        entry._callback = None
        entry._args = ()
        self._pending -= 1
        self._fired += 1
        return callback(*args)

    async def run(self) -> NoReturn:
        """Fire the timers as they fall due, forever (until cancelled)."""
        while True:
            heap = self._heap
            now = anyio.current_time()
            while heap and heap[0][0] <= now:
                deadline, _, timers = heapq.heappop(heap)
                if isinstance(timers, list):
                    # A grid step: it leaves the table first, so that a
                    # coarse timer armed by one of its callbacks starts a
                    # step of its own.
                    del self._steps[deadline]
                    self._dead -= sum(1 for entry in timers if entry._scheduler is None)
                    for entry in timers:
                        result = self._fire(entry)
                        if result is not None:
                            await result
                else:
                    if timers._scheduler is None:
                        self._dead -= 1
                        continue
                    result = self._fire(timers)
                    if result is not None:
                        await result
                heap = self._heap  # a compaction may have replaced it meanwhile
                now = anyio.current_time()
            # Sleep until the first live timer: the cancelled ones in front of
            # it go now, not each with a wake-up of its own (under load, a 2xx
            # timer stopped by its ACK heads the heap call after call).
            while heap:
                first = heap[0][2]
                if isinstance(first, list) or first._scheduler is not None:
                    break
                heapq.heappop(heap)
                self._dead -= 1
            with anyio.CancelScope(deadline=heap[0][0] if heap else math.inf) as sleep:
                self._sleep = sleep
                try:
                    await anyio.sleep_forever()
                finally:
                    self._sleep = None
                    self._wakeups += 1

    def statistics(self) -> SchedulerStatistics:
        """Pending timers, heap size and counters since start."""
        return SchedulerStatistics(
            pending=self._pending,
            heap_size=len(self._heap),
            fired=self._fired,
            cancelled=self._cancelled,
            wakeups=self._wakeups,
        )
