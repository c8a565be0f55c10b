"""Every entry of every transition table, and what the tables leave out.

Each case brings a machine (unreliable transport, RFC default timers) into
the entry's state, feeds one event of the entry's trigger, and checks the
next state and the exact actions, timer delays included. A test checks that
the cases cover the tables exactly, so a new table entry needs a case.
"""

from __future__ import annotations

import enum
import gc
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from tx_support import request, response

from trio_sip.message import Request, Response, make_ack
from trio_sip.transaction import (
    MACHINES,
    TRANSITION_NOTES,
    AckReceived,
    Action,
    ArmTimer,
    CancelSent,
    CancelTimer,
    ClientInviteState,
    ClientInviteTransaction,
    ClientNonInviteState,
    ClientNonInviteTransaction,
    Event,
    Failure,
    FinalNon2xxReceived,
    InformTU,
    MachineKind,
    PassToTU,
    ProvisionalReceived,
    RequestRetransmitted,
    Retransmit,
    SendAck,
    SendFinalNon2xx,
    SendProvisional,
    SendSuccess,
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteState,
    ServerNonInviteTransaction,
    SuccessReceived,
    Terminate,
    Timer,
    TimerFired,
    Transaction,
    TransactionUsageError,
    Transmit,
    TransportFailed,
    Trigger,
    TUEvent,
    client_transaction,
    response_from_tu,
    response_received,
    server_transaction,
)
from trio_sip.transaction.diagram import transitions

A, B, C, D, E, F, G, H, I, J, K, L, M = (  # noqa: E741 - the RFC's names
    Timer.A,
    Timer.B,
    Timer.C,
    Timer.D,
    Timer.E,
    Timer.F,
    Timer.G,
    Timer.H,
    Timer.I,
    Timer.J,
    Timer.K,
    Timer.L,
    Timer.M,
)
CI, CN, SI, SN = ClientInviteState, ClientNonInviteState, ServerInviteState, ServerNonInviteState


class Ctx:
    """A machine of one kind plus the messages the cases feed it."""

    def __init__(self, kind: MachineKind) -> None:
        self.kind = kind
        method = (
            "INVITE" if kind in (MachineKind.CLIENT_INVITE, MachineKind.SERVER_INVITE) else "BYE"
        )
        self.req: Request = request(method, to_tag=None if method == "INVITE" else "a6c85cf")
        self.r100 = response(self.req, 100)
        self.r180 = response(self.req, 180)
        self.r183 = response(self.req, 183)
        self.r200 = response(self.req, 200)
        self.r200b = response(self.req, 200, to_tag="otherfork")
        self.r404 = response(self.req, 404)
        self.r486 = response(self.req, 486)
        self.ack2xx = request("ACK", to_tag="a6c85cf", branch="z9hG4bK-2xx-ack")
        self.m: Transaction
        match kind:
            case MachineKind.CLIENT_INVITE:
                # Timer C on, so that its entries are reachable.
                self.m = ClientInviteTransaction(self.req, reliable=False, timer_c=True)
            case MachineKind.CLIENT_NON_INVITE:
                self.m = ClientNonInviteTransaction(self.req, reliable=False)
            case MachineKind.SERVER_INVITE:
                self.m = ServerInviteTransaction(self.req, reliable=False)
            case MachineKind.SERVER_NON_INVITE:
                self.m = ServerNonInviteTransaction(self.req, reliable=False)
        self.started = self.m.start()

    @property
    def ack(self) -> Request:
        assert isinstance(self.m, ClientInviteTransaction)
        assert self.m.ack is not None
        return self.m.ack

    @property
    def last(self) -> Response:
        assert isinstance(self.m, (ServerInviteTransaction, ServerNonInviteTransaction))
        last = self.m.last_response
        assert last is not None
        return last


Make = Callable[[Ctx], Event]
Expect = Callable[[Ctx], list[Action]]


@dataclass(frozen=True)
class Case:
    kind: MachineKind
    state: enum.Enum
    trigger: Trigger
    event: Make
    expected: Expect
    prelude: tuple[Make, ...] = ()

    @property
    def id(self) -> str:
        trig = self.trigger.name if isinstance(self.trigger, Timer) else self.trigger.__name__
        return f"{self.kind.name}-{self.state.name}-{trig}"


