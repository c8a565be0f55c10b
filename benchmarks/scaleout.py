"""Aggregate call rate of two ``trio-sip proxy --registrar`` processes against one.

Run from the repository root (needs SIPp and redis-server)::

    python benchmarks/scaleout.py                       # trio, a few minutes
    python benchmarks/scaleout.py --backend asyncio --seconds 3
    python benchmarks/scaleout.py --smoke               # tiny sizes: checks it still works

Every configuration is a domain served the way issue 11 describes: SIPp's
``uas`` is registered once as ``sip:bob@127.0.0.1``, and SIPp's ``uac``
calls that address-of-record through the proxies, so every INVITE costs a
location lookup. The configurations:

- one proxy, bindings in memory (no Redis: the cost of the shared store shows
  against it);
- one proxy, bindings in Redis;
- two proxies sharing one Redis, each with its own SIPp ``uac`` at half the
  rate (the aggregate is what the table shows), as two instances behind DNS
  SRV would share the callers.

Each configuration climbs :data:`run.LADDER` with :func:`run.climb` (a step is
clean when every call succeeds within 1.25 times its nominal time). Two
proxies approach twice the rate of one only while the machine has a free
core for each: SIPp (two ``uac`` and the ``uas``), Redis and the proxies all
share it here, so on a 2-core machine expect much less; the figures are
indicative, ratios of one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Final

import anyio

HERE: Final = Path(__file__).resolve().parent
# The test harness: the redis-server runner of tests/scaleout, imported
# before run.py puts benchmarks/ (where this file is "scaleout") first on the path.
sys.path.insert(0, str(HERE.parent / "tests"))
from scaleout._redis import RedisServer  # noqa: E402

sys.path.insert(0, str(HERE))

from run import LADDER, SMOKE_LADDER, LadderResult, TrioSipCommand, _step_timeout, climb  # noqa: E402

from interop.peers import (  # noqa: E402
    Address,
    PeerError,
    SippResult,
    SippServer,
    find_program,
    run_sipp,
)

REGISTER: Final = HERE.parent / "tests" / "scaleout" / "scenarios" / "register.xml"
#: (label, proxies, store): "redis" is the benchmark's own redis-server
CONFIGURATIONS: Final = (
    ("1 proxy, memory", 1, "memory"),
    ("1 proxy, Redis", 1, "redis"),
    ("2 proxies, one Redis", 2, "redis"),
)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (Linux /proc)."""
    # Fields 14 and 15 of /proc/PID/stat, after the parenthesised command name.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _combined(results: Sequence[SippResult]) -> SippResult:
    """One result for SIPp runs made side by side: counts summed, the longest time."""
    first = results[0]
    requested = [r.calls_requested for r in results]
    return dataclasses.replace(
        first,
        exit_code=max(r.exit_code for r in results),
        calls_requested=None if None in requested else sum(n or 0 for n in requested),
        created=sum(r.created for r in results),
        successful=sum(r.successful for r in results),
        failed=sum(r.failed for r in results),
        current=sum(r.current for r in results),
        retransmissions=sum(r.retransmissions for r in results),
        timed_out=any(r.timed_out for r in results),
        elapsed=max(r.elapsed for r in results),
    )


async def register(proxy: Address, contact: Address, sipp: str) -> None:
    """Register ``sip:bob@127.0.0.1`` at ``contact`` through ``proxy``."""
    registered = await run_sipp(
        REGISTER,
        proxy,
        global_timeout=10,
        extra_args=["-s", "bob", "-key", "contact", str(contact)],
        program=sipp,
    )
    if not registered.ok:
        raise PeerError("REGISTER failed: " + registered.describe().splitlines()[0])


