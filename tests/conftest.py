"""Test configuration: every async test runs on trio and on asyncio.

Mark a test ``@pytest.mark.anyio`` to run it on the backends chosen with
``--backend`` (both by default). Add ``@pytest.mark.virtual_time`` to run it on
a virtual clock that jumps to the next deadline whenever every task waits:
trio's ``MockClock(autojump_threshold=0)`` and, for asyncio, a looptime loop.
A 32-second Timer B then takes milliseconds of real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import looptime
import pytest
import trio.testing

BACKENDS = ("trio", "asyncio")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=[*BACKENDS, "all"],
        default="all",
        help="async backend(s) to run the async tests on (default: all)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "anyio_backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--backend")
        backends = BACKENDS if chosen == "all" else (chosen,)
        metafunc.parametrize("anyio_backend", backends, indirect=True)


def _virtual_asyncio_loop() -> asyncio.AbstractEventLoop:
    # noop_cycles=0: jump as soon as nothing is runnable and no I/O is ready,
    # the same rule as trio's MockClock with autojump_threshold=0.
    return looptime.new_event_loop(start=0.0, noop_cycles=0)


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    name: str = request.param
    virtual = request.node.get_closest_marker("virtual_time") is not None
    options: dict[str, Any] = {}
    if virtual:
        if name == "trio":
            options["clock"] = trio.testing.MockClock(autojump_threshold=0)
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = _virtual_asyncio_loop
            options["loop_factory"] = factory
    return name, options
