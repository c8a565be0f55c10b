"""Whole transactions on a virtual timeline: exact send and timeout times.

The driver (tx_timeline.Timeline) keeps the armed timers and fires the
earliest; nothing sleeps and no event loop runs.
"""

from __future__ import annotations

import pytest
from tx_support import request, response
from tx_timeline import Timeline

from trio_sip.message import make_ack
from trio_sip.transaction import (
    AckReceived,
    CancelSent,
    ClientInviteState,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Failure,
    InformTU,
    PassToTU,
    RequestRetransmitted,
    Retransmit,
    SendAck,
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Terminate,
    Timer,
    TimerConfig,
    Transmit,
    response_from_tu,
    response_received,
)


def _informs(tl: Timeline) -> list[tuple[float, InformTU]]:
    return [(t, a) for t, a in tl.log if isinstance(a, InformTU)]


# ----- client INVITE ---------------------------------------------------------------


def test_client_invite_udp_no_answer() -> None:
    tl = Timeline(ClientInviteTransaction(request(), reliable=False))
    tl.start()
    tl.run_out()
    assert tl.times_of(Retransmit) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert _informs(tl) == [(32.0, InformTU(Failure.TIMEOUT, Timer.B))]
    assert tl.terminated_at == 32.0


def test_client_invite_tcp_no_answer() -> None:
    tl = Timeline(ClientInviteTransaction(request(transport="TCP"), reliable=True))
    tl.start()
    tl.run_out()
    assert tl.times_of(Retransmit) == []
    assert tl.times_of(Transmit) == [0.0]
    assert _informs(tl) == [(32.0, InformTU(Failure.TIMEOUT, Timer.B))]
    assert tl.terminated_at == 32.0


