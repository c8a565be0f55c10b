"""SIPp's ``uac`` calls ``trio-sip answer --workers 2`` and through ``trio-sip proxy
--workers 2``: one UDP address, two processes.

SIPp sends every call from its one socket, so the kernel cannot spread the
calls; the distributor does, by Call-ID, and each call (INVITE, ACK, BYE)
must stay in the worker that took its INVITE, or its BYE gets 481 and SIPp
counts the call as failed. The stateless proxy needs no such affinity, but
its workers must forward from the one address SIPp sends to, both ways.
"""

from __future__ import annotations

import re

import pytest

from cli_process import trio_sip

from .peers import Address, SippServer, run_sipp

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
    assert_distributed(answer.out, at_least=3 * CALLS)


async def test_sipp_calls_through_a_proxy_of_two_workers(
    sipp: str, anyio_backend_name: str
) -> None:
    async with (
        SippServer("uas", program=sipp) as uas,
        trio_sip(
            "--backend", anyio_backend_name, "proxy", "--listen", "udp:127.0.0.1:0",
            "--workers", "2",
        ) as proxy,
    ):  # fmt: skip
        result = await run_sipp(
            "uac",
            uas.address,
            calls=CALLS,
            rate=100,
            global_timeout=30,
            extra_args=["-rsa", f"127.0.0.1:{proxy.port()}"],
            program=sipp,
        )
    assert result.ok, result.describe()
    assert result.successful == CALLS
    assert proxy.returncode == 0, proxy.err
    # Each worker forwarded its calls' requests (INVITE, ACK, BYE) and the
    # answers that came back for them (180, 200, 200).
    workers = re.findall(
        r"^proxy: requests_forwarded=(\d+) responses_forwarded=(\d+) answered=0 dropped=0$",
        proxy.out,
        re.MULTILINE,
    )
    assert len(workers) == 2, proxy.out
    requests, responses = (sum(int(w[i]) for w in workers) for i in (0, 1))
    assert requests >= 3 * CALLS
    assert responses >= 3 * CALLS
    assert min(int(w[0]) for w in workers) > 0, workers
    # Both ways of every call went through the distributor: 6 datagrams a call.
    assert_distributed(proxy.out, at_least=6 * CALLS)


def assert_distributed(out: str, at_least: int) -> None:
    """The distributor's summary: all received forwarded (``at_least``), none dropped."""
    line = re.search(
        r"^distributor: workers=2 received=(\d+) forwarded=(\d+) dropped=(\d+)$",
        out,
        re.MULTILINE,
    )
    assert line is not None, out
    received, forwarded, dropped = map(int, line.groups())
    assert received == forwarded >= at_least
    assert dropped == 0
