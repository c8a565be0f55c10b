"""``trio-sip`` as a subprocess for tests: started, waited for, stopped with SIGINT.

Shared by the tests that run the command against SIPp (tests/interop), against
itself (tests/media) and with plain sockets (tests/test_cli.py and others):
:func:`trio_sip` for async tests, :class:`Command` for the others.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
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


class Command:
    """``python -m trio_sip ARGS`` as a child process, bounded in time.

    ``start()`` waits for the ``listening on`` lines and collects the bound
    addresses; ``stop()`` sends a signal (unless ``send_signal()`` sent one
    already: a second one would mean "stop now") and returns (exit status,
    stdout, stderr).
    """

    def __init__(self, *args: str) -> None:
        self.args = [sys.executable, "-m", "trio_sip", *args]
        self.process: subprocess.Popen[bytes] | None = None
        self.listening: list[str] = []
        self._out = b""
        self._signalled = False

    def start(self, legs: int = 1, deadline: float = 20.0) -> Command:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.process.stdout is not None
        end = time.monotonic() + deadline
        fd = self.process.stdout.fileno()
        while len(self.listening) < legs:
            left = end - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                self.stop()
                raise AssertionError(f"{self.args} did not start in {deadline}s")
            chunk = os.read(fd, 4096)
            if not chunk:
                code, out, err = self.stop()
                raise AssertionError(f"{self.args} exited {code}: {out} {err}")
            self._out += chunk
            self.listening = [
                line.split()[-1]
                for line in self._out.decode().splitlines()
                if line.startswith("listening on ")
            ]
        return self

    def port(self, proto: str = "udp") -> int:
        spec = next(s for s in self.listening if s.startswith(proto + ":"))
        return int(spec.rsplit(":", 1)[1])

    def send_signal(self, signum: int = signal.SIGINT) -> None:
        """Send ``signum`` now; :meth:`stop` then sends none of its own."""
        assert self.process is not None
        self.process.send_signal(signum)
        self._signalled = True

    def stop(self, signum: int = signal.SIGINT) -> tuple[int, str, str]:
        assert self.process is not None
        if self.process.poll() is None and not self._signalled:
            self.process.send_signal(signum)
        try:
            out, err = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate(timeout=20)
        return self.process.returncode, (self._out + out).decode(), err.decode()

    def __enter__(self) -> Command:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=20)
