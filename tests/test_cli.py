from __future__ import annotations

import contextlib
import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import anyio
import pytest

from cli_process import Command
from trio_sip.cli import Responder, _Lines, main
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, make_response, parse_message
from trio_sip.ua import UserAgent


def test_parse_command_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
        b"From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 7\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    with pytest.raises(SystemExit) as done:
        main(["parse"])
    assert done.value.code == 0
    assert "OPTIONS sip:a@b SIP/2.0" in capsys.readouterr().out


def test_parse_command_rejects_bad_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(b"INVITE sip:a@b SIP/3.0\r\n\r\n"))
    )
    with pytest.raises(SystemExit) as done:
        main(["parse"])
    assert done.value.code == 1
    assert "505" in capsys.readouterr().err


def test_demo_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    for backend in ("trio", "asyncio"):
        with pytest.raises(SystemExit) as done:
            main(["--backend", backend, "demo"])
        assert done.value.code == 0
        assert "-> SIP/2.0 200 OK" in capsys.readouterr().out


def test_options_against_a_responder(capsys: pytest.CaptureFixture[str]) -> None:
    ready = threading.Event()
    stop = threading.Event()
    port: list[int] = []

    async def serve() -> None:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            disp.set_receiver(Responder(disp))
            port.append(disp.legs[0].port)
            ready.set()
            await anyio.to_thread.run_sync(stop.wait)

    server = threading.Thread(target=anyio.run, args=(serve,))
    server.start()
    try:
        assert ready.wait(10)
        with pytest.raises(SystemExit) as done:
            main(["options", f"sip:127.0.0.1:{port[0]}", "--listen", "udp:127.0.0.1:0"])
    finally:
        stop.set()
        server.join(10)
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("SIP/2.0 200 OK")
    assert "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS" in out


