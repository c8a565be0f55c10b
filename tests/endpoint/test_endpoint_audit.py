"""The Endpoint against RFC 3261 sections 8, 9, 12.3, 13, 15 and 22: the audit's findings."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import aclosing

import anyio
import pytest
from tests.dispatcher._peer import UDPPeer, udp_peer

from trio_sip.dispatcher import Dispatcher
from trio_sip.endpoint import DialogState, Endpoint
from trio_sip.message import URI, Request, make_response
from trio_sip.message.digest import Algorithm, Challenge, Credentials, verify
from trio_sip.resolver import Target

from ._helpers import BOUND, answer, running_endpoint, serve, uri_of

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


async def _next_request(peer: UDPPeer, index: int) -> Request:
    message = (await peer.wait_for(index + 1))[index].message
    assert isinstance(message, Request)
    return message


def _from_peer(
    request: Request,
    status: int,
    tag: str,
    peer: UDPPeer,
    headers: list[tuple[str, str]] | None = None,
) -> bytes:
    """The raw peer's answer to ``request``: a Contact on 1xx and 2xx, or ``headers``."""
    if headers is None:
        headers = [("Contact", f"<sip:peer@127.0.0.1:{peer.port}>")] if status < 300 else []
    return bytes(make_response(request, status, to_tag=tag, headers=headers))


# ----- 8.2.2.3: Require --------------------------------------------------------------


@pytest.mark.parametrize("method", ["INVITE", "MESSAGE", "OPTIONS"])
async def test_an_unknown_required_extension_gets_420_with_unsupported(method: str) -> None:
    # 8.2.2.3: "If a UAS does not understand an option-tag listed in a
    # Require header field, it MUST respond ... 420 (Bad Extension). The UAS
    # MUST add an Unsupported header field ... listing those option tags".
    seen: list[Request] = []
    async with (
        running_endpoint(supported=("timer",)) as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, answer, seen)
        with anyio.fail_after(BOUND):
            refused = await uac.request(
                uri_of(uas), method, headers=[("Require", "timer, 100rel"), ("Require", "x-foo")]
            )
            accepted = await uac.request(uri_of(uas), method, headers=[("Require", "Timer")])
        assert refused.status == 420
        assert refused.headers.values("unsupported") == ["100rel", "x-foo"]
        assert accepted.status == 200
        # The application never saw the refused request.
        assert [r.headers.get("require") for r in seen] == (
            [] if method == "OPTIONS" else ["Timer"]
        )
        # Only the accepted INVITE made a dialog.
        assert len(uas.dialogs) == (1 if method == "INVITE" else 0)
        tg.cancel_scope.cancel()


# ----- 13.2.2.4 and 12.3: the early dialogs of an INVITE ------------------------------


async def test_the_answered_dialog_comes_first_and_other_early_dialogs_end() -> None:
    # A forking proxy: one branch rings (an early dialog), another answers.
    # ClientRequest.dialogs promises the 2xx's dialog first (the UserAgent
    # follows dialogs[0]); 13.2.2.4: 64*T1 after the first 2xx "all the early
    # dialogs that have not transitioned to established dialogs are terminated".
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        with anyio.fail_after(BOUND):
            call = await ep.new_request("INVITE", f"sip:x@127.0.0.1:{peer.port}")
            invite = await _next_request(peer, 0)
            source = peer.arrivals[0].source
            await peer.send(_from_peer(invite, 180, "ringing", peer), source)
            await peer.send(_from_peer(invite, 200, "answered", peer), source)
            final = await call.wait_final()
        assert final.to.tag == "answered"
        assert [d.remote_tag for d in call.dialogs] == ["answered", "ringing"]
        assert call.dialogs[0].state is DialogState.CONFIRMED
        await anyio.sleep(40)  # past 64*T1
        assert [d.remote_tag for d in ep.dialogs] == ["answered"]
        assert call.dialogs[1].state is DialogState.TERMINATED
        tg.cancel_scope.cancel()


