"""The Endpoint against raw peers: RFC timers, 2xx/ACK handling, CANCEL race, forking.

Virtual time on both backends: a 32-second Timer B takes milliseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import pytest
from tests.dispatcher._peer import UDPPeer, raw_request, udp_peer

from trio_sip.endpoint import DialogState, Endpoint
from trio_sip.endpoint.scheduler import COARSE_GRID
from trio_sip.errors import SIPError
from trio_sip.message import (
    Message,
    NameAddr,
    Request,
    Response,
    make_ack,
    make_response,
    parse_message,
)
from trio_sip.message import via as via_module
from trio_sip.transaction import Timer

from ._helpers import BOUND, running_endpoint, serve, uri_of

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

# RFC 3261 17.1.1.2 and 17.1.2.2 with T1 = 0.5 s, T2 = 4 s: when the request leaves.
INVITE_TIMES = [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
NON_INVITE_TIMES = [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
# 13.3.1.4: the 2xx goes again at T1, 2*T1 ... capped at T2, for 64*T1.
TWO_XX_TIMES = [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


@dataclass
class TCPSink:
    """A TCP listener that reads everything and never answers."""

    port: int
    chunks: list[tuple[float, bytes]] = field(default_factory=list)


@asynccontextmanager
async def tcp_sink(tg: anyio.abc.TaskGroup) -> AsyncIterator[TCPSink]:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        sink = TCPSink(port)

        async def handle(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                async for data in stream:
                    sink.chunks.append((anyio.current_time(), data))

        tg.start_soon(listener.serve, handle)
        yield sink


@pytest.mark.parametrize(
    ("method", "times"), [("INVITE", INVITE_TIMES), ("OPTIONS", NON_INVITE_TIMES)]
)
async def test_timer_b_and_f_over_udp(method: str, times: list[float]) -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        peer.start = start = anyio.current_time()
        with anyio.fail_after(BOUND):
            call = await ep.new_request(method, f"sip:x@127.0.0.1:{peer.port}")
            final = await call.wait_final()
        assert final.status == 408
        assert anyio.current_time() - start == pytest.approx(32.0)
        assert peer.times() == times
        assert {a.message.top_via.branch for a in peer.arrivals} == {call.request.top_via.branch}
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
async def test_timer_b_and_f_over_tcp(method: str) -> None:
    async with anyio.create_task_group() as tg, tcp_sink(tg) as sink, running_endpoint("tcp") as ep:
        start = anyio.current_time()
        with anyio.fail_after(BOUND):
            call = await ep.new_request(method, f"sip:x@127.0.0.1:{sink.port};transport=tcp")
            final = await call.wait_final()
        # Nothing is retransmitted over TCP, but the transaction still times out.
        assert final.status == 408
        assert anyio.current_time() - start == pytest.approx(32.0)
        data = b"".join(chunk for _, chunk in sink.chunks)
        assert data.count(f"{method} sip:".encode()) == 1
        tg.cancel_scope.cancel()


def _answer(request: Request, status: int, tag: str, peer_port: int) -> bytes:
    contact = [("Contact", f"<sip:peer@127.0.0.1:{peer_port}>")] if status < 300 else []
    return bytes(make_response(request, status, to_tag=tag, headers=contact))


def _ack_2xx(ok: Response, port: int, peer_port: int, branch: str, body: str = "") -> bytes:
    """The peer's ACK for the 2xx ``ok`` (a transaction of its own: ``branch``)."""
    content = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"ACK sip:ep@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer_port};branch={branch}\r\n"
        f"From: {ok.headers.get('from')}\r\nTo: {ok.headers.get('to')}\r\n"
        f"Call-ID: {ok.call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
        f"{content}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


async def _next(index: int, peer: UDPPeer) -> Request:
    """The ``index``-th packet the peer got, once it is there (a request)."""
    arrivals = await peer.wait_for(index + 1)
    message = arrivals[index].message
    assert isinstance(message, Request)
    return message


async def test_retransmitted_2xx_is_acked_again() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        with anyio.fail_after(BOUND):
            call = await ep.new_request("INVITE", f"sip:x@127.0.0.1:{peer.port}")
            invite = await _next(0, peer)
            source = peer.arrivals[0].source
            ok = _answer(invite, 200, "t1", peer.port)
            await peer.send(ok, source)
            assert (await call.wait_final()).status == 200
            ack1 = await _next(1, peer)
            await anyio.sleep(1)
            await peer.send(ok, source)  # the UAS did not see our ACK
            ack2 = await _next(2, peer)
            await anyio.sleep(40)  # past Timer M: the transaction is gone, the dialog stays
            await peer.send(ok, source)
            ack3 = await _next(3, peer)
        for ack in (ack1, ack2, ack3):
            assert ack.method == "ACK"
            assert ack.cseq.seq == invite.cseq.seq
            assert ack.to.tag == "t1"
            assert ack.uri.port == peer.port  # 13.2.2.4: to the remote target
        assert ack1.top_via.branch != invite.top_via.branch  # 2xx ACK: own transaction
        assert ack2.top_via.branch == ack1.top_via.branch
        assert len(peer.arrivals) == 4
        tg.cancel_scope.cancel()


