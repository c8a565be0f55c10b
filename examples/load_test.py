"""Load-test a SIP server: N calls at R calls per second, bounded in count and time.

Each call is an INVITE from one :class:`~trio_sip.UserAgent` (with its RTP
session), held for ``--hold`` seconds once answered, then hung up with BYE.
A call counts as completed when it was answered and hung up; as failed
otherwise (the final status, or ``timeout`` when no
answer came within ``--answer-timeout``). Calls still running when
``--time-limit`` is over are cancelled and counted as unfinished.

Run it against any SIP server, e.g. ``trio-sip answer``::

    trio-sip answer --listen udp:127.0.0.1:5080 &
    python examples/load_test.py sip:load@127.0.0.1:5080 --calls 200 --rate 20

The load generator shares its machine with the server under test: on a busy
machine the rate it reaches says as much about itself as about the target.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from dataclasses import dataclass, field

import anyio

from trio_sip import SIPError, UserAgent
from trio_sip.ua import CallFailed


@dataclass
class LoadResult:
    """What a load run did."""

    started: int = 0
    completed: int = 0
    #: failure reason (final status, ``timeout``, an error) -> calls
    failed: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        """Completed calls per second of the run."""
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        """One line for a person, then one per failure reason."""
        lines = [
            f"calls: {self.completed} completed, {sum(self.failed.values())} failed, "
            f"{self.unfinished} unfinished of {self.started} started "
            f"in {self.elapsed:.2f} s ({self.rate:.1f} calls/s)"
        ]
        lines += [f"  failed {reason}: {n}" for reason, n in self.failed.most_common()]
        return "\n".join(lines)


async def one_call(
    ua: UserAgent, target: str, hold: float, answer_timeout: float, result: LoadResult
) -> None:
    """Place one call and file its outcome in ``result``."""
    try:
        async with ua.invite(target) as call:
            try:
                with anyio.move_on_after(answer_timeout):
                    await call.wait_answered()
            except CallFailed as exc:
                result.failed[str(exc.status)] += 1
                return
            if call.dialog is None:
                # Leaving the scope cancelled the INVITE (CANCEL went out).
                result.failed["timeout"] += 1
                return
            await anyio.sleep(hold)
        # Leaving the block sent BYE and waited for its answer.
        result.completed += 1
    except SIPError as exc:
        # A failure outside wait_answered: sending the INVITE or the BYE.
        result.failed[type(exc).__name__] += 1


async def load_test(
    target: str,
    *,
    calls: int,
    rate: float,
    hold: float = 0.0,
    concurrency: int = 100,
    answer_timeout: float = 32.0,
    time_limit: float = 60.0,
    aor: str = "sip:load@127.0.0.1",
    listen: str = "udp:127.0.0.1:0",
    proxy: str | None = None,
) -> LoadResult:
    """Place ``calls`` calls to ``target``, ``rate`` per second, at most ``concurrency`` at once.

    Everything stops after ``time_limit`` seconds. Returns the counts.
    """
    result = LoadResult()
    slots = anyio.Semaphore(concurrency)

    async def tracked(ua: UserAgent) -> None:
        try:
            await one_call(ua, target, hold, answer_timeout, result)
        finally:
            slots.release()

    async with UserAgent(aor, listen=[listen], proxy=proxy) as ua:
        start = anyio.current_time()
        with anyio.move_on_after(time_limit):
            async with anyio.create_task_group() as tg:
                for n in range(calls):
                    # Paced from the start, so that slow starts do not add up.
                    await anyio.sleep_until(start + n / rate)
                    await slots.acquire()
                    result.started += 1
                    tg.start_soon(tracked, ua)
        result.elapsed = anyio.current_time() - start
        # A call cancelled by the time limit filed no outcome.
        result.unfinished = result.started - result.completed - sum(result.failed.values())
    return result


def main(argv: list[str] | None = None) -> int:
    """The command line: prints the summary; exit status 1 when a call failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("target", help="the URI to call, e.g. sip:load@127.0.0.1:5080")
    parser.add_argument("--calls", type=int, default=100, help="how many calls (100)")
    parser.add_argument("--rate", type=float, default=10.0, help="calls started per second (10)")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds each call lasts (0)")
    parser.add_argument("--concurrency", type=int, default=100, help="calls at once, at most")
    parser.add_argument("--answer-timeout", type=float, default=32.0, metavar="SECONDS")
    parser.add_argument("--time-limit", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--listen", default="udp:127.0.0.1:0", help="our leg")
    parser.add_argument("--proxy", help="outgoing proxy HOST:PORT")
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    args = parser.parse_args(argv)
    if args.calls < 1 or not math.isfinite(args.rate) or args.rate <= 0:
        parser.error("--calls and --rate must be positive")
    result = anyio.run(
        lambda: load_test(
            args.target,
            calls=args.calls,
            rate=args.rate,
            hold=args.hold,
            concurrency=args.concurrency,
            answer_timeout=args.answer_timeout,
            time_limit=args.time_limit,
            listen=args.listen,
            proxy=args.proxy,
        ),
        backend=args.backend,
    )
    print(result.summary())
    return 0 if result.completed == result.started else 1


if __name__ == "__main__":
    sys.exit(main())