async def configuration(
    label: str,
    proxies: int,
    store: str,
    backend: str,
    rates: Sequence[int],
    seconds: float,
    patience: int,
    sipp: str,
    redis_url: str,
    redis_pid: int,
) -> LadderResult:
    """Climb the ladder for one configuration; the rate is the aggregate.

    The note gives the CPU time per successful call, over the whole ladder,
    of the proxies together and of Redis: what the figures would be on idle
    cores, whatever else loads the machine.
    """
    out = LadderResult(label)
    spec = redis_url if store == "redis" else "memory"
    try:
        async with (
            SippServer("uas", global_timeout=3600, program=sipp) as uas,
            AsyncExitStack() as stack,
        ):
            running = [
                await stack.enter_async_context(
                    TrioSipCommand("proxy", backend, "--registrar", "--store", spec)
                )
                for _ in range(proxies)
            ]
            await register(running[0].address, uas.address, sipp)

            async def step(rate: int, calls: int, nominal: float) -> SippResult:
                results: list[SippResult] = []

                async def one(proxy: Address, share: int) -> None:
                    results.append(
                        await run_sipp(
                            "uac",
                            proxy,
                            calls=share,
                            rate=rate / proxies,
                            global_timeout=_step_timeout(nominal),
                            extra_args=["-s", "bob"],
                            program=sipp,
                        )
                    )

                async with anyio.create_task_group() as tg:
                    for n, proxy in enumerate(running):
                        share = calls // proxies + (1 if n < calls % proxies else 0)
                        tg.start_soon(one, proxy.address, share)
                return _combined(results)

            pids = [proxy.pid for proxy in running]
            before = [cpu_seconds(pid) for pid in pids], cpu_seconds(redis_pid)
            out.steps = await climb(label, rates, seconds, patience, step)
            calls = sum(s.successful for s in out.steps)
            proxy_cpu = sum(cpu_seconds(pid) for pid in pids) - sum(before[0])
            redis_cpu = cpu_seconds(redis_pid) - before[1]
            if calls:
                out.note = (
                    f"{proxy_cpu / calls * 1e3:.2f} ms proxy CPU per call, "
                    f"{redis_cpu / calls * 1e3:.3f} ms Redis CPU per call ({calls} calls)"
                )
                print(f"  {label}: {out.note}", file=sys.stderr, flush=True)
    except PeerError as exc:
        out.error = str(exc).splitlines()[0]
    return out


def print_table(backend: str, results: Sequence[LadderResult]) -> None:
    """The configurations with their best clean aggregate rate, as ratios to one proxy on Redis."""
    base = next((r.best for r in results if r.system == CONFIGURATIONS[1][0]), None)
    print(f"\nScale-out, trio-sip proxy --registrar ({backend}); indicative, one run\n")
    print("| configuration | calls/s (best clean, aggregate) | vs 1 proxy on Redis | CPU |")
    print("|---|---:|---:|---|")
    for result in results:
        if result.error is not None:
            print(f"| {result.system} | {result.error} | | |")
            continue
        best = result.best
        ratio = f"{best / base:.2f}x" if best and base else "-"
        shown = best if best is not None else "none clean"
        print(f"| {result.system} | {shown} | {ratio} | {result.note or '-'} |")


async def run(args: argparse.Namespace) -> int:
    """Start a private redis-server and measure every configuration."""
    sipp = find_program("sipp", "sip-tester")
    redis_program = find_program("redis-server", "redis-server")
    rates = SMOKE_LADDER if args.smoke else tuple(int(r) for r in args.rates.split(","))
    seconds = 2.0 if args.smoke else args.seconds
    results: list[LadderResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        redis = RedisServer(redis_program, Path(tmp))
        await anyio.to_thread.run_sync(redis.start)
        try:
            for label, proxies, store in CONFIGURATIONS:
                print(f"{label}:", file=sys.stderr, flush=True)
                results.append(
                    await configuration(
                        label, proxies, store, args.backend, rates, seconds, args.patience,
                        sipp, redis.url, redis.pid,
                    )
                )  # fmt: skip
        finally:
            await anyio.to_thread.run_sync(redis.stop)
    print_table(args.backend, results)
    return 0 if all(r.best for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=["trio", "asyncio"], default="trio")
    parser.add_argument(
        "--rates", default=",".join(map(str, LADDER)), help="aggregate call rates to try"
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="calls per step, in seconds")
    parser.add_argument("--patience", type=int, default=2, help="unclean steps before stopping")
    parser.add_argument("--smoke", action="store_true", help="one tiny step per configuration")
    args = parser.parse_args(argv)
    return anyio.run(run, args)


if __name__ == "__main__":
    sys.exit(main())