async def test_missing_ack_retransmits_2xx_then_byes() -> None:
    async def answer_ok(ep: Endpoint, request: Request) -> None:
        await ep.respond(request, 200)

    async with (
        anyio.create_task_group() as tg,
        udp_peer(tg) as peer,
        running_endpoint() as ep,
    ):
        tg.start_soon(serve, ep, answer_ok)
        leg = ep.dispatcher.legs[0]
        peer.start = anyio.current_time()
        await peer.send(raw_request("INVITE", peer.address, branch="z9hG4bKnoack"), leg.address)
        with anyio.fail_after(BOUND):
            arrivals = await peer.wait_for(len(TWO_XX_TIMES) + 1)
        oks = [a for a in arrivals if isinstance(a.message, Response)]
        byes = [a for a in arrivals if isinstance(a.message, Request)]
        assert [round(a.time - peer.start, 6) for a in oks] == TWO_XX_TIMES
        assert [a.message.status for a in oks if isinstance(a.message, Response)] == [200] * len(
            oks
        )
        assert len(byes) == 1
        bye = byes[0].message
        assert isinstance(bye, Request)
        assert bye.method == "BYE"
        assert byes[0].time - peer.start == pytest.approx(32.0)
        assert bye.to.tag == "a1"  # the caller's tag is the remote one
        assert ep.dialogs == ()
        tg.cancel_scope.cancel()


async def test_ack_stops_2xx_retransmission() -> None:
    async def answer_ok(ep: Endpoint, request: Request) -> None:
        await ep.respond(request, 200)

    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        tg.start_soon(serve, ep, answer_ok)
        leg = ep.dispatcher.legs[0]
        await peer.send(raw_request("INVITE", peer.address, branch="z9hG4bKack"), leg.address)
        with anyio.fail_after(BOUND):
            ok = (await peer.wait_for(1))[0].message
        assert isinstance(ok, Response)
        await peer.send(_ack_2xx(ok, leg.port, peer.port, "z9hG4bKack2"), leg.address)
        await anyio.sleep(60)
        assert len(peer.arrivals) == 1  # neither a retransmission nor a BYE
        (dialog,) = ep.dialogs
        assert dialog.state is DialogState.CONFIRMED
        assert ep.statistics().pending_2xx == 0
        tg.cancel_scope.cancel()


async def test_cancel_crossing_200_acks_and_byes() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        with anyio.fail_after(BOUND):
            call = await ep.new_request("INVITE", f"sip:x@127.0.0.1:{peer.port}")
            invite = await _next(0, peer)
            source = peer.arrivals[0].source
            await peer.send(_answer(invite, 180, "t1", peer.port), source)
            await anyio.sleep(0.1)
            await call.cancel()
            cancel = await _next(1, peer)
            # The 200 for the INVITE was already on its way: CANCEL gets 200, no 487.
            await peer.send(_answer(invite, 200, "t1", peer.port), source)
            await peer.send(bytes(make_response(cancel, 200, to_tag="t1")), source)
            final = await call.wait_final()
            ack = await _next(2, peer)
            bye = await _next(3, peer)
            await peer.send(bytes(make_response(bye, 200)), source)
            await anyio.sleep(1)
        assert cancel.method == "CANCEL"
        assert cancel.top_via.branch == invite.top_via.branch
        assert final.status == 200
        assert (ack.method, bye.method) == ("ACK", "BYE")
        assert bye.to.tag == "t1"
        assert ep.dialogs == ()
        tg.cancel_scope.cancel()


