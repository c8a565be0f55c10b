"""Digest answers to 401 and 407 (RFC 3261 22, RFC 7616, RFC 8760), and 3xx following."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from trio_sip.endpoint import CredentialSource, Endpoint
from trio_sip.message import Request
from trio_sip.message.digest import Algorithm, Challenge, Credentials, authorize, verify

from ._helpers import BOUND, answer, running_endpoint, serve, uri_of

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

HEADERS = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


class Challenger:
    """A UAS that wants digest credentials for ``password`` before answering 200."""

    def __init__(
        self,
        status: int,
        algorithm: Algorithm,
        password: str = "secret",
        qop: tuple[str, ...] = ("auth",),
    ) -> None:
        self.qop = qop
        self.status = status
        self.algorithm = algorithm
        self.password = password
        self.nonces = ["nonce-1"]
        self.seen: list[Credentials | None] = []
        self.cseqs: list[int] = []
        self.stale_once = False

    async def __call__(self, ep: Endpoint, request: Request) -> None:
        challenge_header, answer_header = HEADERS[self.status]
        value = request.headers.get(answer_header)
        creds = Credentials.parse(value) if value is not None else None
        self.seen.append(creds)
        self.cseqs.append(request.cseq.seq)
        good = creds is not None and verify(
            creds, method=request.method, body=request.body, password=self.password
        )
        if good and creds is not None and creds.nonce == self.nonces[-1]:
            if self.stale_once:
                self.stale_once = False
                self.nonces.append(f"nonce-{len(self.nonces) + 1}")
                await self._challenge(ep, request, challenge_header, stale=True)
                return
            await answer(ep, request, ring=False)
            return
        await self._challenge(ep, request, challenge_header, stale=False)

    async def _challenge(self, ep: Endpoint, request: Request, header: str, *, stale: bool) -> None:
        challenge = Challenge(
            "test.example", self.nonces[-1], algorithm=self.algorithm, qop=self.qop, stale=stale
        )
        await ep.respond(request, self.status, headers=[(header, str(challenge))])


@asynccontextmanager
async def challenged(
    challenger: Challenger, credentials: CredentialSource | None = None
) -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    """A UAS that answers through ``challenger``, and a UAC with ``credentials``."""
    async with (
        running_endpoint() as uas,
        running_endpoint(credentials=credentials) as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, challenger)
        yield uas, uac
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("status", [401, 407])
@pytest.mark.parametrize("algorithm", [Algorithm.MD5, Algorithm.SHA_256, Algorithm.SHA_512_256])
@pytest.mark.parametrize("method", ["INVITE", "MESSAGE"])
async def test_digest_retry(status: int, algorithm: Algorithm, method: str) -> None:
    challenger = Challenger(status, algorithm)
    async with challenged(challenger, credentials=("alice", "secret")) as (uas, uac):
        with anyio.fail_after(BOUND):
            call = await uac.new_request(method, uri_of(uas))
            final = await call.wait_final()
        assert final.status == 200
        first, second = challenger.seen
        assert first is None
        assert second is not None
        assert second.username == "alice"
        assert second.effective_algorithm is algorithm
        assert second.nc == 1
        # 8.1.3.5: the retry is a new transaction with the next CSeq, same Call-ID.
        assert challenger.cseqs[1] == challenger.cseqs[0] + 1
        assert call.request.cseq.seq == challenger.cseqs[1]
        header = HEADERS[status][1].lower()
        assert header in call.request.headers


async def test_nonce_count_grows_per_nonce() -> None:
    challenger = Challenger(401, Algorithm.SHA_256)
    async with challenged(challenger, credentials=("alice", "secret")) as (uas, uac):
        with anyio.fail_after(BOUND):
            assert (await uac.request(uri_of(uas), "MESSAGE")).status == 200
            assert (await uac.request(uri_of(uas), "MESSAGE")).status == 200
        counts = [c.nc for c in challenger.seen if c is not None]
        assert counts == [1, 2]  # same nonce, next count


async def test_wrong_password_is_retried_once_then_reported() -> None:
    challenger = Challenger(401, Algorithm.MD5)
    async with challenged(challenger, credentials=("alice", "wrong")) as (uas, uac):
        with anyio.fail_after(BOUND):
            final = await uac.request(uri_of(uas), "MESSAGE")
        assert final.status == 401
        assert len(challenger.seen) == 2


async def test_stale_nonce_is_answered_again() -> None:
    challenger = Challenger(407, Algorithm.SHA_512_256)
    challenger.stale_once = True
    async with challenged(challenger, credentials=lambda realm: ("alice", "secret")) as (uas, uac):
        with anyio.fail_after(BOUND):
            final = await uac.request(uri_of(uas), "MESSAGE")
        assert final.status == 200
        nonces = [c.nonce if c is not None else None for c in challenger.seen]
        assert nonces == [None, "nonce-1", "nonce-2"]


class AlwaysStale(Challenger):
    """A broken server: every right answer is told its nonce went stale."""

    async def __call__(self, ep: Endpoint, request: Request) -> None:
        self.stale_once = True
        await super().__call__(ep, request)


async def test_a_server_that_finds_every_nonce_stale_is_not_answered_forever() -> None:
    # stale=true asks for one more try with the new nonce (RFC 7616 3.3); a
    # server that says it every time got a new request every time, forever.
    challenger = AlwaysStale(401, Algorithm.MD5)
    async with challenged(challenger, credentials=("alice", "secret")) as (uas, uac):
        with anyio.fail_after(BOUND):
            final = await uac.request(uri_of(uas), "MESSAGE")
    assert final.status == 401
    assert challenger.seen[0] is None
    assert len(challenger.seen) == 1 + 5  # the first try, and five with credentials


async def test_no_credentials_returns_the_challenge() -> None:
    challenger = Challenger(401, Algorithm.MD5)
    async with challenged(challenger) as (uas, uac):
        with anyio.fail_after(BOUND):
            final = await uac.request(uri_of(uas), "MESSAGE")
        assert final.status == 401


@pytest.mark.parametrize("follow", [True, False])
async def test_redirect_followed_when_asked(follow: bool) -> None:
    async def redirect(ep: Endpoint, request: Request) -> None:
        await ep.respond(request, 302, headers=[("Contact", f"<{uri_of(target, 'carol')}>")])

    seen: list[Request] = []
    async with (
        running_endpoint() as origin,
        running_endpoint() as target,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, origin, redirect)
        tg.start_soon(serve, target, answer, seen)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(origin), follow_redirects=follow)
            final = await call.wait_final()
        if follow:
            assert final.status == 200
            assert seen[0].uri.user == "carol"
            assert call.dialogs[0].remote_target.port == target.dispatcher.legs[0].port
        else:
            assert final.status == 302
            assert seen == []
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("qop", [("auth-int",), ()], ids=["auth-int", "rfc2069"])
async def test_digest_auth_int_and_no_qop(qop: tuple[str, ...]) -> None:
    challenger = Challenger(401, Algorithm.SHA_256, qop=qop)
    async with challenged(challenger, credentials=("alice", "secret")) as (uas, uac):
        with anyio.fail_after(BOUND):
            final = await uac.request(
                uri_of(uas), "MESSAGE", headers=[("Content-Type", "text/plain")], body=b"hello"
            )
        assert final.status == 200
        creds = challenger.seen[1]
        assert creds is not None
        assert creds.qop == (qop[0] if qop else None)


async def test_cancelled_invite_is_not_retried_with_credentials() -> None:
    challenger = Challenger(407, Algorithm.MD5)
    async with challenged(challenger, credentials=("alice", "secret")) as (uas, uac):
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            await call.cancel()  # before any provisional: only remembered (9.1)
            final = await call.wait_final()
        assert final.status == 407
        assert challenger.seen == [None]


# ----- answering before being asked (RFC 3261 section 22.2) ---------------------------


async def _messages(uac: Endpoint, *targets: str) -> list[int]:
    statuses = []
    with anyio.fail_after(BOUND):
        for target in targets:
            statuses.append((await uac.request(target, "MESSAGE")).status)
    return statuses


def _counts(challenger: Challenger) -> list[int | None]:
    return [c.nc if c is not None else None for c in challenger.seen]


async def test_a_challenge_answered_is_answered_unasked_for_the_same_to() -> None:
    # 22.2: credentials are kept per To and realm and used again for the
    # next request there, with the nonce's next count (RFC 7616 3.4).
    challenger = Challenger(401, Algorithm.SHA_256)
    async with challenged(challenger, credentials=("alice", "secret")) as (uas, uac):
        bob, carol = uri_of(uas), uri_of(uas, "carol")
        assert await _messages(uac, bob, bob, bob) == [200, 200, 200]
        assert _counts(challenger) == [None, 1, 2, 3]
        # Another To is challenged first.
        assert await _messages(uac, carol) == [200]
        assert _counts(challenger)[4:] == [None, 4]


async def test_a_challenge_without_qop_is_not_answered_unasked() -> None:
    # Without qop there is no nonce count: a second use would be a replay.
    challenger = Challenger(401, Algorithm.SHA_256, qop=())
    async with challenged(challenger, credentials=("alice", "secret")) as (uas, uac):
        assert await _messages(uac, uri_of(uas), uri_of(uas)) == [200, 200]
        assert [c is not None for c in challenger.seen] == [False, True, False, True]


async def test_a_stale_nonce_sent_unasked_is_answered_again() -> None:
    challenger = Challenger(401, Algorithm.MD5)
    async with challenged(challenger, credentials=("alice", "secret")) as (uas, uac):
        assert await _messages(uac, uri_of(uas)) == [200]
        challenger.stale_once = True
        assert await _messages(uac, uri_of(uas), uri_of(uas)) == [200, 200]
        nonces = [(c.nonce, c.nc) if c is not None else None for c in challenger.seen]
        assert nonces == [None, ("nonce-1", 1), ("nonce-1", 2), ("nonce-2", 1), ("nonce-2", 2)]


async def test_credentials_refused_are_not_sent_unasked_again() -> None:
    challenger = Challenger(401, Algorithm.SHA_256)
    async with challenged(challenger, credentials=("alice", "secret")) as (uas, uac):
        assert await _messages(uac, uri_of(uas)) == [200]
        challenger.password = "changed"
        # Sent unasked, refused, answered once more, refused: the final 401.
        assert await _messages(uac, uri_of(uas)) == [401]
        challenger.password = "secret"
        assert await _messages(uac, uri_of(uas)) == [200]
        assert _counts(challenger) == [None, 1, 2, 3, None, 4]


async def test_credentials_the_caller_gives_are_sent_as_given() -> None:
    challenger = Challenger(401, Algorithm.SHA_256)
    async with challenged(challenger, credentials=("alice", "secret")) as (uas, uac):
        assert await _messages(uac, uri_of(uas)) == [200]
        challenge = Challenge("test.example", "nonce-1", algorithm=Algorithm.SHA_256, qop=("auth",))
        own = authorize(
            challenge, username="alice", password="secret", method="MESSAGE", uri=uri_of(uas), nc=9
        )
        with anyio.fail_after(BOUND):
            given = await uac.new_request(
                "MESSAGE", uri_of(uas), headers=[("Authorization", str(own))]
            )
            final = await given.wait_final()
        # Accepted as given: the kept challenge was not answered beside it ...
        assert final.status == 200
        assert given.request.headers.get_all("authorization") == [str(own)]
        # ... and is still kept for the next request.
        assert await _messages(uac, uri_of(uas)) == [200]
        assert _counts(challenger) == [None, 1, 9, 2]