def timer(t: Timer) -> Make:
    return lambda c: TimerFired(t)


def got(status: str) -> Make:
    return lambda c: response_received(getattr(c, status))


def tu(status: str) -> Make:
    return lambda c: response_from_tu(getattr(c, status))


retrans: Make = lambda c: RequestRetransmitted(c.req)  # noqa: E731
failed: Make = lambda c: TransportFailed("connection reset")  # noqa: E731
cancel: Make = lambda c: CancelSent()  # noqa: E731
ack_non2xx: Make = lambda c: AckReceived(make_ack(c.req, c.last))  # noqa: E731
ack_2xx: Make = lambda c: AckReceived(c.ack2xx)  # noqa: E731

CIK, CNK, SIK, SNK = (
    MachineKind.CLIENT_INVITE,
    MachineKind.CLIENT_NON_INVITE,
    MachineKind.SERVER_INVITE,
    MachineKind.SERVER_NON_INVITE,
)

CASES: list[Case] = [
    # ----- client INVITE (timer_c=True, unreliable) --------------------------------
    Case(CIK, CI.CALLING, A, timer(A), lambda c: [Retransmit(c.req), ArmTimer(A, 1.0)]),
    Case(
        CIK,
        CI.CALLING,
        B,
        timer(B),
        lambda c: [InformTU(Failure.TIMEOUT, B), CancelTimer(A), CancelTimer(C), Terminate()],
    ),
    Case(
        CIK,
        CI.CALLING,
        C,
        timer(C),
        lambda c: [InformTU(Failure.TIMER_C, C), CancelTimer(A), CancelTimer(B), Terminate()],
    ),
    Case(
        CIK,
        CI.CALLING,
        TransportFailed,
        failed,
        lambda c: [
            InformTU(Failure.TRANSPORT_ERROR),
            CancelTimer(A),
            CancelTimer(B),
            CancelTimer(C),
            Terminate(),
        ],
    ),
    Case(
        CIK,
        CI.CALLING,
        ProvisionalReceived,
        got("r180"),
        lambda c: [PassToTU(c.r180), ArmTimer(C, 181.0), CancelTimer(A), CancelTimer(B)],
    ),
    Case(
        CIK,
        CI.CALLING,
        SuccessReceived,
        got("r200"),
        lambda c: [
            PassToTU(c.r200),
            CancelTimer(A),
            CancelTimer(B),
            CancelTimer(C),
            ArmTimer(M, 32.0),
        ],
    ),
    Case(
        CIK,
        CI.CALLING,
        FinalNon2xxReceived,
        got("r486"),
        lambda c: [
            PassToTU(c.r486),
            SendAck(c.ack),
            CancelTimer(A),
            CancelTimer(B),
            CancelTimer(C),
            ArmTimer(D, 32.0),
        ],
    ),
    Case(
        CIK,
        CI.PROCEEDING,
        ProvisionalReceived,
        got("r183"),
        lambda c: [PassToTU(c.r183), ArmTimer(C, 181.0)],
        prelude=(got("r180"),),
    ),
    Case(
        CIK,
        CI.PROCEEDING,
        SuccessReceived,
        got("r200"),
        lambda c: [PassToTU(c.r200), CancelTimer(C), ArmTimer(M, 32.0)],
        prelude=(got("r180"),),
    ),
    Case(
        CIK,
        CI.PROCEEDING,
        FinalNon2xxReceived,
        got("r486"),
        lambda c: [PassToTU(c.r486), SendAck(c.ack), CancelTimer(C), ArmTimer(D, 32.0)],
        prelude=(got("r180"),),
    ),
    Case(
        CIK,
        CI.PROCEEDING,
        C,
        timer(C),
        lambda c: [InformTU(Failure.TIMER_C, C)],
        prelude=(got("r180"),),
    ),
    Case(
        CIK,
        CI.PROCEEDING,
        CancelSent,
        cancel,
        lambda c: [ArmTimer(B, 32.0)],
        prelude=(got("r180"),),
    ),
    Case(
        CIK,
        CI.PROCEEDING,
        B,
        timer(B),
        lambda c: [InformTU(Failure.TIMEOUT, B), CancelTimer(C), Terminate()],
        prelude=(got("r180"), cancel),
    ),
    Case(
        CIK,
        CI.COMPLETED,
        FinalNon2xxReceived,
        got("r486"),
        lambda c: [SendAck(c.ack)],
        prelude=(got("r486"),),
    ),
    Case(
        CIK,
        CI.COMPLETED,
        TransportFailed,
        failed,
        lambda c: [InformTU(Failure.TRANSPORT_ERROR), CancelTimer(D), Terminate()],
        prelude=(got("r486"),),
    ),
    Case(CIK, CI.COMPLETED, D, timer(D), lambda c: [Terminate()], prelude=(got("r486"),)),
    Case(CIK, CI.COMPLETED, CancelSent, cancel, lambda c: [], prelude=(got("r486"),)),
    Case(
        CIK,
        CI.ACCEPTED,
        SuccessReceived,
        got("r200b"),
        lambda c: [PassToTU(c.r200b)],
        prelude=(got("r200"),),
    ),
    Case(CIK, CI.ACCEPTED, M, timer(M), lambda c: [Terminate()], prelude=(got("r200"),)),
    Case(CIK, CI.ACCEPTED, CancelSent, cancel, lambda c: [], prelude=(got("r200"),)),
    # ----- client non-INVITE (unreliable) ------------------------------------------
    Case(CNK, CN.TRYING, E, timer(E), lambda c: [Retransmit(c.req), ArmTimer(E, 1.0)]),
    Case(
        CNK,
        CN.TRYING,
        F,
        timer(F),
        lambda c: [InformTU(Failure.TIMEOUT, F), CancelTimer(E), Terminate()],
    ),
    Case(
        CNK,
        CN.TRYING,
        TransportFailed,
        failed,
        lambda c: [
            InformTU(Failure.TRANSPORT_ERROR),
            CancelTimer(E),
            CancelTimer(F),
            Terminate(),
        ],
    ),
    Case(CNK, CN.TRYING, ProvisionalReceived, got("r180"), lambda c: [PassToTU(c.r180)]),
    Case(
        CNK,
        CN.TRYING,
        SuccessReceived,
        got("r200"),
        lambda c: [PassToTU(c.r200), CancelTimer(E), CancelTimer(F), ArmTimer(K, 5.0)],
    ),
    Case(
        CNK,
        CN.TRYING,
        FinalNon2xxReceived,
        got("r404"),
        lambda c: [PassToTU(c.r404), CancelTimer(E), CancelTimer(F), ArmTimer(K, 5.0)],
    ),
    Case(
        CNK,
        CN.PROCEEDING,
        E,
        timer(E),
        lambda c: [Retransmit(c.req), ArmTimer(E, 4.0)],  # T2 in Proceeding
        prelude=(got("r180"),),
    ),
    Case(
        CNK,
        CN.PROCEEDING,
        F,
        timer(F),
        lambda c: [InformTU(Failure.TIMEOUT, F), CancelTimer(E), Terminate()],
        prelude=(got("r180"),),
    ),
    Case(
        CNK,
        CN.PROCEEDING,
        TransportFailed,
        failed,
        lambda c: [
            InformTU(Failure.TRANSPORT_ERROR),
            CancelTimer(E),
            CancelTimer(F),
            Terminate(),
        ],
        prelude=(got("r180"),),
    ),
    Case(
        CNK,
        CN.PROCEEDING,
        ProvisionalReceived,
        got("r183"),
        lambda c: [PassToTU(c.r183)],
        prelude=(got("r180"),),
    ),
    Case(
        CNK,
        CN.PROCEEDING,
        SuccessReceived,
        got("r200"),
        lambda c: [PassToTU(c.r200), CancelTimer(E), CancelTimer(F), ArmTimer(K, 5.0)],
        prelude=(got("r180"),),
    ),
    Case(
        CNK,
        CN.PROCEEDING,
        FinalNon2xxReceived,
        got("r404"),
        lambda c: [PassToTU(c.r404), CancelTimer(E), CancelTimer(F), ArmTimer(K, 5.0)],
        prelude=(got("r180"),),
    ),
    Case(
        CNK,
        CN.COMPLETED,
        ProvisionalReceived,
        got("r180"),
        lambda c: [],
        prelude=(got("r200"),),
    ),
    Case(CNK, CN.COMPLETED, SuccessReceived, got("r200"), lambda c: [], prelude=(got("r200"),)),
    Case(
        CNK,
        CN.COMPLETED,
        FinalNon2xxReceived,
        got("r404"),
        lambda c: [],
        prelude=(got("r404"),),
    ),
    Case(CNK, CN.COMPLETED, K, timer(K), lambda c: [Terminate()], prelude=(got("r200"),)),
    # ----- server INVITE (unreliable, 100 Trying sent on start) ---------------------
    Case(SIK, SI.PROCEEDING, RequestRetransmitted, retrans, lambda c: [Retransmit(c.last)]),
    Case(SIK, SI.PROCEEDING, SendProvisional, tu("r180"), lambda c: [Transmit(c.r180)]),
    Case(
        SIK,
        SI.PROCEEDING,
        TransportFailed,
        failed,
        lambda c: [InformTU(Failure.TRANSPORT_ERROR)],
    ),
    Case(
        SIK,
        SI.PROCEEDING,
        SendSuccess,
        tu("r200"),
        lambda c: [Transmit(c.r200), ArmTimer(L, 32.0)],
    ),
    Case(
        SIK,
        SI.PROCEEDING,
        SendFinalNon2xx,
        tu("r486"),
        lambda c: [Transmit(c.r486), ArmTimer(G, 0.5), ArmTimer(H, 32.0)],
    ),
    Case(
        SIK,
        SI.COMPLETED,
        RequestRetransmitted,
        retrans,
        lambda c: [Retransmit(c.r486)],
        prelude=(tu("r486"),),
    ),
    Case(
        SIK,
        SI.COMPLETED,
        G,
        timer(G),
        lambda c: [Retransmit(c.r486), ArmTimer(G, 1.0)],
        prelude=(tu("r486"),),
    ),
    Case(
        SIK,
        SI.COMPLETED,
        TransportFailed,
        failed,
        lambda c: [InformTU(Failure.TRANSPORT_ERROR)],
        prelude=(tu("r486"),),
    ),
    Case(
        SIK,
        SI.COMPLETED,
        AckReceived,
        ack_non2xx,
        lambda c: [CancelTimer(G), CancelTimer(H), ArmTimer(I, 5.0)],
        prelude=(tu("r486"),),
    ),
    Case(
        SIK,
        SI.COMPLETED,
        H,
        timer(H),
        lambda c: [InformTU(Failure.TIMEOUT, H), CancelTimer(G), Terminate()],
        prelude=(tu("r486"),),
    ),
    Case(
        SIK,
        SI.CONFIRMED,
        AckReceived,
        ack_non2xx,
        lambda c: [],
        prelude=(tu("r486"), ack_non2xx),
    ),
    Case(
        SIK,
        SI.CONFIRMED,
        I,
        timer(I),
        lambda c: [Terminate()],
        prelude=(tu("r486"), ack_non2xx),
    ),
    Case(
        SIK,
        SI.ACCEPTED,
        RequestRetransmitted,
        retrans,
        lambda c: [],
        prelude=(tu("r200"),),
    ),
    Case(
        SIK,
        SI.ACCEPTED,
        AckReceived,
        ack_2xx,
        lambda c: [PassToTU(c.ack2xx)],
        prelude=(tu("r200"),),
    ),
    Case(
        SIK,
        SI.ACCEPTED,
        SendSuccess,
        tu("r200"),
        lambda c: [Transmit(c.r200)],
        prelude=(tu("r200"),),
    ),
    Case(
        SIK,
        SI.ACCEPTED,
        TransportFailed,
        failed,
        lambda c: [InformTU(Failure.TRANSPORT_ERROR)],
        prelude=(tu("r200"),),
    ),
    Case(SIK, SI.ACCEPTED, L, timer(L), lambda c: [Terminate()], prelude=(tu("r200"),)),
    # ----- server non-INVITE (unreliable) ------------------------------------------
    Case(SNK, SN.TRYING, RequestRetransmitted, retrans, lambda c: []),
    Case(SNK, SN.TRYING, SendProvisional, tu("r100"), lambda c: [Transmit(c.r100)]),
    Case(
        SNK,
        SN.TRYING,
        SendSuccess,
        tu("r200"),
        lambda c: [Transmit(c.r200), ArmTimer(J, 32.0)],
    ),
    Case(
        SNK,
        SN.TRYING,
        SendFinalNon2xx,
        tu("r404"),
        lambda c: [Transmit(c.r404), ArmTimer(J, 32.0)],
    ),
    Case(
        SNK,
        SN.PROCEEDING,
        RequestRetransmitted,
        retrans,
        lambda c: [Retransmit(c.r100)],
        prelude=(tu("r100"),),
    ),
    Case(
        SNK,
        SN.PROCEEDING,
        SendProvisional,
        tu("r180"),
        lambda c: [Transmit(c.r180)],
        prelude=(tu("r100"),),
    ),
    Case(
        SNK,
        SN.PROCEEDING,
        SendSuccess,
        tu("r200"),
        lambda c: [Transmit(c.r200), ArmTimer(J, 32.0)],
        prelude=(tu("r100"),),
    ),
    Case(
        SNK,
        SN.PROCEEDING,
        SendFinalNon2xx,
        tu("r404"),
        lambda c: [Transmit(c.r404), ArmTimer(J, 32.0)],
        prelude=(tu("r100"),),
    ),
    Case(
        SNK,
        SN.PROCEEDING,
        TransportFailed,
        failed,
        lambda c: [InformTU(Failure.TRANSPORT_ERROR), Terminate()],
        prelude=(tu("r100"),),
    ),
    Case(
        SNK,
        SN.COMPLETED,
        RequestRetransmitted,
        retrans,
        lambda c: [Retransmit(c.r200)],
        prelude=(tu("r200"),),
    ),
    Case(SNK, SN.COMPLETED, SendSuccess, tu("r200"), lambda c: [], prelude=(tu("r200"),)),
    Case(SNK, SN.COMPLETED, SendFinalNon2xx, tu("r404"), lambda c: [], prelude=(tu("r200"),)),
    Case(
        SNK,
        SN.COMPLETED,
        TransportFailed,
        failed,
        lambda c: [InformTU(Failure.TRANSPORT_ERROR), CancelTimer(J), Terminate()],
        prelude=(tu("r200"),),
    ),
    Case(SNK, SN.COMPLETED, J, timer(J), lambda c: [Terminate()], prelude=(tu("r200"),)),
]