async def test_cancel_waits_for_a_provisional() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        with anyio.fail_after(BOUND):
            call = await ep.new_request("INVITE", f"sip:x@127.0.0.1:{peer.port}")
            invite = await _next(0, peer)
            source = peer.arrivals[0].source
            await call.cancel()
            await anyio.sleep(0.2)
            # 9.1: no CANCEL before a provisional response (only INVITE copies so far).
            methods = {a.message.method for a in peer.arrivals if isinstance(a.message, Request)}
            assert methods == {"INVITE"}
            assert len(peer.arrivals) >= 1
            await peer.send(_answer(invite, 100, "t1", peer.port), source)
            while True:
                last = (await peer.wait_for(len(peer.arrivals) + 1))[-1].message
                if isinstance(last, Request) and last.method == "CANCEL":
                    break
            await peer.send(bytes(make_response(last, 200)), source)
            await peer.send(_answer(invite, 487, "t1", peer.port), source)
            final = await call.wait_final()
        assert final.status == 487
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("keep", [False, True])
async def test_forking_with_two_2xx(keep: bool) -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        with anyio.fail_after(BOUND):
            call = await ep.new_request("INVITE", f"sip:x@127.0.0.1:{peer.port}", keep_forks=keep)
            invite = await _next(0, peer)
            source = peer.arrivals[0].source
            await peer.send(_answer(invite, 200, "fork1", peer.port), source)
            await peer.send(_answer(invite, 200, "fork2", peer.port), source)
            final = await call.wait_final()
            await anyio.sleep(1)
        assert final.to.tag == "fork1"
        sent = [a.message for a in peer.arrivals[1:]]
        acks = sorted(m.to.tag or "" for m in sent if isinstance(m, Request) and m.method == "ACK")
        byes = [m.to.tag for m in sent if isinstance(m, Request) and m.method == "BYE"]
        assert acks == ["fork1", "fork2"]
        assert [d.remote_tag for d in call.dialogs] == ["fork1", "fork2"]
        if keep:
            assert byes == []
            assert [d.remote_tag for d in call.forks] == ["fork2"]
            assert len(ep.dialogs) == 2
        else:
            assert byes[:1] == ["fork2"]
            assert [d.remote_tag for d in ep.dialogs] == ["fork1"]
        tg.cancel_scope.cancel()


async def test_2xx_parse_sanity() -> None:
    # The raw peer's answers are what a real UAS sends: they parse back.
    req = parse_message(raw_request("INVITE", ("127.0.0.1", 5), branch="z9hG4bKx"))
    assert isinstance(req, Request)
    assert parse_message(_answer(req, 200, "t", 5)).to.tag == "t"


@pytest.mark.parametrize("branch", ["z9hG4bKrfc3261", "rfc2543-1"], ids=["rfc3261", "rfc2543"])
async def test_ack_for_non_2xx_stops_timer_g(branch: str) -> None:
    async def busy(ep: Endpoint, request: Request) -> None:
        await ep.respond(request, 486)

    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        tg.start_soon(serve, ep, busy)
        leg = ep.dispatcher.legs[0]
        data = raw_request("INVITE", peer.address, branch=branch)
        invite = parse_message(data)
        assert isinstance(invite, Request)
        peer.start = anyio.current_time()
        await peer.send(data, leg.address)
        with anyio.fail_after(BOUND):
            arrivals = await peer.wait_for(3)  # 486 at 0, 0.5, 1.5 (Timer G)
        assert peer.times() == [0, 0.5, 1.5]
        response = arrivals[0].message
        assert isinstance(response, Response)
        assert response.status == 486
        # The ACK carries the response's To tag; an RFC 2543 client's ACK is
        # matched by it (17.2.3), an RFC 3261 one by the INVITE's branch.
        await peer.send(bytes(make_ack(invite, response)), leg.address)
        await anyio.sleep(40)
        assert peer.times() == [0, 0.5, 1.5]
        assert ep.statistics().server_transactions == 0
        tg.cancel_scope.cancel()


async def test_wait_ack_gives_the_ack_or_none() -> None:
    results: list[Request | None] = []
    ready = [anyio.Event(), anyio.Event()]

    async def answer_and_wait(ep: Endpoint, request: Request) -> None:
        ok = await ep.respond(request, 200)
        results.append(await ep.wait_ack(ok))
        ready[len(results) - 1].set()

    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        tg.start_soon(serve, ep, answer_and_wait)
        leg = ep.dispatcher.legs[0]
        # A caller that never ACKs: None after 64*T1, and the dialog ends.
        await peer.send(raw_request("INVITE", peer.address, branch="z9hG4bKw1"), leg.address)
        with anyio.fail_after(BOUND):
            await ready[0].wait()
        assert results == [None]
        # A caller that ACKs with a body (late offer): the ACK itself.
        await peer.send(
            raw_request("INVITE", peer.address, branch="z9hG4bKw2", call_id="c2"), leg.address
        )
        with anyio.fail_after(BOUND):
            ok: Message | None = None
            while not (isinstance(ok, Response) and ok.call_id == "c2"):
                # Skip the first call's BYE retransmissions (nobody answers them).
                ok = (await peer.wait_for(len(peer.arrivals) + 1))[-1].message
            assert isinstance(ok, Response)
            ack = _ack_2xx(ok, leg.port, peer.port, "z9hG4bKw3", body="v=0\n")
            await peer.send(ack, leg.address)
            await ready[1].wait()
        second = results[1]
        assert second is not None
        assert second.body == b"v=0\n"
        tg.cancel_scope.cancel()


