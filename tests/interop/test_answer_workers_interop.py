"""SIPp's ``uac`` calls ``trio-sip answer --workers 2``: one UDP address, two processes.

SIPp sends every call from its one socket, so the kernel cannot spread the
calls; the distributor does, by Call-ID, and each call (INVITE, ACK, BYE)
must stay in the worker that took its INVITE, or its BYE gets 481 and SIPp
counts the call as failed.
"""

from __future__ import annotations

import re

import pytest

from cli_process import trio_sip

from .peers import Address, run_sipp

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

CALLS = 200


async def test_sipp_calls_are_answered_by_two_workers(sipp: str, anyio_backend_name: str) -> None:
    async with trio_sip(
        "--backend", anyio_backend_name, "answer", "--listen", "udp:127.0.0.1:0",
        "--workers", "2",
    ) as answer:  # fmt: skip
        result = await run_sipp(
            "uac",
            Address("127.0.0.1", answer.port()),
            calls=CALLS,
            rate=100,
            global_timeout=30,
            program=sipp,
        )
    assert result.ok, result.describe()
    assert result.successful == CALLS
    assert answer.returncode == 0, answer.err
    answered = [
        int(n) for n in re.findall(r"^calls: calls=\d+ answered=(\d+)", answer.out, re.MULTILINE)
    ]
    # Both took calls (SIPp's Call-IDs count up: 200 of them land on both).
    assert len(answered) == 2, answer.out
    assert sum(answered) == CALLS
    assert min(answered) > 0, answered
    # INVITE, ACK and BYE of each call (and any retransmission) handed over.
    line = re.search(
        r"^distributor: workers=2 received=(\d+) forwarded=(\d+) dropped=(\d+)$",
        answer.out,
        re.MULTILINE,
    )
    assert line is not None, answer.out
    received, forwarded, dropped = map(int, line.groups())
    assert received == forwarded >= 3 * CALLS
    assert dropped == 0