TABLES: dict[MachineKind, dict[tuple[enum.Enum, Trigger], enum.Enum]] = {
    kind: transitions(kind) for kind in MachineKind
}


@pytest.mark.parametrize("kind", list(MachineKind))
def test_cases_cover_the_table_exactly(kind: MachineKind) -> None:
    covered = [(case.state, case.trigger) for case in CASES if case.kind is kind]
    assert len(covered) == len(set(covered))
    assert set(covered) == set(TABLES[kind])


@pytest.mark.parametrize("kind", list(MachineKind))
def test_every_entry_has_a_note(kind: MachineKind) -> None:
    assert set(TRANSITION_NOTES[kind]) == set(TABLES[kind])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_table_entry(case: Case) -> None:
    c = Ctx(case.kind)
    for make in case.prelude:
        c.m.handle(make(c))
    assert c.m.state is case.state
    event = case.event(c)
    if isinstance(event, TimerFired):
        assert event.timer in c.m.armed_timers
    actions = c.m.handle(event)
    assert c.m.state is TABLES[case.kind][(case.state, case.trigger)]
    assert actions == case.expected(c)
    # Terminate comes exactly with the move to Terminated.
    assert (Terminate() in actions) == c.m.terminated


def test_start_actions() -> None:
    ci = Ctx(CIK)
    assert ci.started == [Transmit(ci.req), ArmTimer(A, 0.5), ArmTimer(B, 32.0), ArmTimer(C, 181)]
    cn = Ctx(CNK)
    assert cn.started == [Transmit(cn.req), ArmTimer(E, 0.5), ArmTimer(F, 32.0)]
    si = Ctx(SIK)
    assert si.started == [Transmit(si.last), PassToTU(si.req)]
    assert si.last.status == 100
    assert si.last.to.tag is None  # 17.2.1: a 100 SHOULD NOT add a To tag
    sn = Ctx(SNK)
    assert sn.started == [PassToTU(sn.req)]


