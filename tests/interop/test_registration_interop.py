"""A trio-sip UserAgent keeping its registration at Kamailio's registrar.

Kamailio (``registrar``, ``usrloc`` and ``auth`` modules) asks for digest
credentials. The UA registers, is challenged once, and refreshes every
second or so (``min_expires`` 1, 2 s asked): each refresh answers the last
challenge unasked (RFC 3261 section 22.2) with the nonce's next count, so
Kamailio takes it at once; every REGISTER has the same Call-ID and the next
CSeq (section 10.2). Real time, bounded: about 4 s.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from trio_sip.endpoint import ClientRequest
from trio_sip.message.digest import Credentials
from trio_sip.ua import UserAgent

from .peers import KamailioRegistrar

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

LEG = ["udp:127.0.0.1:0"]


async def test_ua_refreshes_at_kamailio_answering_its_challenge_unasked(kamailio: str) -> None:
    clients: list[ClientRequest] = []
    fourth = anyio.Event()
    async with (
        KamailioRegistrar(password="pw", min_expires=1, program=kamailio) as registrar,
        UserAgent("sip:bob@127.0.0.1", listen=LEG, credentials={"bob": "pw"}) as bob,
    ):
        endpoint = bob.endpoint
        original = endpoint.new_request

        async def watched(*args: Any, **kwargs: Any) -> ClientRequest:
            client = await original(*args, **kwargs)
            clients.append(client)
            if len(clients) == 4:
                fourth.set()
            return client

        endpoint.new_request = watched  # type: ignore[method-assign]
        with anyio.fail_after(10):
            ok = await bob.register(f"sip:{registrar.address}", expires=2)
        assert ok.status == 200
        # Granted 2 s: refreshed each second. Three refreshes.
        with anyio.fail_after(10):
            await fourth.wait()
            await clients[3].wait_final()
        endpoint.new_request = original  # type: ignore[method-assign]
    finals = [client.final for client in clients[:4]]
    assert [final.status if final is not None else None for final in finals] == [200] * 4
    # The last request each sent: register()'s answer to its challenge, then
    # the refreshes, each answered unasked and taken at once (no retry: the
    # CSeq numbers follow one another).
    sent = [client.request for client in clients[:4]]
    numbers = [request.cseq.seq for request in sent]
    assert numbers == list(range(numbers[0], numbers[0] + 4))
    assert len({request.call_id for request in sent}) == 1
    counts = []
    for request in sent:
        value = request.headers.get("authorization")
        assert value is not None
        counts.append(Credentials.parse(value).nc)
    assert counts == [1, 2, 3, 4]