def test_client_invite_follows_t1() -> None:
    tl = Timeline(ClientInviteTransaction(request(), reliable=False, config=TimerConfig(t1=0.1)))
    tl.start()
    tl.run_out()
    assert tl.times_of(Retransmit) == pytest.approx([0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    assert tl.terminated_at == pytest.approx(6.4)


def test_client_invite_rejected_acks_every_retransmission() -> None:
    invite = request()
    m = ClientInviteTransaction(invite, reliable=False)
    tl = Timeline(m)
    tl.start()
    tl.advance(1.0)
    tl.feed(response_received(response(invite, 180)))
    tl.advance(5.0)
    r486 = response(invite, 486)
    tl.feed(response_received(r486))
    for t in (6.0, 8.0):
        tl.advance(t)
        tl.feed(response_received(r486))  # the server's Timer G retransmissions
    tl.run_out()
    assert tl.times_of(Retransmit) == [0.5]  # none after the 1xx
    assert tl.times_of(SendAck) == [5.0, 6.0, 8.0]
    assert [a for _, a in tl.log if isinstance(a, PassToTU)][-1] == PassToTU(r486)
    assert len([a for _, a in tl.log if isinstance(a, PassToTU)]) == 2  # 180 and 486 once
    assert _informs(tl) == []
    assert tl.terminated_at == 37.0  # Timer D: 32 s after the 486


def test_client_invite_accepted_passes_every_2xx() -> None:
    invite = request()
    tl = Timeline(ClientInviteTransaction(invite, reliable=False))
    tl.start()
    tl.advance(2.0)
    first, fork = response(invite, 200), response(invite, 200, to_tag="fork2")
    tl.feed(response_received(first))
    assert tl.machine.state is ClientInviteState.ACCEPTED
    tl.advance(3.0)
    tl.feed(response_received(fork))
    tl.feed(response_received(first))  # a retransmission goes up as well
    tl.run_out()
    passed = [a.message for _, a in tl.log if isinstance(a, PassToTU)]
    assert passed == [first, fork, first]
    assert tl.times_of(SendAck) == []  # the TU acknowledges 2xx itself
    assert tl.terminated_at == 34.0  # Timer M


def test_client_invite_proxy_timer_c() -> None:
    invite = request()
    tl = Timeline(ClientInviteTransaction(invite, reliable=False, timer_c=True))
    tl.start()
    tl.advance(1.0)
    tl.feed(response_received(response(invite, 180)))
    tl.advance(100.0)
    tl.feed(response_received(response(invite, 183)))  # resets C to 100 + 181
    tl.advance(280.0)
    assert _informs(tl) == []
    tl.advance(281.0)
    assert _informs(tl) == [(281.0, InformTU(Failure.TIMER_C, Timer.C))]
    assert tl.machine.state is ClientInviteState.PROCEEDING
    tl.feed(CancelSent())  # the proxy cancels the branch (16.8)
    tl.run_out()  # ... and nobody answers
    assert _informs(tl)[-1] == (313.0, InformTU(Failure.TIMEOUT, Timer.B))
    assert tl.terminated_at == 313.0


def test_client_invite_cancelled_then_487() -> None:
    invite = request()
    tl = Timeline(ClientInviteTransaction(invite, reliable=False))
    tl.start()
    tl.advance(0.2)
    tl.feed(response_received(response(invite, 180)))
    tl.advance(10.0)
    tl.feed(CancelSent())
    tl.advance(10.1)
    tl.feed(response_received(response(invite, 487)))
    tl.run_out()
    assert _informs(tl) == []
    assert tl.times_of(SendAck) == [10.1]
    assert tl.terminated_at == pytest.approx(42.1)


def test_client_invite_proceeding_waits_without_timer_c() -> None:
    # 17.1.1.2 gives Proceeding no timeout: only a final response, a CANCEL
    # (9.1) or the proxy's Timer C ends it.
    invite = request()
    tl = Timeline(ClientInviteTransaction(invite, reliable=False))
    tl.start()
    tl.feed(response_received(response(invite, 100)))
    tl.run_out()
    assert tl.machine.state is ClientInviteState.PROCEEDING
    assert tl.terminated_at is None


# ----- client non-INVITE -----------------------------------------------------------


def test_client_non_invite_udp_no_answer() -> None:
    tl = Timeline(ClientNonInviteTransaction(request("OPTIONS"), reliable=False))
    tl.start()
    tl.run_out()
    assert tl.times_of(Retransmit) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert _informs(tl) == [(32.0, InformTU(Failure.TIMEOUT, Timer.F))]
    assert tl.terminated_at == 32.0


def test_client_non_invite_tcp_no_answer() -> None:
    tl = Timeline(ClientNonInviteTransaction(request("OPTIONS", transport="TCP"), reliable=True))
    tl.start()
    tl.run_out()
    assert tl.times_of(Retransmit) == []
    assert tl.terminated_at == 32.0


def test_client_non_invite_proceeding_retransmits_every_t2() -> None:
    req = request("REGISTER")
    tl = Timeline(ClientNonInviteTransaction(req, reliable=False))
    tl.start()
    tl.advance(0.7)
    tl.feed(response_received(response(req, 100)))
    tl.run_out()
    # E was armed for 1.0 s at 0.5; from then on T2 (17.1.2.2).
    assert tl.times_of(Retransmit) == [0.5, 1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert tl.terminated_at == 32.0


def test_client_non_invite_final_then_timer_k() -> None:
    req = request("BYE")
    tl = Timeline(ClientNonInviteTransaction(req, reliable=False))
    tl.start()
    tl.advance(2.25)
    r200 = response(req, 200)
    tl.feed(response_received(r200))
    tl.advance(3.0)
    assert tl.feed(response_received(r200)) == []  # absorbed in Completed
    tl.run_out()
    assert tl.times_of(Retransmit) == [0.5, 1.5]
    assert tl.terminated_at == 7.25  # T4 later


def test_client_non_invite_small_t2() -> None:
    cfg = TimerConfig(t1=0.5, t2=1.0)
    tl = Timeline(ClientNonInviteTransaction(request("OPTIONS"), reliable=False, config=cfg))
    tl.start()
    tl.advance(5.0)
    assert tl.times_of(Retransmit) == [0.5, 1.5, 2.5, 3.5, 4.5]


# ----- server INVITE ---------------------------------------------------------------


def test_server_invite_non_2xx_retransmitted_until_ack() -> None:
    invite = request()
    m = ServerInviteTransaction(invite, reliable=False)
    tl = Timeline(m)
    tl.start()
    tl.advance(1.0)
    r486 = response(invite, 486)
    tl.feed(response_from_tu(r486))
    tl.advance(10.0)
    assert tl.feed(RequestRetransmitted(invite)) == [Retransmit(r486)]
    tl.advance(20.0)
    actions = tl.feed(AckReceived(make_ack(invite, r486)))
    assert m.state is ServerInviteState.CONFIRMED
    assert not any(isinstance(a, PassToTU) for a in actions)  # absorbed (17.2.1)
    tl.advance(22.0)
    assert tl.feed(AckReceived(make_ack(invite, r486))) == []
    tl.run_out()
    g_times = [t for t, a in tl.log if isinstance(a, Retransmit) and t != 10.0]
    assert g_times == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5]
    assert _informs(tl) == []
    assert tl.terminated_at == 25.0  # Timer I = T4 after the ACK


def test_server_invite_non_2xx_without_ack_times_out() -> None:
    invite = request()
    tl = Timeline(ServerInviteTransaction(invite, reliable=False))
    tl.start()
    tl.advance(1.0)
    tl.feed(response_from_tu(response(invite, 603)))
    tl.run_out()
    assert tl.times_of(Retransmit) == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert _informs(tl) == [(33.0, InformTU(Failure.TIMEOUT, Timer.H))]
    assert tl.terminated_at == 33.0


def test_server_invite_non_2xx_over_tcp() -> None:
    invite = request(transport="TCP")
    tl = Timeline(ServerInviteTransaction(invite, reliable=True))
    tl.start()
    tl.feed(response_from_tu(response(invite, 486)))
    tl.run_out()
    assert tl.times_of(Retransmit) == []
    assert _informs(tl) == [(32.0, InformTU(Failure.TIMEOUT, Timer.H))]


def test_server_invite_2xx_accepted_then_timer_l() -> None:
    invite = request()
    m = ServerInviteTransaction(invite, reliable=False)
    tl = Timeline(m)
    start = tl.start()
    assert [type(a) for a in start] == [Transmit, PassToTU]  # 100 Trying, INVITE up
    tl.advance(2.0)
    r200 = response(invite, 200)
    tl.feed(response_from_tu(r200))
    assert m.state is ServerInviteState.ACCEPTED
    # The TU (13.3.1.4) retransmits its 2xx; RFC 6026 sends them through.
    for t in (2.5, 3.5, 5.5):
        tl.advance(t)
        assert tl.feed(response_from_tu(r200)) == [Transmit(r200)]
    tl.advance(6.0)
    assert tl.feed(RequestRetransmitted(invite)) == []  # absorbed, TU not bothered
    ack = request("ACK", to_tag="a6c85cf")
    assert tl.feed(AckReceived(ack)) == [PassToTU(ack)]
    tl.run_out()
    assert tl.times_of(Retransmit) == []  # the transaction never retransmits a 2xx
    assert tl.terminated_at == 34.0  # Timer L: 64*T1 after the 2xx
    assert tl.log[-1] == (34.0, Terminate())


def test_server_invite_proceeding_answers_retransmissions_with_latest_1xx() -> None:
    invite = request()
    tl = Timeline(ServerInviteTransaction(invite, reliable=False))
    tl.start()
    trying = tl.machine.last_response  # type: ignore[union-attr]
    assert tl.feed(RequestRetransmitted(invite)) == [Retransmit(trying)]  # type: ignore[arg-type]
    r180 = response(invite, 180)
    tl.feed(response_from_tu(r180))
    assert tl.feed(RequestRetransmitted(invite)) == [Retransmit(r180)]


# ----- server non-INVITE -----------------------------------------------------------


def test_server_non_invite_flow() -> None:
    req = request("OPTIONS")
    tl = Timeline(ServerNonInviteTransaction(req, reliable=False))
    assert tl.start() == [PassToTU(req)]
    assert tl.feed(RequestRetransmitted(req)) == []  # Trying: discarded
    tl.advance(1.0)
    r200 = response(req, 200)
    tl.feed(response_from_tu(r200))
    tl.advance(5.0)
    assert tl.feed(RequestRetransmitted(req)) == [Retransmit(r200)]
    assert tl.feed(response_from_tu(response(req, 500))) == []  # 17.2.2: discarded
    tl.run_out()
    assert tl.terminated_at == 33.0  # Timer J = 64*T1


def test_server_non_invite_over_tcp_ends_with_the_final_response() -> None:
    req = request("OPTIONS", transport="TCP")
    tl = Timeline(ServerNonInviteTransaction(req, reliable=True))
    tl.start()
    tl.feed(response_from_tu(response(req, 200)))
    assert tl.terminated_at == 0.0
