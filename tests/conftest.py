"""Test configuration: every async test runs on trio and on asyncio.

The project uses its own pytest plugin (``trio_sip.pytest_plugin``, installed
with the package): ``trio_sip_backends = ["trio", "asyncio"]`` in
pyproject.toml runs each test marked ``@pytest.mark.anyio`` on both backends,
and ``@pytest.mark.virtual_time`` puts it on a virtual clock that jumps to the
next deadline whenever every task waits (trio's
``MockClock(autojump_threshold=0)``, a looptime loop for asyncio). A
32-second Timer B then takes milliseconds of real time.
"""

from __future__ import annotations

import pytest

from trio_sip.pytest_plugin import BACKENDS

pytest_plugins = ["pytester"]


def pytest_addoption(parser: pytest.Parser) -> None:
    # The spelling noxfile.py uses for the plugin's --sip-backend (same dest).
    parser.addoption(
        "--backend",
        dest="trio_sip_backend",
        choices=[*BACKENDS, "all"],
        default="all",
        help="async backend(s) to run the async tests on (default: all)",
    )