def test_ack_built_for_non_2xx() -> None:
    c = Ctx(CIK)
    c.m.handle(response_received(c.r486))
    ack = c.ack
    assert ack.method == "ACK"
    assert ack.cseq.method == "ACK"
    assert ack.cseq.seq == c.req.cseq.seq
    assert ack.top_via.branch == c.req.top_via.branch
    assert ack.to.tag == c.r486.to.tag


# ----- reliable transports -------------------------------------------------------


def test_reliable_client_invite_has_no_timer_a_and_zero_d() -> None:
    req = request()
    m = ClientInviteTransaction(req, reliable=True)
    assert m.start() == [Transmit(req), ArmTimer(B, 32.0)]
    r486 = response(req, 486)
    actions = m.handle(response_received(r486))
    assert m.state is CI.TERMINATED
    assert actions == [PassToTU(r486), SendAck(m.ack), CancelTimer(B), Terminate()]  # type: ignore[arg-type]


def test_reliable_client_non_invite_has_no_timer_e_and_zero_k() -> None:
    req = request("OPTIONS")
    m = ClientNonInviteTransaction(req, reliable=True)
    assert m.start() == [Transmit(req), ArmTimer(F, 32.0)]
    r200 = response(req, 200)
    assert m.handle(response_received(r200)) == [PassToTU(r200), CancelTimer(F), Terminate()]
    assert m.state is CN.TERMINATED


