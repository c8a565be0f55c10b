"""trio-sip's Redis client on anyio against redis-py's sync client in worker threads.

Issue 11 asks which is faster for the binding store: a client that runs on
anyio (``trio_sip.server.redis``), or the synchronous redis-py client called
through ``anyio.to_thread.run_sync``. Run from the repository root, with
redis-py installed for the measurement only (it is not a dependency of
trio-sip)::

    python -m pip install redis
    python benchmarks/bench_redis.py                 # starts its own redis-server
    python benchmarks/bench_redis.py --ops 2000      # smaller

Three loads, each on trio and on asyncio, in operations per second:

- ``sequential``: one task, ``GET`` after ``GET`` (the latency of one round trip);
- ``concurrent``: 32 tasks sharing the client (a pool of 8 connections for
  ours; redis-py's thread-safe pool, one worker thread per call in flight);
- ``update``: the registrar's atomic update of one AOR (``WATCH``, ``ZRANGE``,
  then ``MULTI`` ... ``EXEC``): ``RedisStore.update`` against the same
  transaction through redis-py's ``pipeline(transaction=True)`` with ``watch``,
  from 8 tasks on 8 different AORs.

The redis-server runs on this machine, as the system under test does: the
figures compare the two clients in one run; other load on the machine moves
both.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread

HERE: Final = Path(__file__).resolve().parent
# The redis-server runner lives with the tests.
sys.path.insert(0, str(HERE.parent / "tests"))

from interop.peers import find_program  # noqa: E402
from scaleout._redis import RedisServer  # noqa: E402
from trio_sip.server.redis import RedisClient  # noqa: E402
from trio_sip.server.redis_store import RedisStore  # noqa: E402
from trio_sip.server.store import Binding  # noqa: E402

CONCURRENCY: Final = 32
UPDATERS: Final = 8


async def _timed(ops: int, run: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await run()
    return ops / (time.perf_counter() - start)


async def _spread(tasks: int, ops: int, one: Callable[[int], Awaitable[None]]) -> None:
    async def worker(n: int) -> None:
        for i in range(ops // tasks):
            await one(n * ops + i)

    async with anyio.create_task_group() as tg:
        for n in range(tasks):
            tg.start_soon(worker, n)


def _binding(aor: str, n: int) -> Binding:
    return Binding(aor, f"sip:ua{n % 4}@192.0.2.1:5060", time.time() + 600, f"c{n}", n)


async def ours(url: str, ops: int) -> dict[str, float]:
    """The anyio client: the three loads."""
    client = RedisClient.from_url(url)
    store = RedisStore(client, prefix="bench:ours:")
    try:
        await client.execute("SET", "bench:k", "v" * 64)

        async def sequential() -> None:
            for _ in range(ops):
                await client.execute("GET", "bench:k")

        async def get(_n: int) -> None:
            await client.execute("GET", "bench:k")

        async def update(n: int) -> None:
            aor = f"sip:u{n % UPDATERS}@example.com"
            await store.update(aor, lambda current: [*current[-3:], _binding(aor, n)])

        return {
            "sequential": await _timed(ops, sequential),
            "concurrent": await _timed(ops, lambda: _spread(CONCURRENCY, ops, get)),
            "update": await _timed(ops, lambda: _spread(UPDATERS, ops, update)),
        }
    finally:
        await client.aclose()


async def redis_py(url: str, ops: int) -> dict[str, float]:
    """redis-py's sync client, each call in a worker thread."""
    import redis  # only for this measurement

    client: Any = redis.Redis.from_url(url, max_connections=CONCURRENCY + UPDATERS)
    run = anyio.to_thread.run_sync
    try:
        await run(client.set, "bench:k", "v" * 64)

        async def sequential() -> None:
            for _ in range(ops):
                await run(client.get, "bench:k")

        async def get(_n: int) -> None:
            await run(client.get, "bench:k")

        def transaction(n: int) -> None:
            # The same optimistic transaction as RedisStore.update.
            aor = f"sip:u{n % UPDATERS}@example.com"
            key = f"bench:py:aor:{aor}"
            with client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(key)
                        members = pipe.zrange(key, 0, -1)
                        kept = members[-3:]
                        new = _binding(aor, n)
                        pipe.multi()
                        pipe.delete(key)
                        mapping = dict.fromkeys(kept, new.expires_at)
                        mapping[json.dumps([new.contact, new.expires_at, new.call_id])] = (
                            new.expires_at
                        )
                        pipe.zadd(key, mapping)
                        pipe.pexpireat(key, int((new.expires_at + 60) * 1000))
                        pipe.zadd("bench:py:expiry", {aor: new.expires_at})
                        pipe.execute()
                    except redis.WatchError:
                        continue
                    return

        async def update(n: int) -> None:
            await run(transaction, n)

        return {
            "sequential": await _timed(ops, sequential),
            "concurrent": await _timed(ops, lambda: _spread(CONCURRENCY, ops, get)),
            "update": await _timed(ops, lambda: _spread(UPDATERS, ops, update)),
        }
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """Run every client on every backend against a private redis-server; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=10_000, help="operations per load")
    args = parser.parse_args(argv)
    program = find_program("redis-server", "redis-server")
    results: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        server = RedisServer(program, Path(tmp))
        server.start()
        try:
            for backend in ("trio", "asyncio"):
                for name, bench in (("trio-sip (anyio)", ours), ("redis-py in threads", redis_py)):
                    results[(backend, name)] = anyio.run(
                        bench, server.url, args.ops, backend=backend
                    )
                    print(f"  {backend:<8} {name:<20} {results[(backend, name)]}", file=sys.stderr)
        finally:
            server.stop()
    print(f"\nRedis clients, operations per second ({args.ops} per load; indicative)\n")
    columns = f"sequential GET | {CONCURRENCY} tasks GET | update (WATCH/MULTI/EXEC)"
    print(f"| backend | client | {columns} |")
    print("|---|---|---:|---:|---:|")
    for (backend, name), figures in results.items():
        print(
            f"| {backend} | {name} | {figures['sequential']:,.0f} | "
            f"{figures['concurrent']:,.0f} | {figures['update']:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
