from __future__ import annotations

import io
import socket
import sys
import threading

import anyio
import pytest

from trio_sip.cli import Responder, main
from trio_sip.dispatcher import Dispatcher


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
