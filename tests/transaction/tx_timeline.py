"""A virtual-timeline driver for the transaction machines (no clock, no event loop)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from trio_sip.transaction import (
    Action,
    ArmTimer,
    CancelTimer,
    Event,
    Terminate,
    Timer,
    TimerFired,
    Transaction,
)


@dataclass
class Timeline:
    """Drives a machine on virtual time: keeps armed timers, fires the earliest.

    Records every action with the virtual time it happened at, and checks
    on the way that the machine and this driver agree on the armed timers.
    """

    machine: Transaction
    now: float = 0.0
    deadlines: dict[Timer, tuple[float, int]] = field(default_factory=dict)
    log: list[tuple[float, Action]] = field(default_factory=list)
    terminated_at: float | None = None
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def start(self) -> list[Action]:
        return self._apply(self.machine.start())

    def feed(self, event: Event) -> list[Action]:
        actions = self.machine.handle(event)
        if isinstance(event, TimerFired):
            # Fed by hand: the timer fired (early, or it was not armed at all).
            self.deadlines.pop(event.timer, None)
        return self._apply(actions)

    def _apply(self, actions: list[Action]) -> list[Action]:
        for action in actions:
            self.log.append((self.now, action))
            match action:
                case ArmTimer(timer=timer, delay=delay):
                    assert delay > 0
                    self.deadlines[timer] = (self.now + delay, next(self._seq))
                case CancelTimer(timer=timer):
                    assert timer in self.deadlines, f"cancel of unarmed {timer}"
                    del self.deadlines[timer]
                case Terminate():
                    assert self.terminated_at is None, "terminated twice"
                    assert not self.deadlines, f"timers left at Terminate: {self.deadlines}"
                    self.terminated_at = self.now
                case _:
                    pass
        assert set(self.deadlines) == set(self.machine.armed_timers)
        return actions

    def next_timer(self) -> tuple[float, Timer] | None:
        if not self.deadlines:
            return None
        timer, (when, _) = min(self.deadlines.items(), key=lambda item: item[1])
        return when, timer

    def fire_next(self) -> list[Action]:
        nxt = self.next_timer()
        assert nxt is not None
        when, timer = nxt
        self.now = when
        del self.deadlines[timer]
        return self._apply(self.machine.handle(TimerFired(timer)))

    def advance(self, until: float) -> None:
        """Fire every timer due up to ``until``, then move the clock there."""
        while (nxt := self.next_timer()) is not None and nxt[0] <= until:
            self.fire_next()
        self.now = max(self.now, until)

    def run_out(self, limit: int = 1000) -> None:
        """Fire timers until none is armed."""
        for _ in range(limit):
            if not self.deadlines:
                return
            self.fire_next()
        raise AssertionError("timers never ran out")

    def times_of(self, kind: type[Action]) -> list[float]:
        return [when for when, action in self.log if isinstance(action, kind)]
