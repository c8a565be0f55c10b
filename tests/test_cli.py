from __future__ import annotations

import io
import sys

import pytest

from trio_sip.cli import main


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
