"""DatagramMultiplexer: one task receives on many sockets, on both backends."""

from __future__ import annotations

import socket
from collections.abc import Callable
from functools import partial

import anyio
import pytest

from trio_sip.transport import DatagramMultiplexer, multiplex
from trio_sip.transport.leg import Address

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not multiplex.SUPPORTED, reason="the multiplexer needs epoll (Linux)"),
]

BOUND = 10.0


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


class _Until:
    """Set once ``condition`` holds; handlers call :meth:`check` after each datagram."""

    def __init__(self, condition: Callable[[], bool]) -> None:
        self.condition = condition
        self.event = anyio.Event()

    def check(self) -> None:
        if self.condition():
            self.event.set()

    async def wait(self) -> None:
        with anyio.fail_after(BOUND):
            await self.event.wait()


async def test_each_socket_s_datagrams_reach_its_own_handler() -> None:
    mux = DatagramMultiplexer()
    sockets = [_bound_socket() for _ in range(20)]
    got: dict[int, list[tuple[bytes, Address]]] = {i: [] for i in range(len(sockets))}
    sender = _bound_socket()
    until = _Until(lambda: sum(map(len, got.values())) == 3 * len(sockets))

    def handler(i: int, data: bytes, source: Address) -> None:
        got[i].append((data, source))
        until.check()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(mux.serve)
            for i, sock in enumerate(sockets):
                mux.add(sock, partial(handler, i))
            assert len(mux) == len(sockets)
            for round_ in range(3):
                for i, sock in enumerate(sockets):
                    sender.sendto(f"{i}/{round_}".encode(), sock.getsockname())
            await until.wait()
            here = sender.getsockname()
            for i in got:
                assert got[i] == [(f"{i}/{r}".encode(), here) for r in range(3)]
            assert mux.datagrams == 3 * len(sockets)
            tg.cancel_scope.cancel()
    finally:
        mux.close()
        for sock in [*sockets, sender]:
            sock.close()


async def test_a_burst_larger_than_a_batch_is_read_to_the_end() -> None:
    # One round reads a bounded batch per socket; the set stays readable
    # (level-triggered) until the socket is empty.
    mux = DatagramMultiplexer()
    sock, sender = _bound_socket(), _bound_socket()
    got: list[bytes] = []
    until = _Until(lambda: len(got) == 200)

    def handler(data: bytes, source: Address) -> None:
        got.append(data)
        until.check()

    try:
        async with anyio.create_task_group() as tg:
            mux.add(sock, handler)
            for n in range(200):
                sender.sendto(n.to_bytes(2, "big"), sock.getsockname())
            tg.start_soon(mux.serve)
            await until.wait()
            assert [int.from_bytes(d, "big") for d in got] == list(range(200))
            tg.cancel_scope.cancel()
    finally:
        mux.close()
        sock.close()
        sender.close()


async def test_a_discarded_socket_is_no_longer_read_and_others_go_on() -> None:
    mux = DatagramMultiplexer()
    first, second, sender = _bound_socket(), _bound_socket(), _bound_socket()
    got: list[str] = []
    until = _Until(lambda: len(got) > 0)

    def handler(name: str, data: bytes, source: Address) -> None:
        got.append(name)
        until.check()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(mux.serve)
            mux.add(first, partial(handler, "first"))
            mux.add(second, partial(handler, "second"))
            mux.discard(first)
            mux.discard(first)  # twice: no error
            first.close()
            sender.sendto(b"x", second.getsockname())
            await until.wait()
            assert got == ["second"]
            assert len(mux) == 1
            tg.cancel_scope.cancel()
    finally:
        mux.close()
        second.close()
        sender.close()


async def test_a_handler_that_raises_loses_its_datagram_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mux = DatagramMultiplexer()
    sock, sender = _bound_socket(), _bound_socket()
    got: list[bytes] = []
    until = _Until(lambda: len(got) == 2)

    def handler(data: bytes, source: Address) -> None:
        if data == b"bad":
            raise ValueError("bad datagram")
        got.append(data)
        until.check()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(mux.serve)
            mux.add(sock, handler)
            for data in (b"one", b"bad", b"two"):
                sender.sendto(data, sock.getsockname())
            await until.wait()
            assert got == [b"one", b"two"]
            assert mux.handler_errors == 1
            assert "bad datagram" in caplog.text
            tg.cancel_scope.cancel()
    finally:
        mux.close()
        sock.close()
        sender.close()


async def test_closing_wakes_the_serving_task_which_returns() -> None:
    mux = DatagramMultiplexer()
    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg:
            tg.start_soon(mux.serve)
            await anyio.sleep(0.01)
            mux.close()
    # The task group ended: serve() returned on its own.
    with _bound_socket() as sock, pytest.raises(RuntimeError, match="closed"):
        mux.add(sock, lambda data, source: None)
