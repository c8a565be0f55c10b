"""Leaving a busy Dispatcher: 1,000 transactions in flight end at once, nothing leaks."""

from __future__ import annotations

import gc
import socket
import time
import warnings

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.errors import DeliveryFailure
from trio_sip.message import Request, parse_message
from trio_sip.transport.leg import Address, TransportFailure
from trio_sip.transport.udp import UDPLeg

pytestmark = pytest.mark.anyio

IN_FLIGHT = 1000


def _invite(n: int, port: int) -> Request:
    data = (
        f"INVITE sip:bob@127.0.0.1:{port} SIP/2.0\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=f{n}\r\n"
        f"To: <sip:bob@example.com>\r\nCall-ID: shutdown-{n}\r\nCSeq: 1 INVITE\r\n"
        f"Content-Length: 0\r\n\r\n"
    )
    request = parse_message(data.encode())
    assert isinstance(request, Request)
    return request


async def test_leaving_with_1000_transactions_in_flight_is_fast_and_clean() -> None:
    # A peer that never answers: every INVITE stays in its retransmission
    # schedule (Timer A/B) until the Dispatcher is left.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        failures: list[object] = []
        disp = Dispatcher(["udp:127.0.0.1:0"])
        async with disp:
            for n in range(IN_FLIGHT):
                await disp.deliver(
                    _invite(n, port),
                    leg=disp.legs[0],
                    dst_addr=("127.0.0.1", port),
                    callback=failures.append,
                )
            assert disp.statistics().deliveries_pending == IN_FLIGHT
            leg = disp.legs[0]
            assert isinstance(leg, UDPLeg)
            started = time.monotonic()
        elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"leaving took {elapsed:.2f} s"
    # Cancelled, not failed: no callback fires for a delivery the owner ended.
    assert failures == []
    assert disp.legs == ()
    assert leg._raw is None  # the socket is closed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    # The Dispatcher holds no live task and can be garbage collected.
    await anyio.lowlevel.checkpoint()


class _ClosedUnderRetransmission(UDPLeg):
    """A leg whose retransmission is under way as its Dispatcher closes, and
    then finds the leg closed: what asyncio can do to a delivery whose timer
    fired just as the Dispatcher's task group was cancelled."""

    __slots__ = ("release", "retransmitting", "sent")

    def __init__(self) -> None:
        super().__init__("127.0.0.1", 0)
        self.sent = False
        self.retransmitting = anyio.Event()
        self.release = anyio.Event()

    async def send(self, data: bytes, dst: Address, *, tls_hostname: str | None = None) -> None:
        if not self.sent:  # the first transmission goes
            self.sent = True
            await super().send(data, dst, tls_hostname=tls_hostname)
            return
        self.retransmitting.set()
        with anyio.CancelScope(shield=True):
            await self.release.wait()
        raise TransportFailure(DeliveryFailure.TRANSPORT, "leg is closed")

    async def aclose(self) -> None:
        await super().aclose()
        self.release.set()  # the send under way finds the leg closed


@pytest.mark.virtual_time
async def test_a_retransmission_cut_by_the_close_is_not_a_failure() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        failures: list[object] = []
        leg = _ClosedUnderRetransmission()
        disp = Dispatcher([leg])
        async with disp:
            await disp.deliver(
                _invite(0, port), leg=leg, dst_addr=("127.0.0.1", port), callback=failures.append
            )
            await leg.retransmitting.wait()
    # The owner ended the delivery by leaving: no failure to report.
    assert failures == []
    assert disp.statistics().failures == {}