def test_reliable_server_invite_has_no_timer_g_and_zero_i() -> None:
    req = request()
    m = ServerInviteTransaction(req, reliable=True, send_trying=False)
    assert m.start() == [PassToTU(req)]
    r486 = response(req, 486)
    assert m.handle(SendFinalNon2xx(r486)) == [Transmit(r486), ArmTimer(H, 32.0)]
    ack = make_ack(req, r486)
    assert m.handle(AckReceived(ack)) == [CancelTimer(H), Terminate()]
    assert m.state is SI.TERMINATED


def test_reliable_server_invite_still_waits_for_timer_l() -> None:
    req = request()
    m = ServerInviteTransaction(req, reliable=True)
    m.start()
    assert m.handle(SendSuccess(response(req, 200))) == [
        Transmit(m.last_response),  # type: ignore[arg-type]
        ArmTimer(L, 32.0),
    ]


def test_reliable_server_non_invite_zero_j() -> None:
    req = request("REGISTER")
    m = ServerNonInviteTransaction(req, reliable=True)
    m.start()
    r200 = response(req, 200)
    assert m.handle(SendSuccess(r200)) == [Transmit(r200), Terminate()]
    assert m.state is SN.TERMINATED


def test_server_invite_without_trying_has_nothing_to_retransmit() -> None:
    req = request()
    m = ServerInviteTransaction(req, reliable=False, send_trying=False)
    m.start()
    assert m.handle(RequestRetransmitted(req)) == []
    r180 = response(req, 180)
    m.handle(SendProvisional(r180))
    assert m.handle(RequestRetransmitted(req)) == [Retransmit(r180)]


