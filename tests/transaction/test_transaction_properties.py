"""Property tests: random event sequences against the four machines.

Whatever arrives, in whatever order: a machine never fails other than by
refusing a TU event its table does not allow (and then it stays as it was),
its armed timers always match its ArmTimer/CancelTimer actions, Terminate
comes exactly once, with the move to Terminated, and once every timer has
fired the transaction is over -- or waits in one of the states the RFC
leaves open until someone answers, and is over once someone does.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from tx_support import request, response
from tx_timeline import Timeline

from trio_sip.message import Request, make_ack
from trio_sip.transaction import (
    AckReceived,
    CancelSent,
    ClientInviteState,
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Event,
    MachineKind,
    RequestRetransmitted,
    ServerInviteState,
    ServerInviteTransaction,
    ServerNonInviteState,
    ServerNonInviteTransaction,
    Terminate,
    Timer,
    TimerConfig,
    TimerFired,
    Transaction,
    TransactionUsageError,
    TransportFailed,
    TUEvent,
    response_from_tu,
    response_received,
)
from trio_sip.transaction.diagram import transitions

INVITE = request()
BYE = request("BYE", to_tag="a6c85cf")
ACK_2XX = request("ACK", to_tag="a6c85cf", branch="z9hG4bK-ack-for-2xx")


def _acks(req: Request) -> list[Event]:
    return [AckReceived(make_ack(req, response(req, 486))), AckReceived(ACK_2XX)]


def _events(kind: MachineKind) -> list[Event]:
    req = INVITE if kind in (MachineKind.CLIENT_INVITE, MachineKind.SERVER_INVITE) else BYE
    statuses = [100, 180, 183, 200, 202, 302, 404, 486, 503, 603]
    timers: list[Event] = [TimerFired(t) for t in Timer]
    common: list[Event] = [TransportFailed("boom"), *timers]
    match kind:
        case MachineKind.CLIENT_INVITE:
            return [*(response_received(response(req, s)) for s in statuses), CancelSent(), *common]
        case MachineKind.CLIENT_NON_INVITE:
            return [*(response_received(response(req, s)) for s in statuses), *common]
        case MachineKind.SERVER_INVITE:
            return [
                *(response_from_tu(response(req, s)) for s in statuses),
                RequestRetransmitted(req),
                *_acks(req),
                *common,
            ]
        case MachineKind.SERVER_NON_INVITE:
            return [
                *(response_from_tu(response(req, s)) for s in statuses),
                RequestRetransmitted(req),
                *common,
            ]


def _machine(kind: MachineKind, reliable: bool, option: bool, cfg: TimerConfig) -> Transaction:
    match kind:
        case MachineKind.CLIENT_INVITE:
            return ClientInviteTransaction(INVITE, reliable=reliable, config=cfg, timer_c=option)
        case MachineKind.CLIENT_NON_INVITE:
            return ClientNonInviteTransaction(BYE, reliable=reliable, config=cfg)
        case MachineKind.SERVER_INVITE:
            return ServerInviteTransaction(
                INVITE, reliable=reliable, config=cfg, send_trying=option
            )
        case MachineKind.SERVER_NON_INVITE:
            return ServerNonInviteTransaction(BYE, reliable=reliable, config=cfg)


#: States the RFC leaves open until the peer or the TU acts, with what closes them.
WAITING: dict[object, Callable[[], Event]] = {
    ClientInviteState.PROCEEDING: lambda: response_received(response(INVITE, 487)),
    ServerInviteState.PROCEEDING: lambda: response_from_tu(response(INVITE, 500)),
    ServerNonInviteState.TRYING: lambda: response_from_tu(response(BYE, 200)),
    ServerNonInviteState.PROCEEDING: lambda: response_from_tu(response(BYE, 200)),
}

FIRE_NEXT = None  # a step that lets the clock run to the next timer

configs = st.builds(
    TimerConfig,
    t1=st.sampled_from([0.05, 0.5, 2.0]),
    t2=st.sampled_from([1.0, 4.0]),
    t4=st.sampled_from([0.5, 5.0]),
    timer_c=st.sampled_from([1.0, 180.0]),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Transaction, list[Event | None]]:
    kind = draw(st.sampled_from(list(MachineKind)))
    machine = _machine(kind, draw(st.booleans()), draw(st.booleans()), draw(configs))
    steps = draw(st.lists(st.sampled_from([*_events(kind), FIRE_NEXT]), max_size=40))
    return machine, steps


def _feed(tl: Timeline, event: Event) -> None:
    m = tl.machine
    before = (m.state, m.armed_timers)
    table = transitions(m.KIND)
    try:
        actions = tl.feed(event)
    except TransactionUsageError:
        # Only a TU event the table does not list may be refused ...
        assert isinstance(event, TUEvent)
        assert (before[0], type(event)) not in table
        # ... and a refusal changes nothing.
        assert (m.state, m.armed_timers) == before
        return
    if before[0].name == "TERMINATED":
        assert actions == []
    if isinstance(event, TimerFired) and event.timer not in before[1]:
        assert actions == []  # a stale timer is absorbed
    assert (Terminate() in actions) == (m.terminated and before[0].name != "TERMINATED")


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_random_events_never_crash_and_end_in_terminated(
    scenario: tuple[Transaction, list[Event | None]],
) -> None:
    machine, steps = scenario
    tl = Timeline(machine)
    tl.start()
    for step in steps:
        if step is FIRE_NEXT:
            if tl.deadlines:
                tl.fire_next()
        else:
            _feed(tl, step)
    tl.run_out()
    if not machine.terminated:
        # Only the RFC's open-ended waits remain, with no timer running ...
        assert machine.state in WAITING
        assert machine.armed_timers == frozenset()
        # ... and one answer plus the timers closes them.
        _feed(tl, WAITING[machine.state]())
        tl.run_out()
    assert machine.terminated
    assert tl.terminated_at is not None
    assert machine.armed_timers == frozenset()


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_cancel_sent_closes_a_client_invite_in_proceeding(
    scenario: tuple[Transaction, list[Event | None]],
) -> None:
    # 9.1: a CANCEL makes even an unanswered Proceeding end within 64*T1.
    machine, steps = scenario
    if not isinstance(machine, ClientInviteTransaction):
        return
    tl = Timeline(machine)
    tl.start()
    for step in steps:
        if step is FIRE_NEXT:
            if tl.deadlines:
                tl.fire_next()
        else:
            _feed(tl, step)
    tl.run_out()
    if machine.state is ClientInviteState.PROCEEDING:
        tl.feed(CancelSent())
        tl.run_out()
        assert machine.terminated
