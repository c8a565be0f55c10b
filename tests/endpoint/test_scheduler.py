"""The Endpoint's timer heap: order, exact times, cancellation, one task for all.

Virtual time on both backends.
"""

from __future__ import annotations

import math

import anyio
import pytest

from trio_sip.endpoint.scheduler import COARSE_GRID, Scheduler

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


async def test_timers_fire_at_their_deadlines_in_order() -> None:
    fired: list[tuple[str, float]] = []
    scheduler = Scheduler()
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        await anyio.lowlevel.checkpoint()  # the task sleeps with nothing armed
        start = anyio.current_time()

        def note(name: str) -> None:
            fired.append((name, round(anyio.current_time() - start, 6)))

        scheduler.call_later(5, lambda: note("five"))
        scheduler.call_later(2, lambda: note("two"))  # earlier: the task wakes for it
        scheduler.call_later(2, lambda: note("two again"))  # same instant: armed order
        dropped = scheduler.call_later(1, lambda: note("cancelled"))
        scheduler.call_later(0, lambda: note("now"))
        dropped.cancel()
        dropped.cancel()  # twice: nothing more happens
        assert not dropped.pending
        await anyio.sleep(10)
        tg.cancel_scope.cancel()
    assert fired == [("now", 0), ("two", 2), ("two again", 2), ("five", 5)]
    stats = scheduler.statistics()
    assert (stats.pending, stats.fired, stats.cancelled) == (0, 4, 1)


async def test_cancelled_timers_at_the_front_cost_at_most_one_wakeup() -> None:
    # Under load a 2xx timer that its ACK stopped heads the heap call after
    # call: the task must not wake up once for each of them.
    fired: list[float] = []
    scheduler = Scheduler()
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        await anyio.lowlevel.checkpoint()
        start = anyio.current_time()
        stopped = [scheduler.call_later(delay, lambda: None) for delay in (1, 2, 3, 4)]
        scheduler.call_later(10, lambda: fired.append(anyio.current_time() - start))
        await anyio.lowlevel.checkpoint()  # asleep until the first one, 1 s
        for entry in stopped:
            entry.cancel()
        await anyio.sleep(5)
        # One wake-up, at 1 s, for the cancelled timer it was sleeping for;
        # the three behind it went with it.
        assert scheduler.statistics().wakeups == 1
        await anyio.sleep(10)
        tg.cancel_scope.cancel()
    assert fired == [pytest.approx(10)]
    stats = scheduler.statistics()
    # The last wake-up is the task being cancelled.
    assert (stats.fired, stats.cancelled, stats.heap_size, stats.wakeups) == (1, 4, 0, 3)


async def test_an_awaitable_result_is_awaited_before_the_next_timer() -> None:
    fired: list[tuple[str, float]] = []
    scheduler = Scheduler()

    async def slow() -> None:
        await anyio.sleep(3)
        fired.append(("slow done", anyio.current_time() - start))

    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        start = anyio.current_time()
        scheduler.call_later(1, slow)
        scheduler.call_later(2, lambda: fired.append(("next", anyio.current_time() - start)))
        await anyio.sleep(10)
        tg.cancel_scope.cancel()
    assert [name for name, _ in fired] == ["slow done", "next"]
    assert fired[0][1] == pytest.approx(4)
    assert fired[1][1] == pytest.approx(4)  # late: it waited for the awaitable


async def test_a_timer_armed_by_a_callback_and_rearming_fire() -> None:
    times: list[float] = []
    scheduler = Scheduler()
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        start = anyio.current_time()

        def tick() -> None:
            times.append(anyio.current_time() - start)
            if len(times) < 4:
                scheduler.call_later(0.5 * len(times), tick)

        scheduler.call_later(0.5, tick)
        await anyio.sleep(10)
        tg.cancel_scope.cancel()
    assert times == pytest.approx([0.5, 1.0, 2.0, 3.5])