def test_client_invite_without_timer_c() -> None:
    req = request()
    m = ClientInviteTransaction(req, reliable=False)
    assert m.start() == [Transmit(req), ArmTimer(A, 0.5), ArmTimer(B, 32.0)]
    r180 = response(req, 180)
    assert m.handle(response_received(r180)) == [PassToTU(r180), CancelTimer(A), CancelTimer(B)]
    assert m.armed_timers == frozenset()


def test_second_cancel_does_not_restart_b() -> None:
    req = request()
    m = ClientInviteTransaction(req, reliable=False)
    m.start()
    m.handle(response_received(response(req, 180)))
    assert m.handle(CancelSent()) == [ArmTimer(B, 32.0)]
    assert m.handle(CancelSent()) == []


# ----- what the tables leave out -------------------------------------------------

NETWORK_EVENTS: dict[MachineKind, list[Make]] = {
    CIK: [got("r100"), got("r200"), got("r486"), failed],
    CNK: [got("r100"), got("r200"), got("r404"), failed],
    SIK: [retrans, ack_2xx, failed],
    SNK: [retrans, failed],
}
TU_EVENTS: dict[MachineKind, list[Make]] = {
    CIK: [cancel],
    CNK: [],
    SIK: [tu("r180"), tu("r200"), tu("r486")],
    SNK: [tu("r180"), tu("r200"), tu("r404")],
}
PATHS: dict[MachineKind, list[tuple[Make, ...]]] = {
    CIK: [(), (got("r180"),), (got("r200"),), (got("r486"),), (timer(B),)],
    CNK: [(), (got("r180"),), (got("r200"),), (timer(F),)],
    SIK: [(), (tu("r200"),), (tu("r486"),), (tu("r486"), ack_non2xx), (tu("r486"), timer(H))],
    SNK: [(), (tu("r100"),), (tu("r200"),), (tu("r100"), failed)],
}