def test_options_reports_no_answer(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        with pytest.raises(SystemExit) as done:
            main(
                ["options", f"sip:127.0.0.1:{port}", "--listen", "udp:127.0.0.1:0", "--t1", "0.01"]
            )
    assert done.value.code == 2
    assert "timeout" in capsys.readouterr().err


# ----- the long-running commands, run as a subprocess -----------------------------------


def register_request(port: int, user: str, contact_port: int, cseq: int = 1) -> bytes:
    return (
        f"REGISTER sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{contact_port};branch=z9hG4bK{cseq}x{contact_port}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1:{port}>;tag=1\r\n"
        f"To: <sip:{user}@127.0.0.1:{port}>\r\nCall-ID: reg-{contact_port}\r\n"
        f"CSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{contact_port}>\r\n"
        "Expires: 600\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def exchange(port: int, data: bytes, sock: socket.socket) -> str:
    sock.sendto(data, ("127.0.0.1", port))
    sock.settimeout(10)
    answer, _ = sock.recvfrom(65535)
    return answer.decode()


BACKENDS = pytest.mark.parametrize("backend", ["trio", "asyncio"])


@BACKENDS
def test_proxy_with_registrar_registers_and_stops_on_sigint(backend: str) -> None:
    with (
        Command("--backend", backend, "proxy", "--registrar", "--listen", "udp:127.0.0.1:0") as cmd,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ua,
    ):
        ua.bind(("127.0.0.1", 0))
        port = cmd.start().port()
        register = register_request(port, "alice", ua.getsockname()[1])
        answer = exchange(port, register, ua)
        assert answer.startswith("SIP/2.0 200 OK"), answer
        assert f"sip:alice@127.0.0.1:{ua.getsockname()[1]}" in answer
        # A retransmission (the 200 was lost) gets the 200 again, not 500
        # for a CSeq that did not grow (RFC 3261 section 10.3 step 7).
        assert exchange(port, register, ua) == answer
        # OPTIONS for the proxy itself is answered, not forwarded to itself.
        ping = register_request(port, "x", ua.getsockname()[1], 2).replace(b"REGISTER", b"OPTIONS")
        assert exchange(port, ping, ua).startswith("SIP/2.0 200 OK")
        code, out, err = cmd.stop()
    assert code == 0, err
    assert "registrar: registers=1 accepted=1 rejected=0" in out
    # The REGISTERs went through the proxy to the registrar's Dispatcher,
    # whose response cache answered the retransmission.
    assert "proxy: requests_forwarded=2 responses_forwarded=2" in out
    assert (
        "registrar dispatcher: packets_in=2 packets_out=2 retransmissions=0 redeliveries=1" in out
    )


@BACKENDS
def test_registrar_with_users_challenges_and_stops_on_sigterm(backend: str) -> None:
    with (
        Command(
            "--backend",
            backend,
            "registrar",
            "--listen",
            "udp:127.0.0.1:0",
            "--user",
            "alice:secret",
            "--min-expires",
            "30",
        ) as cmd,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ua,
    ):
        ua.bind(("127.0.0.1", 0))
        port = cmd.start().port()
        answer = exchange(port, register_request(port, "alice", ua.getsockname()[1]), ua)
        assert answer.startswith("SIP/2.0 401"), answer
        assert 'WWW-Authenticate: Digest realm="trio-sip"' in answer
        invite = register_request(port, "x", ua.getsockname()[1], 2).replace(
            b"REGISTER", b"MESSAGE"
        )
        assert exchange(port, invite, ua).startswith("SIP/2.0 405")
        code, out, _ = cmd.stop(signal.SIGTERM)
    assert code == 0
    assert "authorize: challenged=1 accepted=0" in out
    assert "registrar: registers=0" in out


def test_verbose_logs_each_message_as_a_block_and_json_lines() -> None:
    with (
        Command("-v", "--log-json", "proxy", "--registrar", "--listen", "udp:127.0.0.1:0") as cmd,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ua,
    ):
        ua.bind(("127.0.0.1", 0))
        port = cmd.start().port()
        ua_port = ua.getsockname()[1]
        exchange(port, register_request(port, "bob", ua_port), ua)
        code, _, err = cmd.stop()
    assert code == 0
    records = [json.loads(line) for line in err.splitlines()]
    sip = [r for r in records if r["logger"] == "trio_sip.trace"]
    # In at the proxy, on to the registrar, its 200 back, and out to the UA.
    # The order of the lines of the two Dispatchers varies. The REGISTER the
    # proxy forwards leaves straight through its leg, which the trace does
    # not see (it needs a hook in the Dispatcher; see docs/cli.rst).
    directions = sorted(r["direction"] for r in sip)
    assert directions == ["<<< received"] * 3 + [">>> sent"] * 2
    by_peer = {r["peer"]: r["message"].splitlines()[1] for r in sip}
    assert by_peer[f"from udp:127.0.0.1:{ua_port}"].startswith("REGISTER sip:127.0.0.1:")
    assert by_peer[f"to Via 127.0.0.1:{ua_port}"] == "SIP/2.0 200 OK"


def test_verbose_text_log() -> None:
    with (
        Command("-v", "registrar", "--listen", "udp:127.0.0.1:0") as cmd,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ua,
    ):
        ua.bind(("127.0.0.1", 0))
        port = cmd.start().port()
        ua_port = ua.getsockname()[1]
        exchange(port, register_request(port, "bob", ua_port), ua)
        _, _, err = cmd.stop()
    assert f"<<< received from udp:127.0.0.1:{ua_port}\nREGISTER sip:" in err
    assert "\nSIP/2.0 200 OK\nVia: SIP/2.0/UDP" in err


@BACKENDS
def test_verbose_shows_the_answers_an_endpoint_sends_at_once(backend: str) -> None:
    # The UA's answers leave through Dispatcher.respond_nowait, not deliver:
    # the trace must see them too.
    with (
        Command("--backend", backend, "-v", "answer", "--listen", "udp:127.0.0.1:0") as cmd,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ua,
    ):
        ua.bind(("127.0.0.1", 0))
        port = cmd.start().port()
        ua_port = ua.getsockname()[1]
        options = register_request(port, "bob", ua_port).replace(b"REGISTER", b"OPTIONS")
        assert exchange(port, options, ua).startswith("SIP/2.0 200 OK")
        _, _, err = cmd.stop()
    assert f">>> sent to Via 127.0.0.1:{ua_port}\nSIP/2.0 200 OK\n" in err


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["proxy"], "the following arguments are required: --listen"),
        (["proxy", "--listen", "udp:127.0.0.1:99999"], "bad port"),
        (["proxy", "--listen", "udp:example.com:5060"], "must be an IP address"),
        (["proxy", "--listen", "udp:127.0.0.1:0", "--user", "bob"], "expected USER:PASS"),
        (["proxy", "--listen", "udp:127.0.0.1:0", "--route", "x.org"], "DOMAIN=HOST"),
        (["registrar", "--listen", "udp:127.0.0.1:0", "--store", "redis:x"], "sqlite:PATH"),
        (["registrar", "--listen", "udp:127.0.0.1:0", "--min-expires", "x"], "whole number"),
        (["registrar", "--listen", "tls:127.0.0.1:0"], "needs --cert"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(args: list[str], complaint: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trio_sip", *args], capture_output=True, timeout=20
    )
    assert done.returncode == 2
    err = done.stderr.decode()
    assert len(err.splitlines()) == 1, err
    assert complaint in err


def test_port_in_use_says_so() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "trio_sip", "proxy", "--listen", f"udp:127.0.0.1:{port}"],
            capture_output=True,
            timeout=20,
        )
    assert done.returncode == 1
    err = done.stderr.decode()
    assert len(err.splitlines()) == 1, err
    assert f"cannot bind udp 127.0.0.1:{port}: Address already in use" in err


