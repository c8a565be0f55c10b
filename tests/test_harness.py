"""The test harness itself: both backends run, and virtual time jumps."""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import pytest


@pytest.mark.anyio
async def test_runs_on_every_backend(anyio_backend: tuple[str, dict[str, object]]) -> None:
    assert anyio_backend[0] in ("trio", "asyncio")
    await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_virtual_clock_jumps_without_real_waiting() -> None:
    real_start = time.monotonic()
    start = anyio.current_time()
    await anyio.sleep(32.0)
    assert anyio.current_time() - start == pytest.approx(32.0)
    with anyio.move_on_after(64.0) as scope:
        await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert anyio.current_time() - start == pytest.approx(96.0)
    assert time.monotonic() - real_start < 5.0
