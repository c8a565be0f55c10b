"""A flooding source is throttled by the Dropper; a good client keeps registering.

The flooder sends REGISTERs at ten times the rate its Dropper bucket allows,
from 127.0.0.1; a well-behaved client on 127.0.0.2 registers a few times in
the same second and is answered every time. Bounded: 200 flood packets, a
fixed rate, well under two seconds.
"""

from __future__ import annotations

import anyio
import pytest

from dispatcher._peer import udp_peer
from server._support import raw
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Response
from trio_sip.server import Dropper, ReceiveChain, Registrar

pytestmark = pytest.mark.anyio

RATE = 20.0  # packets per second a source may send
BURST = 5
FLOOD = 200  # packets, sent at 10 x RATE
GOOD = 5  # registrations of the good client, spread over the flood


def _register(peer: tuple[str, int], n: int, user: str) -> bytes:
    return raw(
        "REGISTER",
        "sip:example.com",
        peer,
        branch=f"z9hG4bK{user}{n}",
        call_id=f"{user}-reg",
        cseq=n + 1,
        from_=f"<sip:{user}@example.com>;tag={user}",
        to=f"<sip:{user}@example.com>",
        headers=(f"Contact: <sip:{user}@{peer[0]}:{peer[1]}>",),
    )


async def test_flood_is_throttled_while_a_good_client_registers() -> None:
    async with (
        anyio.create_task_group() as tg,
        udp_peer(tg) as flooder,
        udp_peer(tg, "127.0.0.2") as good,
    ):
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            dropper = Dropper(rate=RATE, burst=BURST, clock=anyio.current_time)
            registrar = Registrar(disp)
            disp.set_receiver(ReceiveChain([dropper, registrar]))
            here = disp.legs[0].address
            started = anyio.current_time()
            for n in range(FLOOD):
                await flooder.send(_register(flooder.address, n, "mallory"), here)
                if n % (FLOOD // GOOD) == 0:
                    index = n // (FLOOD // GOOD)
                    await good.send(_register(good.address, index, "alice"), here)
                    (answer,) = (await good.wait_for(index + 1))[index:]
                    assert isinstance(answer.message, Response)
                    assert answer.message.status == 200
                await anyio.sleep(1 / (10 * RATE))
            elapsed = anyio.current_time() - started
            await anyio.sleep(0.2)  # the last answers to the flooder
            stats = dropper.statistics()
        tg.cancel_scope.cancel()
    # The flooder got what its bucket allows over the time it flooded, no more.
    allowed = BURST + RATE * elapsed + 1
    assert BURST <= len(flooder.arrivals) <= allowed, (len(flooder.arrivals), elapsed)
    assert stats.dropped_by_rate >= FLOOD - allowed
    assert len(good.arrivals) == GOOD