async def test_cancel_without_invite_gets_481() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        leg = ep.dispatcher.legs[0]
        await peer.send(raw_request("CANCEL", peer.address, branch="z9hG4bKlost"), leg.address)
        with anyio.fail_after(BOUND):
            (arrival,) = await peer.wait_for(1)
        assert isinstance(arrival.message, Response)
        assert arrival.message.status == 481
        tg.cancel_scope.cancel()


async def test_full_queue_gets_503_with_retry_after() -> None:
    async with (
        anyio.create_task_group() as tg,
        udp_peer(tg) as peer,
        running_endpoint(queue_size=1) as ep,
    ):
        leg = ep.dispatcher.legs[0]
        for i in range(2):
            data = raw_request("MESSAGE", peer.address, branch=f"z9hG4bKq{i}", call_id=f"q{i}")
            await peer.send(data, leg.address)
        with anyio.fail_after(BOUND):
            (arrival,) = await peer.wait_for(1)
        response = arrival.message
        assert isinstance(response, Response)
        assert response.status == 503
        assert response.call_id == "q1"
        assert response.headers.get("retry-after") is not None
        assert ep.statistics().incoming_queued == 1
        tg.cancel_scope.cancel()


async def test_the_ack_is_kept_while_the_invite_transaction_lives_then_forgotten() -> None:
    # wait_ack after the ACK arrived still gives it, until the INVITE's
    # transaction ends (Timer L, 64*T1 after the 2xx, RFC 6026); then the
    # 2xx and its ACK are gone, though the dialog lives on.
    answered: list[Response] = []

    async def answer(ep: Endpoint, request: Request) -> None:
        answered.append(await ep.respond(request, 200))

    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        tg.start_soon(serve, ep, answer)
        leg = ep.dispatcher.legs[0]
        invite = raw_request("INVITE", peer.address, branch="z9hG4bKk1", call_id="k1")
        await peer.send(invite, leg.address)
        with anyio.fail_after(BOUND):
            (arrival,) = await peer.wait_for(1)
        ok = arrival.message
        assert isinstance(ok, Response)
        assert ok.status == 200
        await peer.send(_ack_2xx(ok, leg.port, peer.port, "z9hG4bKk2"), leg.address)
        await anyio.sleep(1)
        got = await ep.wait_ack(answered[0])
        assert got is not None
        assert got.method == "ACK"
        assert got.call_id == "k1"
        await anyio.sleep(40)  # past Timer L
        assert ep.statistics().server_transactions == 0
        with pytest.raises(SIPError, match="no 2xx"):
            await ep.wait_ack(answered[0])
        assert ep._answered == {}
        (dialog,) = ep.dialogs
        assert dialog.state is DialogState.CONFIRMED
        tg.cancel_scope.cancel()


async def test_a_lingering_transaction_ends_without_parsing_its_request_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Answered, an INVITE and a BYE wait out Timers L and J with their parsed
    # views dropped; at the end each is unfiled under the key it was filed
    # with, not one derived from its Via again (a parse per transaction end,
    # two per call, under load).
    async with running_endpoint() as uas, running_endpoint() as uac:

        def answer(request: Request) -> None:
            uas.respond_nowait(request, 200)

        uas.set_request_handler(answer)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            await call.wait_final()
            bye = await uac.new_request("BYE", call.dialogs[0])
            assert (await bye.wait_final()).status == 200
        assert uas.statistics().server_transactions == 2
        parsed: list[str] = []
        real_parse = via_module.Via.parse.__func__  # type: ignore[attr-defined]

        def counting_parse(cls: type[via_module.Via], text: str) -> via_module.Via:
            parsed.append(text)
            return real_parse(cls, text)  # type: ignore[no-any-return]

        monkeypatch.setattr(via_module.Via, "parse", classmethod(counting_parse))
        await anyio.sleep(40)  # past 64*T1
        assert uas.statistics().server_transactions == 0
        assert parsed == []


