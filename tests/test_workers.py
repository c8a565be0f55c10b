"""``trio-sip answer --workers N`` and ``trio-sip proxy --workers N``: one UDP
socket, each call handled in one of N processes (chosen by its Call-ID), and
the processes stopped together."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from cli_process import Command
from trio_sip.cli import ATOMIC_WRITE, write_lines
from trio_sip.message import Request, make_response, parse_message
from trio_sip.transport.shard import shard_of

BACKENDS = pytest.mark.parametrize("backend", ["trio", "asyncio"])
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
STATUS = re.compile(r"^SIP/2\.0 (\d{3})")


def sip(
    method: str, call_id: str, cseq: int, port: int, local: int, to: str = "", ip: str = "127.0.0.1"
) -> bytes:
    """A request of the call ``call_id`` for ``sip:answer@IP:port``, from ``IP:local``."""
    body = SDP if method == "INVITE" else ""
    host = f"[{ip}]" if ":" in ip else ip
    return (
        f"{method} sip:answer@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:{local};branch=z9hG4bK-{call_id}-{cseq}-{method}\r\n"
        f"From: <sip:test@{host}:{local}>;tag=t-{call_id}\r\n"
        f"To: {to or f'<sip:answer@{host}:{port}>'}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
        f"Contact: <sip:test@{host}:{local}>\r\nMax-Forwards: 70\r\n"
        + ("Content-Type: application/sdp\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def final(sock: socket.socket, method: str) -> str:
    """The final response to ``method`` (provisional ones skipped)."""
    while True:
        text = sock.recv(65535).decode()
        status = STATUS.match(text)
        if status and int(status.group(1)) >= 200 and f" {method}\r\n" in text:
            return text


def one_call(sock: socket.socket, call_id: str, port: int, via: int | None = None) -> None:
    """INVITE, 200, ACK, BYE, 200: all of a call's messages, each to the same worker.

    The requests are for the answerer on ``port``; they are sent to the
    proxy on ``via`` when given, else straight to ``port``.
    """
    ip, local = sock.getsockname()[:2]
    to_addr = (ip, via or port)
    sock.sendto(sip("INVITE", call_id, 1, port, local, ip=ip), to_addr)
    ok = final(sock, "INVITE")
    assert ok.startswith("SIP/2.0 200"), ok
    to = next(line[4:] for line in ok.split("\r\n") if line.startswith("To: "))
    sock.sendto(sip("ACK", call_id, 1, port, local, to, ip=ip), to_addr)
    sock.sendto(sip("BYE", call_id, 2, port, local, to, ip=ip), to_addr)
    bye = final(sock, "BYE")
    # A BYE that reached another worker than its INVITE would get 481.
    assert bye.startswith("SIP/2.0 200"), bye


def call_ids(workers: int, per_worker: int) -> list[str]:
    """Call-IDs that give each worker ``per_worker`` calls."""
    chosen: dict[int, list[str]] = {w: [] for w in range(workers)}
    n = 0
    while any(len(ids) < per_worker for ids in chosen.values()):
        call_id = f"w{n}@test"
        ids = chosen[shard_of(b"\r\nCall-ID: " + call_id.encode() + b"\r\n", ("", 0), workers)]
        if len(ids) < per_worker:
            ids.append(call_id)
        n += 1
    return [call_id for ids in chosen.values() for call_id in ids]


def children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def gone(pids: set[int], deadline: float = 20.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        alive = set()
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(") ", 1)[1].startswith("Z"):
                        continue  # ended, not yet reaped
                alive.add(pid)
            except FileNotFoundError:
                pass
        if not alive:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("backend", "ip"),
    [
        ("trio", "127.0.0.1"),
        ("asyncio", "127.0.0.1"),
        # Framed with an IPv6 source, answered from the shared [::1] socket.
        ("trio", "::1"),
    ],
)
def test_calls_spread_over_the_workers_each_call_kept_in_one(backend: str, ip: str) -> None:
    ids = call_ids(workers=2, per_worker=3)
    host = f"[{ip}]" if ":" in ip else ip
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with (
        Command(
            "--backend", backend, "answer", "--listen", f"udp:{host}:0", "--workers", "2"
        ) as cmd,
        socket.socket(family, socket.SOCK_DGRAM) as sock,
    ):  # fmt: skip
        sock.bind((ip, 0))
        sock.settimeout(10)
        port = cmd.start().port()
        for call_id in ids:
            one_call(sock, call_id, port)
        code, out, err = cmd.stop()
    assert code == 0, err
    # One listening line (the distributor's, once both workers serve).
    assert out.count("listening on ") == 1, out
    # Each worker answered its three and printed its own statistics.
    assert (
        re.findall(r"^calls: .*$", out, re.MULTILINE)
        == ["calls: calls=3 answered=3 rejected=0 cancelled=0 failed=0"] * 2
    ), out
    for call_id in ids:
        assert out.count(f"rtp: call_id={call_id} ") == 1, out
    assert "distributor: workers=2 received=18 forwarded=18 dropped=0" in out, out


def answer_bye(sock: socket.socket) -> str:
    """Wait for a BYE on ``sock``, answer it 200, and return its Call-ID."""
    while True:
        data, source = sock.recvfrom(65535)
        bye = parse_message(data)
        if isinstance(bye, Request) and bye.method == "BYE":
            # To where it came from: its Via's sent-by, the shared address.
            sock.sendto(make_response(bye, 200).to_bytes(), source)
            return bye.call_id


@BACKENDS
def test_workers_register_once_keep_calls_to_the_end_and_unregister(backend: str) -> None:
    # Worker 0 registers the shared address before it is ready, with a
    # Call-ID that brings the answer back to it; calls to the AOR reach both
    # workers; when stopped, a worker hangs up the call it still has and
    # worker 0 unregisters, both answered through the distributor.
    ids = call_ids(workers=2, per_worker=2)
    held = ids.pop()
    with (
        Command("proxy", "--registrar", "--listen", "udp:127.0.0.1:0") as proxy,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        at = proxy.start().port()
        with Command(
            "--backend", backend, "answer", "--listen", "udp:127.0.0.1:0", "--workers", "2",
            "--aor", "sip:answer@127.0.0.1", "--registrar", f"127.0.0.1:{at}",
        ) as answer:  # fmt: skip
            answer.start()
            for call_id in ids:
                one_call(sock, call_id, at)  # to the AOR, through the proxy
            local = sock.getsockname()[1]
            sock.sendto(sip("INVITE", held, 1, at, local), ("127.0.0.1", at))
            ok = final(sock, "INVITE")
            assert ok.startswith("SIP/2.0 200"), ok
            to = next(line[4:] for line in ok.split("\r\n") if line.startswith("To: "))
            sock.sendto(sip("ACK", held, 1, at, local, to), ("127.0.0.1", at))
            answer.send_signal(signal.SIGINT)
            assert answer_bye(sock) == held
            code, out, err = answer.stop()
        proxy_code, proxy_out, proxy_err = proxy.stop()
    assert code == 0, err
    assert proxy_code == 0, proxy_err
    # The REGISTER and the removal, each answered at once.
    assert "registrar: registers=2 accepted=2" in proxy_out, proxy_out
    calls = sorted(re.findall(r"^calls: calls=(\d+) answered=(\d+)", out, re.MULTILINE))
    assert calls == [("1", "1"), ("2", "2")] or calls == [("2", "2"), ("2", "2")], out
    assert out.count("rtp: call_id=") == len(ids) + 1, out
    assert out.count("listening on ") == 1, out


@BACKENDS
def test_a_proxy_of_workers_forwards_each_call_in_one(backend: str) -> None:
    ids = call_ids(workers=2, per_worker=3)
    with (
        Command("answer", "--listen", "udp:127.0.0.1:0") as callee,
        Command(
            "--backend", backend, "proxy", "--listen", "udp:127.0.0.1:0", "--workers", "2"
        ) as proxy,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):  # fmt: skip
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port, via = callee.start().port(), proxy.start().port()
        for call_id in ids:
            one_call(sock, call_id, port, via=via)
        code, out, err = proxy.stop()
        callee_code, callee_out, callee_err = callee.stop()
    assert code == 0, err
    assert callee_code == 0, callee_err
    assert "calls: calls=6 answered=6" in callee_out, callee_out
    assert out.count("listening on ") == 1, out
    # Each worker forwarded its three calls: INVITE, ACK, BYE, and the two 200s.
    assert (
        re.findall(r"^proxy: .*$", out, re.MULTILINE)
        == ["proxy: requests_forwarded=9 responses_forwarded=6 answered=0 dropped=0"] * 2
    ), out
    # The answers came back to the shared socket, each to its call's worker.
    assert "distributor: workers=2 received=30 forwarded=30 dropped=0" in out, out


def started_workers(cmd: Command, count: int) -> set[int]:
    """Start ``answer --workers`` and return the process ids of its workers."""
    cmd.start()
    assert cmd.process is not None
    workers = children(cmd.process.pid)
    assert len(workers) == count
    return workers


def test_a_worker_that_dies_stops_the_whole() -> None:
    with Command("answer", "--listen", "udp:127.0.0.1:0", "--workers", "2") as cmd:
        workers = started_workers(cmd, 2)
        os.kill(min(workers), signal.SIGKILL)
        assert cmd.process.wait(timeout=20) == 1
        code, _, err = cmd.stop()
    assert code == 1
    assert "a worker ended; stopping" in err
    assert gone(workers)


def test_workers_of_a_killed_distributor_stop_by_themselves() -> None:
    with Command("answer", "--listen", "udp:127.0.0.1:0", "--workers", "3") as cmd:
        workers = started_workers(cmd, 3)
        assert cmd.process is not None
        cmd.process.kill()
        code, out, _ = cmd.stop()
        assert code == -signal.SIGKILL
        # Each noticed its inbox close, stopped as on SIGTERM and said so.
        assert gone(workers)
    assert out.count("calls: calls=0") == 3, out


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["answer", "--listen", "tcp:127.0.0.1:0"], "--workers takes one UDP --listen"),
        (["answer", "--listen", "udp:127.0.0.1:0", "--listen", "udp:[::1]:0"], "one UDP --listen"),
        (["proxy", "--listen", "tls:127.0.0.1:0"], "--workers takes one UDP --listen"),
        # Bindings of its own in each worker: an INVITE's would not know the REGISTER's.
        (["proxy", "--listen", "udp:127.0.0.1:0", "--registrar"], "needs a shared --store redis"),
        (
            ["proxy", "--listen", "udp:127.0.0.1:0", "--registrar", "--store", "sqlite:x.db"],
            "needs a shared --store redis",
        ),
        (["registrar", "--listen", "udp:127.0.0.1:0"], "needs a shared --store redis"),
    ],
)
def test_what_workers_do_not_serve_is_refused(args: list[str], complaint: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trio_sip", *args, "--workers", "2"],
        capture_output=True,
        timeout=20,
    )
    assert done.returncode == 2
    err = done.stderr.decode()
    assert len(err.splitlines()) == 1, err
    assert complaint in err


def test_a_port_in_use_is_said_in_one_line_before_any_worker_starts() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        argv = ["answer", "--workers", "2", "--listen", f"udp:127.0.0.1:{port}"]
        done = subprocess.run(
            [sys.executable, "-m", "trio_sip", *argv],
            capture_output=True,
            timeout=20,
        )
    assert done.returncode == 1
    # Said as one process says it.
    assert done.stderr.decode().splitlines() == [
        f"trio-sip: transport error: cannot bind udp 127.0.0.1:{port}: Address already in use"
    ]
    assert done.stdout == b""


class _Recorder(io.RawIOBase):
    """A binary stream that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return len(data)


