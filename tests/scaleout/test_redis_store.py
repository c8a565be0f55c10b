"""The Redis client and RedisStore against a private redis-server, on both backends.

- the RESP2 client: replies, pipelines, error replies, URLs, a refused
  connection, a restarted server found again;
- the store: per-contact expiry, purge, count, the same answers as the
  memory store;
- atomicity: many concurrent updates of one AOR from two stores (two
  connection pools, as two proxy processes have) lose nothing;
- section 10.3 step 7 across registrars: a REGISTER through one registrar
  is ordered against what another one stored.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.abc
import pytest

from dispatcher._peer import UDPPeer
from server._support import exchange, final
from server.test_registrar import register, running
from trio_sip.errors import TransportError
from trio_sip.message import URI
from trio_sip.server import Binding
from trio_sip.server.redis import RedisClient, RedisError, RedisURL
from trio_sip.server.redis_store import RedisStore, StoreConflictError
from trio_sip.server.store import open_store

from ._redis import RedisServer

pytestmark = pytest.mark.anyio

AOR = "sip:alice@example.com"


def binding(contact: str, expires_at: float, *, call_id: str = "c1", cseq: int = 1) -> Binding:
    return Binding(AOR, contact, expires_at, call_id, cseq, q=0.5, source="udp:127.0.0.1:5060")


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    opened = RedisStore.from_url(redis_server.url)
    yield opened
    await opened.aclose()


# ----- the client ----------------------------------------------------------------------


def test_urls() -> None:
    assert RedisURL.parse("redis://127.0.0.1:7000/3") == RedisURL("127.0.0.1", 7000, 3)
    assert RedisURL.parse("redis://h") == RedisURL("h", 6379, 0)
    assert RedisURL.parse("redis://:s%40cret@[::1]:1/2") == RedisURL("::1", 1, 2, None, "s@cret")
    assert str(RedisURL("::1", 1, 2)) == "redis://[::1]:1/2"
    for bad in ("http://h", "redis://", "redis://h/x", "redis://h:99999", "redis://h?db=1"):
        with pytest.raises(ValueError, match=r"."):
            RedisURL.parse(bad)


def test_open_store_opens_redis_urls() -> None:
    # No connection yet: the store connects on first use.
    store = open_store("redis://127.0.0.1:1/3")
    assert isinstance(store, RedisStore)
    assert store.client.url == RedisURL("127.0.0.1", 1, 3)
    with pytest.raises(ValueError, match="database must be a number"):
        open_store("redis://127.0.0.1/x")


async def test_replies_pipelines_and_errors(redis_server: RedisServer) -> None:
    client = RedisClient.from_url(redis_server.url)
    try:
        assert await client.execute("SET", "k", "v\r\nwith CRLF") == "OK"
        assert await client.execute("GET", "k") == b"v\r\nwith CRLF"
        assert await client.execute("GET", "absent") is None
        replies = await client.pipeline(
            [("RPUSH", "l", 1, 2.5, b"\x00"), ("LRANGE", "l", 0, -1), ("INCR", "n")]
        )
        assert replies == [3, [b"1", b"2.5", b"\x00"], 1]
        with pytest.raises(RedisError, match="WRONGTYPE"):
            await client.execute("INCR", "l")
        # A big reply arrives over several reads.
        await client.execute("SET", "big", b"x" * 300_000)
        assert await client.execute("STRLEN", "big") == 300_000
        assert await client.execute("GET", "big") == b"x" * 300_000
        # Concurrent users share the pool, each on a connection of its own.
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(client.execute, "INCR", "n")
        assert await client.execute("GET", "n") == b"21"
        stats = client.statistics()
        assert stats.connections == stats.idle <= 8
        assert stats.discarded == 0
    finally:
        await client.aclose()
    assert client.statistics().connections == 0


async def test_database_number_is_selected(redis_server: RedisServer) -> None:
    one = RedisClient.from_url(redis_server.url.replace("/0", "/1"))
    zero = RedisClient.from_url(redis_server.url)
    try:
        await one.execute("SET", "k", "in db 1")
        assert await zero.execute("GET", "k") is None
        assert await one.execute("GET", "k") == b"in db 1"
    finally:
        await one.aclose()
        await zero.aclose()


async def test_a_refused_connection_is_a_transport_error(redis_server: RedisServer) -> None:
    client = RedisClient.from_url(redis_server.url)
    await anyio.to_thread.run_sync(redis_server.stop)
    try:
        with pytest.raises(TransportError, match="cannot connect"):
            await client.execute("PING")
    finally:
        await client.aclose()


async def test_a_restarted_server_is_found_again(redis_server: RedisServer) -> None:
    client = RedisClient.from_url(redis_server.url)
    try:
        assert await client.execute("PING") == "PONG"
        await anyio.to_thread.run_sync(redis_server.restart)
        # The pooled connection is dead; the client notices and reconnects.
        assert await client.execute("PING") == "PONG"
        assert client.statistics().discarded == 1
        assert client.statistics().connects == 2
    finally:
        await client.aclose()


async def test_a_cancelled_command_does_not_leave_its_reply_behind(
    redis_server: RedisServer,
) -> None:
    client = RedisClient.from_url(redis_server.url, max_connections=1)
    try:
        with anyio.move_on_after(0.05):
            await client.execute("BLPOP", "never", 5)  # blocks in Redis for 5 s
        # The one connection was mid-exchange: it is dropped, not reused.
        assert await client.execute("ECHO", "next") == b"next"
        assert client.statistics().discarded == 1
    finally:
        await client.aclose()


# ----- the store -----------------------------------------------------------------------


async def test_per_contact_expiry_purge_and_count(store: RedisStore) -> None:
    now = time.time()
    await store.replace(AOR, [binding("sip:a@192.0.2.1", now + 100), binding("sip:b@x", now + 10)])
    await store.replace("sip:bob@example.com", [binding("sip:c@x", now + 50)])
    assert await store.count() == 3
    # Soonest expiry first, every field kept.
    found = await store.get(AOR)
    assert found == [binding("sip:b@x", now + 10), binding("sip:a@192.0.2.1", now + 100)]
    assert await store.purge(now) == 0
    # Only the contacts past their own expiry go, the rest of the AOR stays.
    assert await store.purge(now + 60) == 2
    assert [b.contact for b in await store.get(AOR)] == ["sip:a@192.0.2.1"]
    assert await store.get("sip:bob@example.com") == []
    assert await store.count() == 1
    assert await store.purge(now + 200) == 1
    assert await store.count() == 0


async def test_redis_forgets_an_aor_whose_bindings_all_expired(
    store: RedisStore, redis_server: RedisServer
) -> None:
    # The TTL backs up purging: with no registrar left to purge, Redis drops
    # the AOR a grace period after its last binding expired.
    await store.replace(AOR, [binding("sip:a@x", time.time() - 3600)])
    assert await store.client.execute("EXISTS", f"trio-sip:aor:{AOR}") == 0
    await store.replace(AOR, [binding("sip:a@x", time.time() + 100)])
    ttl = await store.client.execute("PTTL", f"trio-sip:aor:{AOR}")
    assert isinstance(ttl, int)
    assert 100_000 < ttl <= 160_000


async def test_an_exception_in_the_update_writes_nothing(store: RedisStore) -> None:
    now = time.time()
    await store.replace(AOR, [binding("sip:a@x", now + 100)])

    def refuse(current: list[Binding]) -> list[Binding]:
        raise LookupError("no")

    with pytest.raises(LookupError):
        await store.update(AOR, refuse)
    assert [b.contact for b in await store.get(AOR)] == ["sip:a@x"]
    # The connection went back to the pool unwatched: the next update works.
    assert len(await store.update(AOR, lambda c: [*c, binding("sip:b@x", now + 5)])) == 2


async def test_concurrent_updates_from_two_stores_lose_nothing(
    redis_server: RedisServer,
) -> None:
    # Two stores with their own pools stand for two proxy processes.
    first = RedisStore.from_url(redis_server.url)
    second = RedisStore.from_url(redis_server.url)
    expires_at = time.time() + 600
    per_store = 40

    async def add(store: RedisStore, contact: str) -> None:
        def with_contact(current: list[Binding]) -> list[Binding]:
            return [*current, binding(contact, expires_at)]

        await store.update(AOR, with_contact)

    try:
        async with anyio.create_task_group() as tg:
            for n in range(per_store):
                tg.start_soon(add, first, f"sip:first{n}@x")
                tg.start_soon(add, second, f"sip:second{n}@x")
        contacts = {b.contact for b in await first.get(AOR)}
        assert len(contacts) == 2 * per_store
        stats = [first.statistics(), second.statistics()]
        assert sum(s.updates for s in stats) == 2 * per_store
        # Updates raced (else the test proves nothing) and were run again.
        assert sum(s.conflicts for s in stats) > 0
    finally:
        await first.aclose()
        await second.aclose()


def meddler(server: RedisServer, key: str) -> Callable[[], None]:
    """Touch ``key`` from another connection, synchronously (from inside an update)."""

    def touch() -> None:
        command = f"*3\r\n$7\r\nPEXPIRE\r\n${len(key)}\r\n{key}\r\n$7\r\n9999999\r\n"
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(command.encode())
            assert sock.recv(16) == b":1\r\n"

    return touch


async def test_a_conflict_runs_the_update_again(
    store: RedisStore, redis_server: RedisServer
) -> None:
    now = time.time()
    await store.replace(AOR, [binding("sip:a@x", now + 100)])
    touch = meddler(redis_server, f"trio-sip:aor:{AOR}")
    seen: list[list[str]] = []

    def add_b(current: list[Binding]) -> list[Binding]:
        seen.append([b.contact for b in current])
        if len(seen) == 1:
            touch()  # between our read and our write: EXEC must fail
        return [*current, binding("sip:b@x", now + 50)]

    result = await store.update(AOR, add_b)
    assert seen == [["sip:a@x"], ["sip:a@x"]]
    assert [b.contact for b in result] == ["sip:a@x", "sip:b@x"]
    assert sorted(b.contact for b in await store.get(AOR)) == ["sip:a@x", "sip:b@x"]
    assert store.statistics().conflicts == 1


async def test_updates_give_up_after_max_attempts(
    store: RedisStore, redis_server: RedisServer
) -> None:
    await store.replace(AOR, [binding("sip:a@x", time.time() + 100)])
    touch = meddler(redis_server, f"trio-sip:aor:{AOR}")
    store.max_attempts = 3
    calls = 0

    def always_raced(current: list[Binding]) -> list[Binding]:
        nonlocal calls
        calls += 1
        touch()
        return []

    with pytest.raises(StoreConflictError, match="3 tries"):
        await store.update(AOR, always_raced)
    assert calls == 3
    assert [b.contact for b in await store.get(AOR)] == ["sip:a@x"]


# ----- the registrar on two stores -------------------------------------------------------


async def test_cseq_order_holds_across_registrars(redis_server: RedisServer) -> None:
    # Redis TTLs run on the real clock: the registrars keep the epoch clock.
    first, second = RedisStore.from_url(redis_server.url), RedisStore.from_url(redis_server.url)
    try:
        async with (
            running(first, time.time) as (peer, _one, dst_one),  # type: ignore[arg-type]
            running(second, time.time) as (peer2, two, dst_two),  # type: ignore[arg-type]
        ):
            contact = "Contact: <sip:a@192.0.2.1>"
            ok = final(await exchange(peer, dst_one, register(peer, 5, contact)))
            assert ok.status == 200
            # The same Call-ID with an older CSeq, through the other registrar:
            # out of order (section 10.3 step 7) although that one never saw it.
            for cseq in (5, 4):
                late = register(peer2, cseq, contact, "Expires: 0")
                late = late.replace(b"branch=z9hG4bKreg", b"branch=z9hG4bKlate")
                assert final(await exchange(peer2, dst_two, late)).status == 500
            assert len(await two.lookup(URI.parse(AOR))) == 1
            # A higher CSeq through the second one removes it for both.
            later = register(peer2, 6, contact, "Expires: 0")
            assert final(await exchange(peer2, dst_two, later)).status == 200
            assert await first.get(AOR) == []
    finally:
        await first.aclose()
        await second.aclose()


async def test_registrars_on_two_stores_register_one_aor_at_once(
    redis_server: RedisServer,
) -> None:
    first, second = RedisStore.from_url(redis_server.url), RedisStore.from_url(redis_server.url)
    per_registrar = 15
    statuses: list[int] = []

    async def registering(peer: UDPPeer, dst: tuple[str, int], name: str) -> None:
        # Each REGISTER has its own Call-ID and contact: every one must be kept.
        for n in range(per_registrar):
            data = register(peer, 1, f"Contact: <sip:{name}{n}@192.0.2.1>", call_id=f"{name}{n}")
            data = data.replace(b"z9hG4bKreg1", f"z9hG4bK{name}{n}".encode())
            statuses.append(final(await exchange(peer, dst, data)).status)

    try:
        async with (
            running(first, time.time) as (peer, _one, dst_one),  # type: ignore[arg-type]
            running(second, time.time) as (peer2, two, dst_two),  # type: ignore[arg-type]
        ):
            async with anyio.create_task_group() as tg:
                tg.start_soon(registering, peer, dst_one, "one")
                tg.start_soon(registering, peer2, dst_two, "two")
            assert statuses == [200] * 2 * per_registrar
            assert len(await two.lookup(URI.parse(AOR))) == 2 * per_registrar
    finally:
        await first.aclose()
        await second.aclose()


async def test_register_gets_503_while_redis_is_down(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url)
    try:
        async with running(store, time.time) as (peer, registrar, dst):  # type: ignore[arg-type]
            await anyio.to_thread.run_sync(redis_server.stop)
            data = register(peer, 1, "Contact: <sip:a@192.0.2.1>")
            refused = final(await exchange(peer, dst, data))
            assert refused.status == 503
            assert refused.headers.first_value("retry-after") == "5"
            assert registrar.statistics().rejected == 1
            # Redis is back: the UA's retry goes through, on a new connection.
            await anyio.to_thread.run_sync(redis_server.start)
            again = register(peer, 2, "Contact: <sip:a@192.0.2.1>")
            assert final(await exchange(peer, dst, again)).status == 200
    finally:
        await store.aclose()


async def test_a_server_that_does_not_speak_resp_is_a_transport_error() -> None:
    # Something else listens on the port: its answer is no RESP2 reply.
    async def babble(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"$nonsense\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, babble)
        client = RedisClient.from_url(f"redis://127.0.0.1:{port}/0")
        try:
            with pytest.raises(TransportError, match="protocol error"):
                await client.execute("PING")
            assert client.statistics().discarded == 1
        finally:
            await client.aclose()
        tg.cancel_scope.cancel()
