"""Server digest: challenges, stateless nonces, stale, replays, 401 vs 407, filters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from dispatcher._peer import UDPPeer, udp_peer
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Response, parse_message
from trio_sip.message.digest import Algorithm, Challenge, authorize, ha1, parse_challenges
from trio_sip.server import Authorize, Nonces, NonceState, ReceiveChain, Registrar

from ._support import exchange, final, raw

pytestmark = pytest.mark.anyio

USERS = {"alice": "secret"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def running(**options: Any) -> AsyncIterator[tuple[UDPPeer, Authorize, tuple[str, int]]]:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            auth = Authorize(disp, "example.com", options.pop("credentials", USERS), **options)
            disp.set_receiver(ReceiveChain([auth, Registrar(disp)]))
            yield peer, auth, disp.legs[0].address
        tg.cancel_scope.cancel()


def register(peer: UDPPeer, n: int, *headers: str, from_: str = "alice") -> bytes:
    return raw(
        "REGISTER",
        "sip:example.com",
        peer.address,
        branch=f"z9hG4bKa{n}",
        cseq=n,
        from_=f"<sip:{from_}@example.com>;tag=f{n}",
        headers=("Contact: <sip:alice@192.0.2.1>", *headers),
    )


def challenges(response: Response, header: str = "WWW-Authenticate") -> list[Challenge]:
    return [c for value in response.headers.get_all(header) for c in parse_challenges(value)]


def answer(
    challenge: Challenge, *, password: str = "secret", nc: int = 1, user: str = "alice"
) -> str:
    creds = authorize(
        challenge, username=user, password=password, method="REGISTER", uri="sip:example.com", nc=nc
    )
    return str(creds)


async def test_challenge_offers_sha256_then_md5_with_qop_auth() -> None:
    async with running() as (peer, auth, dst):
        response = final(await exchange(peer, dst, register(peer, 1)))
        assert response.status == 401
        offered = challenges(response)
        assert [c.algorithm for c in offered] == [Algorithm.SHA_256, Algorithm.MD5]
        assert all(c.qop == ("auth",) and c.realm == "example.com" for c in offered)
        assert auth.nonces.check(offered[0].nonce) is NonceState.VALID
        assert auth.statistics().challenged == 1


@pytest.mark.parametrize("algorithm", [Algorithm.SHA_256, Algorithm.MD5])
async def test_right_password_passes_on_to_the_registrar(algorithm: Algorithm) -> None:
    async with running() as (peer, auth, dst):
        offered = challenges(final(await exchange(peer, dst, register(peer, 1))))
        chosen = next(c for c in offered if c.algorithm is algorithm)
        ok = final(await exchange(peer, dst, register(peer, 2, f"Authorization: {answer(chosen)}")))
        assert ok.status == 200
        assert auth.statistics().accepted == 1


async def test_wrong_password_and_unknown_user_get_403() -> None:
    async with running() as (peer, _auth, dst):
        (chosen, _) = challenges(final(await exchange(peer, dst, register(peer, 1))))
        bad = answer(chosen, password="guess")
        assert (
            final(await exchange(peer, dst, register(peer, 2, f"Authorization: {bad}"))).status
            == 403
        )
        stranger = answer(chosen, user="mallory")
        data = register(peer, 3, f"Authorization: {stranger}", from_="mallory")
        assert final(await exchange(peer, dst, data)).status == 403


async def test_ha1_mapping_and_async_lookup_are_accepted() -> None:
    table = {Algorithm.MD5: ha1(Algorithm.MD5, "alice", "example.com", "secret")}

    async def lookup(user: str, realm: str) -> dict[Algorithm, str] | None:
        await anyio.lowlevel.checkpoint()
        return table if (user, realm) == ("alice", "example.com") else None

    for credentials in ({"alice": table}, lookup):
        async with running(credentials=credentials, algorithms=[Algorithm.MD5]) as (peer, _a, dst):
            (chosen,) = challenges(final(await exchange(peer, dst, register(peer, 1))))
            data = register(peer, 2, f"Authorization: {answer(chosen)}")
            assert final(await exchange(peer, dst, data)).status == 200


async def test_replayed_nonce_count_is_refused_but_a_higher_one_passes() -> None:
    async with running() as (peer, auth, dst):
        (chosen, _) = challenges(final(await exchange(peer, dst, register(peer, 1))))
        first = answer(chosen, nc=1)
        assert (
            final(await exchange(peer, dst, register(peer, 2, f"Authorization: {first}"))).status
            == 200
        )
        # Same credentials in a new request (new branch, new CSeq): a replay.
        assert (
            final(await exchange(peer, dst, register(peer, 3, f"Authorization: {first}"))).status
            == 403
        )
        assert auth.statistics().replays == 1
        later = answer(chosen, nc=2)
        assert (
            final(await exchange(peer, dst, register(peer, 4, f"Authorization: {later}"))).status
            == 200
        )


@pytest.mark.virtual_time
@pytest.mark.parametrize("tampered", [False, True])
async def test_a_captured_request_replayed_after_its_transaction_is_refused(
    tampered: bool,
) -> None:
    # The same branch and nonce count as an accepted REGISTER, once the
    # Dispatcher's response cache (64*T1) no longer absorbs it: a replay, the
    # more so with its Contact changed (qop=auth does not cover headers).
    clock = Clock()
    async with running(clock=clock) as (peer, auth, dst):
        (chosen, _) = challenges(final(await exchange(peer, dst, register(peer, 1))))
        accepted = register(peer, 2, f"Authorization: {answer(chosen)}")
        assert final(await exchange(peer, dst, accepted)).status == 200
        await anyio.sleep(40)
        clock.now += 40  # the nonce (300 s) is still fresh
        again = accepted
        if tampered:
            again = accepted.replace(b"<sip:alice@192.0.2.1>", b"<sip:mallory@203.0.113.9>")
        assert final(await exchange(peer, dst, again)).status == 403
        assert auth.statistics().replays == 1


async def test_expired_nonce_with_right_digest_gets_stale_true() -> None:
    clock = Clock()
    async with running(clock=clock, nonce_lifetime=60) as (peer, auth, dst):
        (chosen, _) = challenges(final(await exchange(peer, dst, register(peer, 1))))
        clock.now += 61
        response = final(
            await exchange(peer, dst, register(peer, 2, f"Authorization: {answer(chosen)}"))
        )
        assert response.status == 401
        assert all(c.stale for c in challenges(response))
        assert auth.statistics().stale == 1
        # A wrong password with an old nonce is no "stale": it is refused.
        bad = answer(chosen, password="guess")
        assert (
            final(await exchange(peer, dst, register(peer, 3, f"Authorization: {bad}"))).status
            == 403
        )


async def test_forged_nonce_is_challenged_again() -> None:
    async with running() as (peer, _auth, dst):
        (chosen, _) = challenges(final(await exchange(peer, dst, register(peer, 1))))
        forged = Challenge(
            "example.com", "18c0000000.00", algorithm=Algorithm.SHA_256, qop=("auth",)
        )
        response = final(
            await exchange(peer, dst, register(peer, 2, f"Authorization: {answer(forged)}"))
        )
        assert response.status == 401
        assert not any(c.stale for c in challenges(response))
        assert chosen.nonce != forged.nonce


async def test_user_must_match_from() -> None:
    async with running() as (peer, _auth, dst):
        (chosen, _) = challenges(final(await exchange(peer, dst, register(peer, 1))))
        data = register(peer, 2, f"Authorization: {answer(chosen)}", from_="bob")
        assert final(await exchange(peer, dst, data)).status == 403


async def test_as_proxy_it_answers_407_and_reads_proxy_authorization() -> None:
    async with running(proxy=True) as (peer, _auth, dst):
        response = final(await exchange(peer, dst, register(peer, 1)))
        assert response.status == 407
        assert "www-authenticate" not in response.headers
        (chosen, _) = challenges(response, "Proxy-Authenticate")
        data = register(peer, 2, f"Proxy-Authorization: {answer(chosen)}")
        assert final(await exchange(peer, dst, data)).status == 200


async def test_exempt_and_unlisted_methods_pass_without_credentials() -> None:
    async with running(methods=["INVITE"]) as (peer, auth, dst):
        response = final(await exchange(peer, dst, register(peer, 1)))
        assert response.status == 200
        assert auth.statistics().challenged == 0


def test_nonces_are_verified_without_a_lookup() -> None:
    clock = Clock()
    one = Nonces("example.com", secret=b"k" * 32, lifetime=10, clock=clock)
    twin = Nonces("example.com", secret=b"k" * 32, lifetime=10, clock=clock)
    other = Nonces("example.com", secret=b"x" * 32, lifetime=10, clock=clock)
    nonce = one.make()
    assert twin.check(nonce) is NonceState.VALID
    assert other.check(nonce) is NonceState.INVALID
    assert one.check(nonce.replace(".", "0.")) is NonceState.INVALID
    clock.now += 11
    assert one.check(nonce) is NonceState.STALE


def test_nonce_counts_must_grow_except_for_a_retransmission() -> None:
    nonces = Nonces("r", max_tracked=2)
    assert nonces.use("n1", 1, "z9hG4bK1")
    assert nonces.use("n1", 1, "z9hG4bK1")  # the same request again
    assert not nonces.use("n1", 1, "z9hG4bK2")
    assert nonces.use("n1", 2, "z9hG4bK2")
    assert not nonces.use("n1", 1, "z9hG4bK3")
    assert nonces.use("n2", None, "z9hG4bK4")
    assert not nonces.use("n2", None, "z9hG4bK5")
    nonces.use("n3", 1, None)
    assert nonces.tracked() == 2


def test_a_retransmission_is_the_same_bytes_within_the_life_of_its_transaction() -> None:
    clock = Clock()
    nonces = Nonces("r", retransmission_window=32.0, clock=clock)
    assert nonces.use("n1", 1, "z9hG4bK1", fingerprint="f1")
    clock.now += 5
    assert nonces.use("n1", 1, "z9hG4bK1", fingerprint="f1")  # retransmitted
    # Same branch and count, other bytes: a captured request altered.
    assert not nonces.use("n1", 1, "z9hG4bK1", fingerprint="f2")
    clock.now += 28  # 33 s after the first use: no transaction lives that long
    assert not nonces.use("n1", 1, "z9hG4bK1", fingerprint="f1")
    assert nonces.use("n1", 2, "z9hG4bK2", fingerprint="f3")


async def test_an_ack_is_never_challenged_even_when_not_exempt() -> None:
    # An ACK can get no response (17.1.1.3): with ACK left out of ``exempt``
    # it was challenged, which sends nothing and swallowed it, so a proxy
    # behind an Authorize lost the ACKs of its calls' 2xx.
    async with running(exempt=("OPTIONS",)) as (peer, auth, _dst):
        ack = raw(
            "ACK",
            "sip:bob@example.com",
            peer.address,
            branch="z9hG4bKack1",
            to="<sip:bob@example.com>;tag=b1",
        )
        assert (
            await auth.receive(parse_message(ack), auth.dispatcher.legs[0], peer.address) is False
        )
        assert auth.statistics().challenged == 0