def test_report_lines_go_out_in_whole_lines_of_at_most_one_atomic_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Workers share standard output: a write must never end inside a line,
    # or another worker's line lands in it (seen with PYTHONUNBUFFERED).
    raw = _Recorder()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8", write_through=True))
    lines = [f"rtp: call_id={n} " + "x" * (n * 37 % 900) for n in range(40)]
    long = "y" * (ATOMIC_WRITE + 100)
    write_lines("\n".join(lines))
    write_lines(long)
    write_lines("calls: calls=3")
    assert b"".join(raw.writes).decode() == "\n".join([*lines, long, "calls: calls=3"]) + "\n"
    assert len(raw.writes) > 2  # the 40 lines needed several writes
    for chunk in raw.writes:
        assert chunk.endswith(b"\n")
        assert len(chunk) <= ATOMIC_WRITE or chunk == (long + "\n").encode()


def bye_of(sock: socket.socket) -> str:
    """Wait for a BYE on ``sock`` (and leave it unanswered); return its Call-ID."""
    while True:
        message = parse_message(sock.recv(65535))
        if isinstance(message, Request) and message.method == "BYE":
            return message.call_id


@pytest.mark.parametrize(
    ("backend", "workers"), [("trio", ()), ("asyncio", ()), ("trio", ("--workers", "2"))]
)
def test_a_second_signal_stops_without_waiting_for_a_vanished_peer(
    backend: str, workers: tuple[str, ...]
) -> None:
    # The first SIGINT hangs up the call, and the BYE would wait 64*T1
    # (32 s) for the answer of a caller that is gone; the second one makes
    # it stop waiting: the command ends at once, in order, with status 0.
    with (
        Command(
            "--backend", backend, "answer", "--listen", "udp:127.0.0.1:0", *workers
        ) as answer,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):  # fmt: skip
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        port, local = answer.start().port(), sock.getsockname()[1]
        sock.sendto(sip("INVITE", "vanishing@test", 1, port, local), ("127.0.0.1", port))
        ok = final(sock, "INVITE")
        to = next(line[4:] for line in ok.split("\r\n") if line.startswith("To: "))
        sock.sendto(sip("ACK", "vanishing@test", 1, port, local, to), ("127.0.0.1", port))
        answer.send_signal(signal.SIGINT)
        assert bye_of(sock) == "vanishing@test"
        assert answer.process is not None
        assert answer.process.poll() is None  # waiting for the BYE's answer
        answer.send_signal(signal.SIGINT)
        # stop() kills what has not ended after 20 s, well under the 32 s
        # the BYE's transaction would wait: that would be status -9.
        code, out, err = answer.stop()
    assert code == 0, err
    assert "again: not waiting for answers" in err, err
    assert "calls: calls=1 answered=1" in out, out
    assert "rtp: call_id=vanishing@test " in out, out
