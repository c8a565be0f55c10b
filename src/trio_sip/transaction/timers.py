"""RFC 3261 timer values (section 17 and table 4, with RFC 6026's L and M).

Pure arithmetic: these functions say how long; the I/O layer decides when.
The Dispatcher's retransmission schedule and the transaction machines both
take their numbers from here, so the two cannot disagree.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["WAIT_TIMERS", "Timer", "TimerConfig", "RetransmitKind", "retransmit_intervals"]


class Timer(enum.Enum):
    """The named timers of RFC 3261 section 17 and RFC 6026 section 8."""

    A = "A"  # INVITE request retransmit, unreliable only
    B = "B"  # INVITE transaction timeout
    C = "C"  # proxy INVITE transaction timeout (> 3 min)
    D = "D"  # wait time for response retransmits (client INVITE, Completed)
    E = "E"  # non-INVITE request retransmit, unreliable only
    F = "F"  # non-INVITE transaction timeout
    G = "G"  # INVITE final response retransmit, unreliable only
    H = "H"  # wait time for ACK receipt
    I = "I"  # wait time for ACK retransmits  # noqa: E741 - RFC name
    J = "J"  # wait time for non-INVITE request retransmits
    K = "K"  # wait time for response retransmits (client non-INVITE)
    L = "L"  # RFC 6026: server INVITE Accepted state
    M = "M"  # RFC 6026: client INVITE Accepted state


#: The wait timers: they keep a transaction around to absorb retransmissions
#: (RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2; RFC 6026 7.1, 7.2). When one
#: fires, the transaction ends: nothing is sent and the TU is not told, so it
#: may fire a little late, never early.
WAIT_TIMERS = frozenset({Timer.D, Timer.I, Timer.J, Timer.K, Timer.L, Timer.M})


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1, T2 and T4 (section 17.1.1.1): the RTT estimate, the cap, and the
    maximum time a message stays in the network. Everything else derives."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    #: Timer C, the proxy's INVITE timeout: it "MUST be larger than 3
    #: minutes" (16.6 step 11, 16.7 step 2): the first whole second past.
    timer_c: float = 181.0

    def duration(self, timer: Timer, *, reliable: bool = False) -> float:
        """How long ``timer`` runs. Over a reliable transport the wait timers
        that absorb retransmissions (D, I, J, K) are zero (table 4)."""
        t1, t4 = self.t1, self.t4
        match timer:
            case Timer.A | Timer.E | Timer.G:
                return t1
            case Timer.B | Timer.F | Timer.H | Timer.L | Timer.M:
                return 64 * t1
            case Timer.C:
                return self.timer_c
            case Timer.D:
                return 0.0 if reliable else max(32.0, 64 * t1)
            case Timer.I | Timer.K:
                return 0.0 if reliable else t4
            case Timer.J:
                return 0.0 if reliable else 64 * t1


class RetransmitKind(enum.Enum):
    """The four things that are retransmitted over unreliable transports."""

    #: INVITE request: Timer A doubles without a cap (17.1.1.2); Timer B ends it.
    INVITE_REQUEST = "invite request"
    #: non-INVITE request: Timer E doubles up to T2 (17.1.2.2); Timer F ends it.
    NON_INVITE_REQUEST = "non-invite request"
    #: final non-2xx response to INVITE: Timer G up to T2 until ACK; Timer H ends it.
    INVITE_FINAL_RESPONSE = "invite final response"
    #: 2xx response to INVITE, the UAS core's job (13.3.1.4): doubles up to T2,
    #: until ACK or 64*T1.
    INVITE_2XX_RESPONSE = "invite 2xx response"

    @property
    def timeout_timer(self) -> Timer:
        """The timer that ends retransmission with a timeout."""
        return {
            RetransmitKind.INVITE_REQUEST: Timer.B,
            RetransmitKind.NON_INVITE_REQUEST: Timer.F,
            RetransmitKind.INVITE_FINAL_RESPONSE: Timer.H,
            RetransmitKind.INVITE_2XX_RESPONSE: Timer.L,
        }[self]


def retransmit_intervals(kind: RetransmitKind, config: TimerConfig) -> Iterator[float]:
    """The successive waits between transmissions of ``kind``, forever.

    The caller stops at the timeout (``config.duration(kind.timeout_timer)``)
    or when a response or ACK arrives. For a non-INVITE request in the
    Proceeding state (after a 1xx) the wait is T2 each time (17.1.2.2); pass
    that to :func:`proceeding_interval` instead.
    """
    interval = config.t1
    capped = kind is not RetransmitKind.INVITE_REQUEST
    while True:
        yield interval
        interval *= 2
        if capped and interval > config.t2:
            interval = config.t2


def proceeding_interval(config: TimerConfig) -> float:
    """Timer E's value in the Proceeding state: T2 (section 17.1.2.2)."""
    return config.t2
