"""The registrar and server digest against RFC 3261 sections 10.3 and 22: edge cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from dispatcher._peer import UDPPeer, udp_peer
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import URI, Response, parse_message
from trio_sip.message.digest import Algorithm, Challenge, authorize, ha1, parse_challenges
from trio_sip.server import (
    Authorize,
    Binding,
    MemoryStore,
    ReceiveChain,
    Registrar,
    aor_of,
)
from trio_sip.transport.leg import Leg

from ._support import exchange, final, raw

pytestmark = pytest.mark.anyio

ALICE = URI.parse("sip:alice@example.com")


@asynccontextmanager
async def running(
    *, users: Any = None, **options: Any
) -> AsyncIterator[tuple[UDPPeer, Registrar, Leg]]:
    """A registrar on loopback, behind an Authorize for ``users`` when given."""
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            registrar = Registrar(disp, MemoryStore(), **options)
            if users is None:
                disp.set_receiver(registrar)
            else:
                auth = Authorize(disp, "example.com", users, algorithms=[Algorithm.MD5])
                disp.set_receiver(ReceiveChain([auth, registrar]))
            yield peer, registrar, disp.legs[0]
        tg.cancel_scope.cancel()


def register(
    peer: UDPPeer, n: int, *headers: str, to: str = "<sip:alice@example.com>", user: str = "alice"
) -> bytes:
    return raw(
        "REGISTER",
        "sip:example.com",
        peer.address,
        branch=f"z9hG4bKaudit{n}",
        call_id="audit-1",
        cseq=n,
        from_=f"<sip:{user}@example.com>;tag=f{n}",
        to=to,
        headers=headers,
    )


async def test_non_ascii_or_overlong_expires_parameter_is_answered() -> None:
    # RFC 3261 section 25.1: delta-seconds = 1*DIGIT (ASCII). A superscript
    # two passes str.isdigit() but not int(); 5000 digits are delta-seconds
    # but exceed int()'s conversion limit. Neither may escape from receive()
    # as a ValueError (the UA would get no answer at all).
    async with running(max_expires=7200) as (peer, registrar, leg):
        for n, (value, status) in enumerate([("\u00b2", 400), ("9" * 5000, 200)], start=1):
            data = register(peer, n, f"Contact: <sip:a@192.0.2.1>;expires={value}")
            before = len(peer.arrivals)
            assert await registrar.receive(parse_message(data), leg, peer.address)
            response = final((await peer.wait_for(before + 1))[before].message)
            assert response.status == status
        # Section 20.19: beyond 2**32-1 is 2**32-1, then cut to max_expires.
        assert response.contacts[0].params["expires"] == "7200"


async def test_require_of_an_unsupported_extension_gets_420_with_unsupported() -> None:
    # RFC 3261 section 10.3 step 2 (and 8.2.2.3): the registrar processes
    # Require as a UAS does. RFC 3327 section 5.3: a registrar without Path
    # support answers "Require: path" with 420 rather than silently dropping
    # the Path, which would leave the UA unreachable behind its edge proxy.
    async with running() as (peer, registrar, leg):
        data = register(
            peer,
            1,
            "Contact: <sip:a@192.0.2.1>",
            "Require: path, foo",
            "Path: <sip:edge.example.com;lr>",
        )
        response = final(await exchange(peer, leg.address, data))
        assert response.status == 420
        unsupported = {
            v.strip() for h in response.headers.get_all("Unsupported") for v in h.split(",")
        }
        assert unsupported == {"path", "foo"}
        assert await registrar.lookup(ALICE) == []


async def test_escaped_user_in_to_is_the_same_address_of_record() -> None:
    # RFC 3261 section 10.3 step 5: to canonicalise the AOR "any escaped
    # characters MUST be converted to their unescaped form", so that
    # sip:%61lice@example.com and sip:alice@example.com share their bindings.
    async with running() as (peer, registrar, leg):
        data = register(peer, 1, "Contact: <sip:a@192.0.2.1>", to="<sip:%61lice@example.com>")
        assert final(await exchange(peer, leg.address, data)).status == 200
        found = await registrar.lookup(ALICE)
        assert [b.contact for b in found] == ["sip:a@192.0.2.1"]
        second = register(peer, 2, "Contact: <sip:a@192.0.2.2>")
        both = final(await exchange(peer, leg.address, second))
        assert len(both.contacts) == 2


@pytest.mark.parametrize(
    ("one", "other"),
    [("sip:%61lice@example.com", "sip:alice@example.com"), ("sip:%ff@x", "sip:%FF@x")],
)
def test_equal_uris_share_one_ascii_aor(one: str, other: str) -> None:
    # Section 19.1.4 makes these equal; a key with a lone surrogate (%ff
    # decoded as such) could not even be written to SQLite or Redis.
    first, second = URI.parse(one), URI.parse(other)
    assert first == second
    assert aor_of(first) == aor_of(second)
    assert aor_of(first).isascii()


async def test_no_423_for_an_interval_of_an_hour_or_more() -> None:
    # RFC 3261 section 10.3 step 7: "If and only if the requested expiration
    # interval is greater than zero AND smaller than one hour AND less than a
    # registrar-configured minimum" may the registrar answer 423.
    async with running(min_expires=7200) as (peer, registrar, leg):
        hour = register(peer, 1, "Contact: <sip:a@192.0.2.1>", "Expires: 3600")
        response = final(await exchange(peer, leg.address, hour))
        assert response.status == 200
        assert response.contacts[0].params["expires"] == "3600"
        brief = register(peer, 2, "Contact: <sip:a@192.0.2.2>", "Expires: 1800")
        too_brief = final(await exchange(peer, leg.address, brief))
        assert too_brief.status == 423
        assert too_brief.headers.get("Min-Expires") == "7200"
        assert len(await registrar.lookup(ALICE)) == 1


async def test_contact_q_in_the_200_is_a_valid_qvalue() -> None:
    # RFC 3261 section 25.1: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
    # A q the UA wrote with more digits came back as "q=1e-05", which the
    # UA's parser cannot read.
    async with running() as (peer, _registrar, leg):
        data = register(peer, 1, "Contact: <sip:a@192.0.2.1>;q=0.00001")
        response = final(await exchange(peer, leg.address, data))
        assert response.status == 200
        assert response.contacts[0].params["q"] == "0"
    assert Binding("a", "sip:a@h", 10.0, "c", 1, q=0.12345).contact_value(0) == (
        "<sip:a@h>;expires=10;q=0.123"
    )


def _answer(challenge: Challenge, nc: int = 1) -> str:
    creds = authorize(
        challenge,
        username="alice",
        password="secret",
        method="REGISTER",
        uri="sip:example.com",
        nc=nc,
    )
    return f"Authorization: {creds}"


def _challenge(response: Response) -> Challenge:
    assert response.status == 401
    (challenge,) = parse_challenges(response.headers.get_all("WWW-Authenticate")[0])
    return challenge


async def test_authenticated_user_cannot_register_someone_elses_aor() -> None:
    # RFC 3261 section 10.3 step 4: the registrar checks that the
    # authenticated user may modify the bindings of the AOR in To, else 403.
    # With check_from (the default) alice, with From alice, could bind her
    # device to bob's AOR and take his calls.
    users = {"alice": "secret", "bob": "hunter2"}
    async with running(users=users) as (peer, registrar, leg):
        contact = "Contact: <sip:mallory@192.0.2.66>"
        bob = "<sip:bob@example.com>"
        challenge = _challenge(
            final(await exchange(peer, leg.address, register(peer, 1, contact, to=bob)))
        )
        data = register(peer, 2, contact, _answer(challenge), to=bob)
        assert final(await exchange(peer, leg.address, data)).status == 403
        assert await registrar.lookup(URI.parse("sip:bob@example.com")) == []
        # Her own AOR she may register.
        data = register(peer, 3, contact, _answer(challenge, nc=2))
        assert final(await exchange(peer, leg.address, data)).status == 200


async def test_one_stored_ha1_serves_the_sess_variant_too() -> None:
    # RFC 7616 section 3.4.2: the -sess H(A1) is derived from the same
    # H(username:realm:password) as the plain one, so a table holding the
    # MD5 value (ha1() cannot even compute a "MD5-sess" one without a nonce)
    # must let MD5-sess answers through.
    table = {"alice": {Algorithm.MD5: ha1(Algorithm.MD5, "alice", "example.com", "secret")}}
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            auth = Authorize(disp, "example.com", table, algorithms=[Algorithm.MD5_SESS])
            disp.set_receiver(ReceiveChain([auth, Registrar(disp)]))
            dst = disp.legs[0].address
            contact = "Contact: <sip:a@192.0.2.1>"
            challenge = _challenge(final(await exchange(peer, dst, register(peer, 1, contact))))
            assert challenge.algorithm is Algorithm.MD5_SESS
            data = register(peer, 2, contact, _answer(challenge))
            assert final(await exchange(peer, dst, data)).status == 200
        tg.cancel_scope.cancel()
