"""Audit of the transaction layer against RFC 3261 sections 16-17 and RFC 6026.

Each test pins a rule the other transaction tests do not reach; the
machines run on the virtual timeline of ``tx_timeline`` (no clock).
"""

from __future__ import annotations

from tx_support import request, response
from tx_timeline import Timeline

from trio_sip.transaction import (
    ArmTimer,
    ClientInviteState,
    ClientInviteTransaction,
    Failure,
    InformTU,
    PassToTU,
    Timer,
    TimerConfig,
    response_received,
)


def _timer_c_informs(tl: Timeline) -> list[float]:
    return [t for t, a in tl.log if a == InformTU(Failure.TIMER_C, Timer.C)]


def test_100_trying_does_not_reset_timer_c() -> None:
    # 16.7 step 2: only "status codes 101 to 199 inclusive (i.e., anything
    # but 100)" reset Timer C. A 100 only says that the next hop got the
    # INVITE; a branch that never gets further must still time out C after
    # the INVITE was sent (or after the last 101-199), whatever 100s come.
    invite = request()
    cfg = TimerConfig(timer_c=200.0)
    tl = Timeline(ClientInviteTransaction(invite, reliable=False, config=cfg, timer_c=True))
    tl.start()
    tl.advance(0.2)
    trying = response(invite, 100)
    actions = tl.feed(response_received(trying))
    assert tl.machine.state is ClientInviteState.PROCEEDING
    assert PassToTU(trying) in actions  # still goes up to the TU
    assert not any(isinstance(a, ArmTimer) and a.timer is Timer.C for a in actions)
    tl.advance(199.9)
    assert _timer_c_informs(tl) == []
    tl.advance(200.0)
    assert _timer_c_informs(tl) == [200.0]


def test_late_100_after_180_does_not_reset_timer_c() -> None:
    # UDP reorders: the downstream proxy's 100 may arrive after the UAS's 180.
    # The 180 resets C (16.7 step 2); the stray 100 must not push it again.
    invite = request()
    cfg = TimerConfig(timer_c=200.0)
    tl = Timeline(ClientInviteTransaction(invite, reliable=False, config=cfg, timer_c=True))
    tl.start()
    tl.advance(1.0)
    tl.feed(response_received(response(invite, 180)))  # C now due at 201
    tl.advance(2.0)
    tl.feed(response_received(response(invite, 100)))
    tl.advance(201.0)
    assert _timer_c_informs(tl) == [201.0]
    assert tl.machine.state is ClientInviteState.PROCEEDING
