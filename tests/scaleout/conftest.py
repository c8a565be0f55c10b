"""Fixtures for the scale-out tests: a private Redis, and SIPp.

``redis_server`` starts ``redis-server`` (Debian package redis-server) on
127.0.0.1 on a port chosen at run time, in a temporary directory, with
persistence off, and stops it after the test. Without the program the test
is skipped, or fails when peers are required (``CI`` set, or
``TRIO_SIP_REQUIRE_PEERS=1``): discovery goes through
:func:`interop.peers.require_program`, outside the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.conftest import sipp
from interop.peers import require_program

from ._redis import RedisServer

__all__ = ["redis_program", "redis_server", "sipp"]


@pytest.fixture(scope="session")
def redis_program() -> str:
    """The ``redis-server`` program."""
    return require_program("redis-server", "redis-server")


@pytest.fixture
def redis_server(redis_program: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` without persistence, stopped after the test."""
    server = RedisServer(redis_program, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def persistent_redis_server(redis_program: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` with an append-only file fsynced on every write."""
    server = RedisServer(redis_program, tmp_path, persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