def run_command(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "trio_sip", *args], capture_output=True, timeout=30
    )


@BACKENDS
def test_register_answer_and_call_through_the_proxy(backend: str) -> None:
    b = ("--backend", backend)
    with Command(
        *b, "proxy", "--registrar", "--domain", "example.com", "--user", "bob:pw",
        "--user", "carol:pw2", "--listen", "udp:127.0.0.1:0",
    ) as proxy:  # fmt: skip
        at = f"127.0.0.1:{proxy.start().port()}"
        # register: exit 0 and the bindings printed; a wrong password: 1.
        done = run_command(
            *b, "register", "sip:carol@example.com", "--registrar", at, "--user", "carol:pw2",
            "--contact", "sip:carol@127.0.0.1:7777", "--listen", "udp:127.0.0.1:0",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        out = done.stdout.decode()
        assert out.startswith("SIP/2.0 200 OK")
        assert "Contact: <sip:carol@127.0.0.1:7777>;expires=" in out
        done = run_command(
            *b, "register", "sip:carol@example.com", "--registrar", at, "--user", "carol:bad",
            "--listen", "udp:127.0.0.1:0",
        )  # fmt: skip
        assert done.returncode == 1
        assert "403" in done.stderr.decode()
        with Command(
            *b, "answer", "--listen", "udp:127.0.0.1:0", "--aor", "sip:bob@example.com",
            "--registrar", at, "--user", "bob:pw", "--ring", "0.2",
        ) as answer:  # fmt: skip
            answer.start()
            # Alice calls bob's AOR through the proxy; bob answers; she hangs up.
            done = run_command(
                *b, "call", "sip:bob@example.com", "--from", "sip:alice@example.com",
                "--proxy", at, "--duration", "0.3", "--listen", "udp:127.0.0.1:0",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert done.stdout.decode().splitlines() == ["SIP/2.0 200 OK", "call ended"]
            # options through the command: the proxy answers for itself.
            done = run_command(*b, "options", f"sip:{at}", "--listen", "udp:127.0.0.1:0")
            assert done.returncode == 0
            assert done.stdout.decode().startswith("SIP/2.0 200 OK")
            code, out, err = answer.stop()
        assert code == 0, err
        assert "calls: calls=1 answered=1 rejected=0 cancelled=0 failed=0" in out
        code, out, err = proxy.stop()
    assert code == 0, err
    # bob's REGISTER, carol's, carol's refused one, bob's un-REGISTER on SIGINT.
    assert "registrar: registers=3 accepted=3" in out
    assert "refused=1" in out


@BACKENDS
def test_call_cancelled_on_ring_timeout_and_rejected_call(backend: str) -> None:
    b = ("--backend", backend)
    with Command(*b, "answer", "--listen", "udp:127.0.0.1:0", "--ring", "1") as answer:
        at = f"127.0.0.1:{answer.start().port()}"
        done = run_command(
            *b, "call", f"sip:bob@{at}", "--ring-timeout", "0.5", "--listen", "udp:127.0.0.1:0"
        )
        assert done.returncode == 1
        assert done.stderr.decode().strip() == "call failed: no answer in 0.5 s (cancelled)"
        time.sleep(2.5)  # the answerer wakes up after its 1 s of ringing and finds the CANCEL
        code, out, err = answer.stop()
    assert code == 0, err
    assert "calls: calls=1 answered=0 rejected=0 cancelled=1 failed=0" in out
    with Command(*b, "answer", "--listen", "udp:127.0.0.1:0", "--code", "486") as answer:
        at = f"127.0.0.1:{answer.start().port()}"
        done = run_command(*b, "call", f"sip:bob@{at}", "--listen", "udp:127.0.0.1:0")
        assert done.returncode == 1
        assert "call failed: SIP/2.0 486 Busy Here" in done.stderr.decode()
        answer.stop()


@contextlib.contextmanager
def calling(backend: str, uri: str) -> Iterator[subprocess.Popen[bytes]]:
    """``trio-sip call URI`` (a long call) as a child process, killed if it outlives the block."""
    call = subprocess.Popen(
        [sys.executable, "-m", "trio_sip", "--backend", backend, "call", uri,
         "--duration", "60", "--listen", "udp:127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield call
    finally:
        if call.poll() is None:
            call.kill()
            call.communicate(timeout=20)


@BACKENDS
def test_sigint_hangs_up_a_call(backend: str) -> None:
    b = ("--backend", backend)
    with Command(*b, "answer", "--listen", "udp:127.0.0.1:0") as answer:
        at = f"127.0.0.1:{answer.start().port()}"
        with calling(backend, f"sip:bob@{at}") as call:
            assert call.stdout is not None
            assert call.stdout.readline() == b"SIP/2.0 200 OK\n"
            call.send_signal(signal.SIGINT)
            _, err = call.communicate(timeout=20)
        assert call.returncode == 130
        assert b"interrupted by SIGINT" in err
        code, summary, _ = answer.stop()
    # The answerer saw the BYE: its call ended and no dialog is left.
    assert "calls: calls=1 answered=1" in summary
    assert "dialogs=0" in summary
    assert code == 0


@BACKENDS
def test_a_second_sigint_ends_the_wait_for_the_bye_of_a_vanished_callee(backend: str) -> None:
    # The callee answers the INVITE and then nothing: the first SIGINT
    # sends the BYE, which would wait 64*T1 (32 s) for its answer; the
    # second ends that wait.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as callee:
        callee.bind(("127.0.0.1", 0))
        callee.settimeout(10)
        with calling(backend, f"sip:bob@127.0.0.1:{callee.getsockname()[1]}") as call:
            invite, source = _next_request(callee, "INVITE")
            sdp = (
                b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
            )
            contact = f"<sip:bob@127.0.0.1:{callee.getsockname()[1]}>"
            ok = make_response(
                invite, 200, to_tag="gone",
                headers=[("Contact", contact), ("Content-Type", "application/sdp")], body=sdp,
            )  # fmt: skip
            callee.sendto(ok.to_bytes(), source)
            assert call.stdout is not None
            assert call.stdout.readline() == b"SIP/2.0 200 OK\n"
            call.send_signal(signal.SIGINT)
            _next_request(callee, "BYE")  # and never answered
            assert call.poll() is None
            call.send_signal(signal.SIGINT)
            # Well under the BYE's 32 s, or this times out.
            _, err = call.communicate(timeout=20)
    assert call.returncode == 130
    assert b"interrupted by SIGINT" in err
    assert b"SIGINT again: not waiting for answers" in err


def _next_request(sock: socket.socket, method: str) -> tuple[Request, tuple[str, int]]:
    """The next ``method`` request on ``sock`` and where it came from (others skipped)."""
    while True:
        data, source = sock.recvfrom(65535)
        message = parse_message(data)
        if isinstance(message, Request) and message.method == method:
            return message, source


@BACKENDS
def test_answer_echoes_the_audio_of_a_call(backend: str) -> None:
    frame = bytes(range(160))
    with Command(
        "--backend", backend, "answer", "--listen", "udp:127.0.0.1:0", "--media", "echo"
    ) as answer:  # fmt: skip
        at = f"127.0.0.1:{answer.start().port()}"

        async def call() -> list[bytes]:
            back: list[bytes] = []
            async with (
                UserAgent("sip:alice@127.0.0.1", listen=["udp:127.0.0.1:0"]) as ua,
                ua.invite(f"sip:bob@{at}") as c,
            ):
                with anyio.fail_after(10):
                    await c.wait_answered()
                    async with anyio.create_task_group() as tg:

                        async def listen() -> None:
                            async for packet in c.media.receive():
                                back.append(packet.payload)
                                if len(back) == 3:
                                    tg.cancel_scope.cancel()

                        tg.start_soon(listen)
                        for _ in range(20):
                            await c.media.send(frame)
            return back

        echoed = anyio.run(call, backend=backend)
        code, out, err = answer.stop()
    assert echoed == [frame] * 3
    assert code == 0, err
    assert "calls: calls=1 answered=1" in out


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_report_lines_are_written_together_within_their_delay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = _Lines(delay=0.05)
    lines.print("before")  # no task writing yet: at once
    assert capsys.readouterr().out == "before\n"
    async with anyio.create_task_group() as tg:
        tg.start_soon(lines.run)
        await anyio.sleep(0.01)
        lines.print("rtp: one")
        lines.print("dtmf: 5 call_id=x")
        assert capsys.readouterr().out == ""  # kept for one write
        await anyio.sleep(0.06)
        assert capsys.readouterr().out == "rtp: one\ndtmf: 5 call_id=x\n"
        lines.print("rtp: two")
        lines.flush()  # what a summary does first
        assert capsys.readouterr().out == "rtp: two\n"
        lines.print("rtp: three")
        tg.cancel_scope.cancel()
    # Stopping writes what waits; later lines go at once.
    assert capsys.readouterr().out == "rtp: three\n"
    lines.print("after")
    assert capsys.readouterr().out == "after\n"
