"""A private ``redis-server`` for a test: loopback, a port chosen at run time, a temp dir.

Started and stopped synchronously (from fixtures, or from a test through
``anyio.to_thread.run_sync``). Persistence is off unless asked for
(``--save ""``, ``--appendonly no``): what a restart then does to bindings is
part of what the tests show.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path

from interop.peers import PeerError, free_port

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class RedisServer:
    """One ``redis-server`` process; :meth:`restart` keeps its port and directory."""

    def __init__(self, program: str, workdir: Path, *, persistent: bool = False) -> None:
        self.program = program
        self.workdir = workdir
        self.persistent = persistent
        self.host = "127.0.0.1"
        self.port = free_port(self.host, "tcp")
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """The ``--store`` value that names database 0 of this server."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int:
        """The process id of the running server."""
        assert self.process is not None, "redis-server is not running"
        return self.process.pid

    def _argv(self) -> list[str]:
        # appendfsync always: a restart right after a write must find it.
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        return [
            self.program,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            *persistence,
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=self.workdir
        )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PeerError(f"redis-server exited with {self.process.returncode}\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=1) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.stop()
        raise PeerError(f"redis-server did not answer within {START_TIMEOUT} s\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM (Redis then writes its append-only file when it keeps one), then reap."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port and directory."""
        self.stop()
        self.start()

    def log(self) -> str:
        """The tail of the server's log."""
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""
