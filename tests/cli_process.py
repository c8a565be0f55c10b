"""``trio-sip`` as a subprocess for tests: started, waited for, stopped with SIGINT.

Shared by the tests that run the command against SIPp (tests/interop) and
against itself (tests/media).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import Process

#: Bounds of starting and of stopping a process, in seconds.
START = 20.0
STOP = 20.0


class Running:
    """A started ``trio-sip`` process: its legs, and after the block its output."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.listening: list[str] = []
        self.out = ""
        self.err = ""
        self.returncode: int | None = None

    def port(self, proto: str = "udp") -> int:
        """The port of its first leg of ``proto``."""
        spec = next(s for s in self.listening if s.startswith(proto + ":"))
        return int(spec.rsplit(":", 1)[1])

    @property
    def lines(self) -> list[str]:
        """What it printed on standard output, line by line."""
        return self.out.splitlines()


@asynccontextmanager
async def trio_sip(*args: str, legs: int = 1) -> AsyncIterator[Running]:
    """Run ``python -m trio_sip ARGS`` until the block ends, then SIGINT it.

    The block starts once the process has printed ``listening on`` for
    ``legs`` legs; after it, ``out``, ``err`` and ``returncode`` are set.
    """
    process = await anyio.open_process([sys.executable, "-m", "trio_sip", *args])
    running = Running(process)
    assert process.stdout is not None
    assert process.stderr is not None
    out = b""
    try:
        with anyio.fail_after(START):
            while len(running.listening) < legs:
                out += await process.stdout.receive()
                # Whole lines only: a read may end in the middle of one.
                running.listening = [
                    line.split()[-1]
                    for line in out.decode().split("\n")[:-1]
                    if line.startswith("listening on ")
                ]
        yield running
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
            err = b""
            with anyio.move_on_after(STOP) as scope:
                async for chunk in process.stdout:
                    out += chunk
                async for chunk in process.stderr:
                    err += chunk
                running.returncode = await process.wait()
            if scope.cancelled_caught:
                process.kill()
                await process.wait()
            await process.aclose()
            running.out, running.err = out.decode(), err.decode()