@pytest.mark.parametrize("kind", list(MachineKind))
def test_unlisted_network_events_are_absorbed(kind: MachineKind) -> None:
    seen = 0
    for path in PATHS[kind]:
        for make in NETWORK_EVENTS[kind]:
            c = Ctx(kind)
            for step in path:
                c.m.handle(step(c))
            state, armed = c.m.state, c.m.armed_timers
            event = make(c)
            if (state, type(event)) in TABLES[kind]:
                continue
            seen += 1
            assert c.m.handle(event) == []
            assert (c.m.state, c.m.armed_timers) == (state, armed)
    assert seen > 0


@pytest.mark.parametrize("kind", list(MachineKind))
def test_unlisted_tu_events_raise(kind: MachineKind) -> None:
    for path in PATHS[kind]:
        for make in TU_EVENTS[kind]:
            c = Ctx(kind)
            for step in path:
                c.m.handle(step(c))
            state, armed = c.m.state, c.m.armed_timers
            event = make(c)
            assert isinstance(event, TUEvent)
            if (state, type(event)) in TABLES[kind]:
                continue
            with pytest.raises(TransactionUsageError, match=type(event).__name__):
                c.m.handle(event)
            assert (c.m.state, c.m.armed_timers) == (state, armed)


@pytest.mark.parametrize("kind", list(MachineKind))
def test_timers_not_armed_are_absorbed(kind: MachineKind) -> None:
    for path in PATHS[kind]:
        c = Ctx(kind)
        for step in path:
            c.m.handle(step(c))
        for t in Timer:
            if t not in c.m.armed_timers:
                state = c.m.state
                assert c.m.handle(TimerFired(t)) == []
                assert c.m.state is state


def test_cancelled_timer_firing_late_is_absorbed() -> None:
    # Timer B fired in the I/O layer just as the 1xx cancelled it.
    c = Ctx(CIK)
    c.m.handle(response_received(c.r180))
    assert c.m.handle(TimerFired(B)) == []
    assert c.m.state is CI.PROCEEDING


def test_a_fired_timer_is_no_longer_armed() -> None:
    c = Ctx(CIK)
    c.m.handle(response_received(c.r486))
    assert c.m.handle(TimerFired(D)) == [Terminate()]
    assert c.m.handle(TimerFired(D)) == []


