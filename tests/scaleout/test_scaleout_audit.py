"""The Redis client and store where a Redis restarts, hangs or drops a reply.

- after a restart every stale pooled connection is replaced, however many
  sat idle in the pool;
- a connection that dies after the first half of an update (its ``EXEC``
  sent, no reply) makes the update fail: it is not run a second time, since
  Redis may have applied it;
- a server that accepts and never answers (a stopped or wedged Redis) is a
  :class:`~trio_sip.errors.TransportError` after a bounded wait, not a hang;
- a reply of a type RESP2 lacks is a protocol failure of the connection
  (``TransportError``), not an error reply of Redis.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from trio_sip.errors import TransportError
from trio_sip.server import Binding
from trio_sip.server.redis import RedisClient
from trio_sip.server.redis_store import RedisStore

from ._redis import RedisServer

pytestmark = pytest.mark.anyio

AOR = "sip:alice@example.com"


async def test_a_restart_replaces_every_stale_pooled_connection(
    redis_server: RedisServer,
) -> None:
    client = RedisClient.from_url(redis_server.url)
    try:
        # Two connections in use at once: both go back to the pool idle.
        async with client.connection() as one, client.connection() as two:
            assert await one.execute("PING") == "PONG"
            assert await two.execute("PING") == "PONG"
        assert client.statistics().idle == 2
        await anyio.to_thread.run_sync(redis_server.restart)
        # Both idle connections are dead now; the command still gets through.
        assert await client.execute("PING") == "PONG"
        assert await client.execute("PING") == "PONG"
    finally:
        await client.aclose()


@asynccontextmanager
async def exec_reply_dropper(server: RedisServer) -> AsyncIterator[int]:
    """A TCP relay to ``server`` that closes the client's connection instead of
    passing on the replies to the first ``EXEC``: Redis ran the transaction, the
    client never hears so. Yields the relay's port."""
    exec_sent = False
    dropped = False

    async def relay(client: anyio.abc.SocketStream) -> None:
        redis = await anyio.connect_tcp(server.host, server.port)
        async with client, redis, anyio.create_task_group() as tg:

            async def upstream() -> None:
                nonlocal exec_sent
                async for data in client:
                    if b"EXEC" in data and not dropped:
                        exec_sent = True
                    await redis.send(data)

            async def downstream() -> None:
                nonlocal dropped
                async for data in redis:
                    if exec_sent and not dropped:
                        # The replies came, so Redis has run the EXEC: drop them.
                        dropped = True
                        break
                    await client.send(data)
                tg.cancel_scope.cancel()

            tg.start_soon(upstream)
            tg.start_soon(downstream)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, relay)
        yield port
        tg.cancel_scope.cancel()


async def test_an_update_whose_exec_reply_was_lost_is_not_run_twice(
    redis_server: RedisServer,
) -> None:
    expires_at = time.time() + 600
    base = Binding(AOR, "sip:a@192.0.2.1", expires_at, "c1", 1)
    setup = RedisStore.from_url(redis_server.url)
    try:
        await setup.replace(AOR, [base])
        async with exec_reply_dropper(redis_server) as port:
            store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")
            try:
                # A pooled connection that has served before, as in a running proxy.
                assert await store.get(AOR) == [base]
                runs = 0

                def bump(current: list[Binding]) -> list[Binding]:
                    nonlocal runs
                    runs += 1
                    return [dataclasses.replace(b, cseq=b.cseq + 1) for b in current]

                # Its outcome is unknown to the client: an error, not a second run.
                with anyio.fail_after(30), pytest.raises(TransportError):
                    await store.update(AOR, bump)
            finally:
                await store.aclose()
        assert runs == 1
        assert [b.cseq for b in await setup.get(AOR)] == [2]
    finally:
        await setup.aclose()


@pytest.mark.virtual_time
async def test_a_server_that_never_answers_is_a_transport_error_in_bounded_time() -> None:
    # What a stopped (SIGSTOP) or wedged Redis looks like: the kernel accepts
    # the connection, nothing ever answers.
    async def silent(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, silent)
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")
        try:
            # An hour of virtual time: the client's own bound must come first.
            with anyio.fail_after(3600):
                with pytest.raises(TransportError):
                    await store.get(AOR)
                with pytest.raises(TransportError):
                    await store.update(AOR, lambda current: current)
            assert store.client.statistics().connections == 0
        finally:
            await store.aclose()
        tg.cancel_scope.cancel()


async def test_a_reply_of_no_resp2_type_is_a_transport_error() -> None:
    # A server that is no RESP2 Redis (here a RESP3 map): a protocol failure
    # of the connection, as a malformed length is, and no error reply of Redis.
    async def resp3(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"%1\r\n+a\r\n:1\r\n")
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, resp3)
        client = RedisClient.from_url(f"redis://127.0.0.1:{port}/0")
        try:
            with anyio.fail_after(30), pytest.raises(TransportError, match="protocol error"):
                await client.execute("PING")
            assert client.statistics().discarded == 1
        finally:
            await client.aclose()
        tg.cancel_scope.cancel()