async def test_a_lingering_transaction_files_no_timer() -> None:
    # Its wait timer (J) is on the Scheduler's grid only, not in the
    # transaction's own table: a table per lingering transaction was one
    # more object for the garbage collector, for 64*T1, two a call.
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:
        ep.set_request_handler(lambda request: ep.respond_nowait(request, 200))
        leg = ep.dispatcher.legs[0]
        await peer.send(raw_request("MESSAGE", peer.address, branch="z9hG4bKfiled"), leg.address)
        with anyio.fail_after(BOUND):
            await peer.wait_for(1)
        (tx,) = ep._server.values()
        assert tx.machine.armed_timers == {Timer.J}
        assert tx.timers == {}
        await anyio.sleep(32 + COARSE_GRID)
        assert ep.statistics().server_transactions == 0
        tg.cancel_scope.cancel()


async def test_timer_j_ends_the_transaction_late_never_early() -> None:
    # Timer J (64*T1 over UDP) keeps an answered non-INVITE transaction to
    # absorb retransmissions. It runs on the Scheduler's coarse grid: a
    # retransmission just before 64*T1 is still answered from the
    # transaction (the handler sees the request once), and the transaction
    # is gone at most COARSE_GRID after.
    seen: list[str] = []
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:

        def answer(request: Request) -> None:
            seen.append(request.method)
            ep.respond_nowait(request, 200)

        ep.set_request_handler(answer)
        leg = ep.dispatcher.legs[0]
        data = raw_request("MESSAGE", peer.address, branch="z9hG4bKtimerj")
        peer.start = anyio.current_time()
        await peer.send(data, leg.address)
        with anyio.fail_after(BOUND):
            await peer.wait_for(1)
        await anyio.sleep(31.99)
        await peer.send(data, leg.address)
        with anyio.fail_after(BOUND):
            await peer.wait_for(2)
        assert seen == ["MESSAGE"]
        assert ep.statistics().server_transactions == 1
        await anyio.sleep(0.01 + COARSE_GRID)
        assert ep.statistics().server_transactions == 0
        tg.cancel_scope.cancel()


async def test_dialogs_on_one_leg_share_our_contact() -> None:
    # Every dialog answered on a leg has the same Contact: made once, shared
    # (a NameAddr is immutable), so that an ended call lingering 64*T1 does
    # not hold a copy of its own.
    invites: list[Request] = []
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer, running_endpoint() as ep:

        def answer(request: Request) -> None:
            invites.append(request)
            ep.respond_nowait(request, 200)

        ep.set_request_handler(answer)
        leg = ep.dispatcher.legs[0]
        for n in (1, 2):
            invite = raw_request("INVITE", peer.address, branch=f"z9hG4bKc{n}", call_id=f"c{n}")
            await peer.send(invite, leg.address)
        with anyio.fail_after(BOUND):
            arrivals = await peer.wait_for(2)
        first, second = (ep.dialog_of(invite) for invite in invites)
        assert first is not None
        assert second is not None
        assert first is not second
        assert first.local_contact is second.local_contact
        assert first.local_contact == NameAddr(leg.contact_uri(ep.user))
        for arrival in arrivals:
            assert isinstance(arrival.message, Response)
            assert arrival.message.contacts == (first.local_contact,)
        tg.cancel_scope.cancel()


async def test_an_ended_dialog_leaves_its_lingering_transactions_light() -> None:
    # After the BYE the INVITE and BYE transactions wait out Timers L and J
    # to absorb retransmissions; they need neither the dialog nor the 2xx's
    # ACK (wait_ack refuses an ended dialog), which would otherwise live as
    # long, objects the garbage collector walks again and again, a few a call.
    answered: list[Response] = []
    async with running_endpoint() as uas, running_endpoint() as uac:

        def answer(request: Request) -> None:
            answered.append(uas.respond_nowait(request, 200))

        uas.set_request_handler(answer)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            assert (await call.wait_final()).status == 200
            assert await uas.wait_ack(answered[0]) is not None  # the ACK is in
            (dialog,) = uas.dialogs
            bye = await uac.new_request("BYE", call.dialogs[0])
            assert (await bye.wait_final()).status == 200
        assert dialog.state is DialogState.TERMINATED
        assert uas.dialogs == ()
        lingering = list(uas._server.values())
        assert len(lingering) == 2
        assert [tx.dialog for tx in lingering] == [None, None]
        assert [tx.answered for tx in lingering] == [None, None]
        with pytest.raises(SIPError, match="no 2xx"):
            await uas.wait_ack(answered[0])
        await anyio.sleep(40)  # past 64*T1: they end as before
        assert uas.statistics().server_transactions == 0
        assert uas._answered == {}