async def test_cancelled_timers_leave_the_heap() -> None:
    scheduler = Scheduler()
    fired: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        await anyio.lowlevel.checkpoint()
        keep = scheduler.call_later(100, lambda: fired.append(-1))
        entries = [scheduler.call_later(50 + i / 100, fired.append, i) for i in range(1000)]
        for entry in entries[:-1]:
            entry.cancel()
        # Cancelled entries do not pile up until their deadline.
        assert scheduler.statistics().heap_size < 600
        assert scheduler.statistics().pending == 2
        # Past the deadlines of hundreds of cancelled ones: none fired.
        await anyio.sleep(55)
        assert fired == []
        await anyio.sleep(1000)
        assert fired == [999, -1]
        assert not keep.pending
        assert scheduler.statistics().heap_size == 0
        tg.cancel_scope.cancel()


async def test_the_run_task_is_the_only_task() -> None:
    scheduler = Scheduler()
    async with anyio.create_task_group() as tg:
        before = len(anyio.get_running_tasks())
        tg.start_soon(scheduler.run)
        await anyio.lowlevel.checkpoint()
        for i in range(100):
            scheduler.call_later(i + 1, lambda: None)
        await anyio.lowlevel.checkpoint()
        assert len(anyio.get_running_tasks()) == before + 1
        tg.cancel_scope.cancel()


async def test_coarse_timers_fire_late_never_early_and_share_wakeups() -> None:
    # The wait timers (D, I, J, K, L, M) come two a call under load. Armed
    # with call_coarse, those due within one grid step share one wake-up, and
    # each fires at most COARSE_GRID after its deadline, never before it.
    fired: list[tuple[int, float]] = []
    due: list[float] = []
    scheduler = Scheduler()
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        await anyio.lowlevel.checkpoint()
        for n in range(20):
            due.append(anyio.current_time() + 32)
            scheduler.call_coarse(32, lambda n=n: fired.append((n, anyio.current_time())))
            await anyio.sleep(0.01)  # armed over 0.2 s, as calls end under load
        before = scheduler.statistics().wakeups
        await anyio.sleep(40)
        wakeups = scheduler.statistics().wakeups - before
        tg.cancel_scope.cancel()
    assert [n for n, _ in fired] == list(range(20))
    for (_, at), deadline in zip(fired, due, strict=True):
        assert deadline <= at <= deadline + COARSE_GRID
    instants = {at for _, at in fired}
    assert len(instants) <= 2  # 0.2 s of deadlines span at most two grid steps
    assert wakeups == len(instants)


async def test_coarse_timers_of_one_grid_step_share_one_heap_entry() -> None:
    # Most timers of a busy Endpoint wait out 64*T1 on the grid: one heap
    # entry per step keeps the heap shallow and the collector's walk short.
    fired: list[int] = []
    scheduler = Scheduler()
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        await anyio.lowlevel.checkpoint()
        entries = [scheduler.call_coarse(32, fired.append, n) for n in range(100)]
        stats = scheduler.statistics()
        assert (stats.pending, stats.heap_size) == (100, 1)
        entries[10].cancel()

        def arm_another() -> None:
            # Armed by a callback of the step being fired, for no delay: a step of its own.
            scheduler.call_coarse(0, fired.append, -1)

        scheduler.call_coarse(32, arm_another)
        await anyio.sleep(40)
        tg.cancel_scope.cancel()
    assert fired == [n for n in range(100) if n != 10] + [-1]
    stats = scheduler.statistics()
    assert (stats.pending, stats.heap_size, stats.fired, stats.cancelled) == (0, 0, 101, 1)


async def test_cancelled_coarse_timers_leave_the_heap() -> None:
    fired: list[int] = []
    scheduler = Scheduler()
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        await anyio.lowlevel.checkpoint()
        # 1,000 timers over about 100 grid steps; all but the last one cancelled.
        delays = [50 + i * COARSE_GRID / 10 for i in range(1000)]
        now = anyio.current_time()
        steps = {math.ceil((now + delay) / COARSE_GRID) for delay in delays}
        entries = [scheduler.call_coarse(delay, fired.append, i) for i, delay in enumerate(delays)]
        assert scheduler.statistics().heap_size == len(steps) >= 100
        for entry in entries[:-1]:
            entry.cancel()
        # The steps left empty went with their timers.
        assert scheduler.statistics().heap_size < 50
        assert scheduler.statistics().pending == 1
        await anyio.sleep(100)
        tg.cancel_scope.cancel()
    assert fired == [999]
    assert scheduler.statistics().heap_size == 0