class _Resolver:
    """Resolves every URI to the same ordered targets (RFC 3263 4.3 failover)."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets

    async def resolve(self, uri: URI, *, transports: Collection[str] | None = None) -> list[Target]:
        return list(self.targets)


@pytest.mark.parametrize("status", [302, 503])
async def test_early_dialogs_end_when_a_redirect_or_failover_follows(status: int) -> None:
    # 12.3: a non-2xx final response to the INVITE ends its early dialogs,
    # also when the Endpoint goes on with a new INVITE (8.1.3.4, RFC 3263 4.3).
    async with (
        anyio.create_task_group() as tg,
        udp_peer(tg) as peer,
        running_endpoint() as callee,
    ):
        tg.start_soon(serve, callee, answer)
        resolver = _Resolver(
            [
                Target("udp", "127.0.0.1", peer.port),
                Target("udp", "127.0.0.1", callee.dispatcher.legs[0].port),
            ]
        )
        async with (
            Dispatcher(["udp:127.0.0.1:0"], resolver=resolver) as disp,
            Endpoint(disp, user="caller") as ep,
        ):
            with anyio.fail_after(BOUND):
                call = await ep.new_request("INVITE", "sip:bob@example.com", follow_redirects=True)
                invite = await _next_request(peer, 0)
                source = peer.arrivals[0].source
                await peer.send(_from_peer(invite, 180, "ringing", peer), source)
                # A redirect to the callee's own address, or a 503: the next target.
                contact = [("Contact", f"<{uri_of(callee)}>")] if status == 302 else []
                await peer.send(_from_peer(invite, status, "ringing", peer, contact), source)
                final = await call.wait_final()
            assert final.status == 200
            (answered,) = ep.dialogs
            assert answered.state is DialogState.CONFIRMED
            assert call.dialogs[0] is answered
            assert call.dialogs[1].state is DialogState.TERMINATED
        tg.cancel_scope.cancel()


# ----- 22.2, 22.3: a proxy's challenge and the UAS's ------------------------------------


async def test_a_proxy_challenge_and_a_uas_challenge_are_both_answered() -> None:
    # A proxy wants Proxy-Authorization (407), then the UAS Authorization
    # (401). The request that finally passes carries both: the retry for the
    # 401 must not drop the credentials that answered the 407 (22.3: the
    # UAC answers each realm, and credentials are reused for their realm).
    seen: list[tuple[str | None, str | None]] = []

    def valid(request: Request, header: str, realm: str) -> Credentials | None:
        value = request.headers.get(header)
        creds = Credentials.parse(value) if value is not None else None
        if creds is None or creds.realm != realm:
            return None
        good = verify(creds, method=request.method, body=request.body, password="secret")
        return creds if good else None

    async def both(ep: Endpoint, request: Request) -> None:
        proxy = valid(request, "Proxy-Authorization", "proxy.example")
        uas = valid(request, "Authorization", "uas.example")
        seen.append((proxy.realm if proxy else None, uas.realm if uas else None))
        if proxy is None:
            challenge = Challenge("proxy.example", "pn", algorithm=Algorithm.SHA_256, qop=("auth",))
            await ep.respond(request, 407, headers=[("Proxy-Authenticate", str(challenge))])
        elif uas is None:
            challenge = Challenge("uas.example", "un", algorithm=Algorithm.MD5, qop=("auth",))
            await ep.respond(request, 401, headers=[("WWW-Authenticate", str(challenge))])
        else:
            await ep.respond(request, 200)

    async with (
        running_endpoint() as uas,
        running_endpoint(credentials=("alice", "secret")) as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, both)
        with anyio.fail_after(BOUND):
            final = await uac.request(uri_of(uas), "MESSAGE")
        assert final.status == 200
        assert seen == [
            (None, None),
            ("proxy.example", None),
            ("proxy.example", "uas.example"),
        ]
        tg.cancel_scope.cancel()


# ----- 15.1.2: a BYE ends the requests still pending in its dialog ----------------------


async def test_a_bye_of_an_early_dialog_ends_the_invite_with_487() -> None:
    # The caller may send BYE in an early dialog (15); the callee answers it
    # 200 and "MUST still respond to any pending requests received for that
    # dialog. It is RECOMMENDED that a 487 ... be generated" (15.1.2).
    ended: list[str] = []

    async def ring(ep: Endpoint, request: Request) -> None:
        ep.on_cancelled(request, lambda: ended.append(request.method))
        await ep.respond(request, 180)

    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, ring)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            async with aclosing(call.provisionals()) as provisionals:
                async for provisional in provisionals:
                    assert provisional.status == 180
                    break
            (early,) = call.dialogs
            bye = await uac.request(early, "BYE")
            final = await call.wait_final()
        assert bye.status == 200
        assert final.status == 487
        assert ended == ["INVITE"]  # the application hears of it as of a CANCEL
        assert uas.dialogs == ()
        tg.cancel_scope.cancel()


async def test_a_bye_ends_a_pending_reinvite_with_487() -> None:
    async def slow_reinvite(ep: Endpoint, request: Request) -> None:
        if request.method == "INVITE" and request.to.tag is not None:
            await anyio.sleep_forever()  # the re-INVITE is never answered
        await answer(ep, request, ring=False)

    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, slow_reinvite)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            assert (await call.wait_final()).status == 200
            reinvite = await uac.new_request("INVITE", call.dialogs[0])
            await anyio.sleep(1)
            # The caller gives up while its re-INVITE is pending: a BYE.
            assert (await uac.request(call.dialogs[0], "BYE")).status == 200
            final = await reinvite.wait_final()
        assert final.status == 487
        assert uas.dialogs == ()
        tg.cancel_scope.cancel()