@pytest.mark.parametrize("kind", list(MachineKind))
def test_what_a_waiting_machine_keeps_of_its_timers_is_not_walked_by_the_collector(
    kind: MachineKind,
) -> None:
    # A finished transaction keeps its machine for 64*T1, two a call: the
    # armed timers are a bit mask, not a container of Timer members that
    # every garbage collection would walk.
    for path in PATHS[kind]:
        c = Ctx(kind)
        for step in path:
            c.m.handle(step(c))
        assert not gc.is_tracked(c.m._armed)


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        (CIK, AckReceived(request("ACK"))),
        (CIK, SendSuccess(response(request(), 200))),
        (CNK, CancelSent()),
        (CNK, RequestRetransmitted(request("BYE"))),
        (SIK, ProvisionalReceived(response(request(), 180))),
        (SNK, AckReceived(request("ACK"))),
        (SNK, CancelSent()),
    ],
)
def test_events_of_other_machines_raise(kind: MachineKind, event: Event) -> None:
    c = Ctx(kind)
    with pytest.raises(TransactionUsageError, match="does not take"):
        c.m.handle(event)


def test_handle_before_start_and_double_start_raise() -> None:
    req = request()
    for cls in MACHINES.values():
        m = cls(req, reliable=False)
        with pytest.raises(TransactionUsageError, match="not started"):
            m.handle(TransportFailed())
        m.start()
        with pytest.raises(TransactionUsageError, match="already started"):
            m.start()


def test_terminated_absorbs_network_and_refuses_tu_events() -> None:
    c = Ctx(SIK)
    c.m.handle(response_from_tu(c.r486))
    c.m.handle(TimerFired(H))
    assert c.m.terminated
    assert c.m.handle(RequestRetransmitted(c.req)) == []
    with pytest.raises(TransactionUsageError):
        c.m.handle(response_from_tu(c.r200))


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (ProvisionalReceived, 200),
        (SuccessReceived, 180),
        (SuccessReceived, 300),
        (FinalNon2xxReceived, 299),
        (SendProvisional, 200),
        (SendSuccess, 486),
        (SendFinalNon2xx, 100),
    ],
)
def test_events_check_the_status_class(cls: type[Event], status: int) -> None:
    with pytest.raises(TransactionUsageError, match=str(status)):
        cls(response(request(), status))  # type: ignore[call-arg]


def test_classifiers() -> None:
    req = request()
    assert type(response_received(response(req, 100))) is ProvisionalReceived
    assert type(response_received(response(req, 299))) is SuccessReceived
    assert type(response_received(response(req, 300))) is FinalNon2xxReceived
    assert type(response_from_tu(response(req, 199))) is SendProvisional
    assert type(response_from_tu(response(req, 200))) is SendSuccess
    assert type(response_from_tu(response(req, 699))) is SendFinalNon2xx


def test_factories_pick_the_machine() -> None:
    assert isinstance(client_transaction(request(), reliable=False), ClientInviteTransaction)
    assert isinstance(
        client_transaction(request("CANCEL"), reliable=False), ClientNonInviteTransaction
    )
    assert isinstance(server_transaction(request(), reliable=True), ServerInviteTransaction)
    assert isinstance(
        server_transaction(request("OPTIONS"), reliable=True), ServerNonInviteTransaction
    )
    m = client_transaction(request(), reliable=False, timer_c=True)
    assert isinstance(m, ClientInviteTransaction)
    assert m.timer_c
    m2 = server_transaction(request(), reliable=False, send_trying=False)
    assert isinstance(m2, ServerInviteTransaction)
    assert not m2.send_trying
    with pytest.raises(TransactionUsageError):
        client_transaction(request("ACK"), reliable=False)
    with pytest.raises(TransactionUsageError):
        server_transaction(request("ACK"), reliable=False)


def test_machine_keys() -> None:
    from trio_sip.transaction import client_key, server_key

    req = request()
    assert ClientInviteTransaction(req, reliable=False).key == client_key(req)
    assert ClientNonInviteTransaction(request("BYE"), reliable=False).key == client_key(
        request("BYE")
    )
    assert ServerInviteTransaction(req, reliable=False).key == server_key(req)
    assert ServerNonInviteTransaction(request("BYE"), reliable=False).key == server_key(
        request("BYE")
    )
    assert "Calling" in repr(ClientInviteTransaction(req, reliable=False))
