"""The four transaction state machines (RFC 3261 section 17, RFC 6026).

Pure state: a machine is fed events and returns the actions the I/O layer
performs. It never sleeps, sends or reads a clock; timers are data
(:class:`ArmTimer` / :class:`CancelTimer`) and come back as
:class:`TimerFired` events.

The tables below are the truth: ``(state, trigger) -> next state``, where the
trigger is the event's class, or the timer for a :class:`TimerFired`. The
machines look the next state up there and only decide which actions go with
it; the docs draw the state diagrams from the same tables
(:mod:`trio_sip.transaction.diagram`).

What happens to an event the table does not list:

* an event from the network or the clock (a response, a request
  retransmission, an ACK, a transport error, a timer) is **absorbed**: the
  machine returns no actions and stays where it is. Late, duplicated and
  reordered packets are normal on a network, and a timer may fire just as
  the machine leaves the state that armed it. A :class:`TimerFired` for a
  timer the machine does not hold armed is absorbed in every state.
* an event from the transaction user (:class:`TUEvent`: a response to send,
  :class:`CancelSent`) raises :class:`TransactionUsageError`: the TU broke a
  rule, e.g. sent a second final response. Where the RFC itself says to
  discard such a TU event (a final response in a non-INVITE Completed
  state, section 17.2.2) or a race makes it harmless (a CANCEL that crossed
  the final response), the table lists it explicitly with no action.

Over reliable transports the retransmission timers A, E and G are never
armed, the timeouts B, F and H (64*T1) run as usual, and the wait timers D,
I, J and K are zero: the machine goes through the state and on to
Terminated within the same call.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar, Final, Generic, TypeAlias, TypeVar

from ..errors import SIPError
from ..message import Message, Request, Response, make_ack, make_response
from .keys import ClientKey, LegacyServerKey, ServerKey, client_key, server_key
from .timers import (
    RetransmitKind,
    Timer,
    TimerConfig,
    proceeding_interval,
    retransmit_intervals,
)

__all__ = [
    # errors
    "TransactionUsageError",
    # states
    "ClientInviteState",
    "ClientNonInviteState",
    "ServerInviteState",
    "ServerNonInviteState",
    # events
    "Event",
    "TUEvent",
    "ProvisionalReceived",
    "SuccessReceived",
    "FinalNon2xxReceived",
    "RequestRetransmitted",
    "AckReceived",
    "TimerFired",
    "TransportFailed",
    "SendProvisional",
    "SendSuccess",
    "SendFinalNon2xx",
    "CancelSent",
    "Trigger",
    "response_received",
    "response_from_tu",
    # actions
    "Action",
    "ArmTimer",
    "CancelTimer",
    "Transmit",
    "Retransmit",
    "PassToTU",
    "SendAck",
    "Failure",
    "InformTU",
    "Terminate",
    # tables
    "MachineKind",
    "CLIENT_INVITE_TRANSITIONS",
    "CLIENT_NON_INVITE_TRANSITIONS",
    "SERVER_INVITE_TRANSITIONS",
    "SERVER_NON_INVITE_TRANSITIONS",
    "TRANSITION_NOTES",
    "TRIGGER_NAMES",
    # machines
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "Transaction",
    "MACHINES",
    "DEFAULT_CONFIG",
    "client_transaction",
    "server_transaction",
]


class TransactionUsageError(SIPError):
    """A transaction machine was used against the rules.

    Raised for a TU event the current state does not allow (a second final
    response, a provisional after the final, a CANCEL before any provisional
    response ...), for an event that does not belong to this kind of
    machine, and for feeding a machine before :meth:`start`. The machine is
    left unchanged.
    """


# ----- states --------------------------------------------------------------------


class ClientInviteState(enum.Enum):
    """States of the INVITE client transaction (17.1.1.2; Accepted from RFC 6026 7.2)."""

    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class ClientNonInviteState(enum.Enum):
    """States of the non-INVITE client transaction (17.1.2.2)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


class ServerInviteState(enum.Enum):
    """States of the INVITE server transaction (17.2.1; Accepted from RFC 6026 7.1)."""

    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class ServerNonInviteState(enum.Enum):
    """States of the non-INVITE server transaction (17.2.2)."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


# ----- events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a transaction; fed to ``handle()``."""


@dataclass(frozen=True, slots=True)
class TUEvent(Event):
    """An event that comes from the transaction user (UA core, proxy core)."""


def _check_status(response: Response, low: int, high: int, event: str) -> None:
    if not low <= response.status <= high:
        raise TransactionUsageError(f"{event} needs a {low}-{high} response, not {response.status}")


@dataclass(frozen=True, slots=True)
class ProvisionalReceived(Event):
    """A 1xx response matching a client transaction arrived."""

    response: Response

    def __post_init__(self) -> None:
        _check_status(self.response, 100, 199, "ProvisionalReceived")


@dataclass(frozen=True, slots=True)
class SuccessReceived(Event):
    """A 2xx response matching a client transaction arrived."""

    response: Response

    def __post_init__(self) -> None:
        _check_status(self.response, 200, 299, "SuccessReceived")


@dataclass(frozen=True, slots=True)
class FinalNon2xxReceived(Event):
    """A 3xx-6xx response matching a client transaction arrived."""

    response: Response

    def __post_init__(self) -> None:
        _check_status(self.response, 300, 699, "FinalNon2xxReceived")


@dataclass(frozen=True, slots=True)
class RequestRetransmitted(Event):
    """The request of a server transaction arrived again (matched by its key)."""

    request: Request


@dataclass(frozen=True, slots=True)
class AckReceived(Event):
    """An ACK matching an INVITE server transaction arrived."""

    ack: Request


@dataclass(frozen=True, slots=True)
class TimerFired(Event):
    """A timer armed by :class:`ArmTimer` ran out."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class TransportFailed(Event):
    """The transport could not send a message of this transaction (17.1.4, 17.2.4).

    Named apart from the :class:`trio_sip.errors.TransportError` exception,
    which the I/O layer translates into this event.
    """

    detail: str = ""


@dataclass(frozen=True, slots=True)
class SendProvisional(TUEvent):
    """The TU passes a 1xx response to a server transaction."""

    response: Response

    def __post_init__(self) -> None:
        _check_status(self.response, 100, 199, "SendProvisional")


@dataclass(frozen=True, slots=True)
class SendSuccess(TUEvent):
    """The TU passes a 2xx response to a server transaction.

    For INVITE this covers the TU's own retransmissions of the 2xx
    (section 13.3.1.4), which RFC 6026 routes through the Accepted state.
    """

    response: Response

    def __post_init__(self) -> None:
        _check_status(self.response, 200, 299, "SendSuccess")


@dataclass(frozen=True, slots=True)
class SendFinalNon2xx(TUEvent):
    """The TU passes a 3xx-6xx response to a server transaction."""

    response: Response

    def __post_init__(self) -> None:
        _check_status(self.response, 300, 699, "SendFinalNon2xx")


@dataclass(frozen=True, slots=True)
class CancelSent(TUEvent):
    """The TU sent a CANCEL for this INVITE (section 9.1).

    Only allowed once a provisional response has arrived (9.1: the CANCEL
    "MUST NOT be sent" before). If no final response comes within 64*T1 the
    client transaction gives up (9.1); the machine times that with Timer B.
    """


#: What a table is keyed on besides the state: the event class, or the timer
#: for a :class:`TimerFired`.
Trigger: TypeAlias = type[Event] | Timer


def response_received(response: Response) -> Event:
    """The client-side event for a received ``response``, by its status class."""
    status = response.status
    if status < 200:
        return ProvisionalReceived(response)
    if status < 300:
        return SuccessReceived(response)
    return FinalNon2xxReceived(response)


def response_from_tu(response: Response) -> TUEvent:
    """The server-side event for a ``response`` the TU wants to send."""
    status = response.status
    if status < 200:
        return SendProvisional(response)
    if status < 300:
        return SendSuccess(response)
    return SendFinalNon2xx(response)


# ----- actions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """Something the I/O layer must do for a transaction."""


@dataclass(frozen=True, slots=True)
class ArmTimer(Action):
    """Fire ``timer`` after ``delay`` seconds, replacing it if it is already armed."""

    timer: Timer
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer(Action):
    """Stop ``timer``; a firing already under way is absorbed by the machine."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class Transmit(Action):
    """Send ``message`` for the first time: the request, or a response from the TU."""

    message: Message


@dataclass(frozen=True, slots=True)
class Retransmit(Action):
    """Send ``message`` again: it was sent before by this transaction."""

    message: Message


@dataclass(frozen=True, slots=True)
class PassToTU(Action):
    """Hand ``message`` (a response, a request or an ACK) up to the TU."""

    message: Message


@dataclass(frozen=True, slots=True)
class SendAck(Action):
    """Send the ACK for a non-2xx final response (17.1.1.3), to the INVITE's destination."""

    ack: Request


class Failure(enum.Enum):
    """Why a machine informs its TU."""

    #: Timer B or F: no final response (client); Timer H: no ACK (server).
    TIMEOUT = "timeout"
    #: The transport failed to send one of this transaction's messages.
    TRANSPORT_ERROR = "transport error"
    #: The proxy's Timer C ran out (16.8): CANCEL the branch (the transaction
    #: is in Proceeding) or treat it as a 408 (it was still in Calling).
    TIMER_C = "timer C"


@dataclass(frozen=True, slots=True)
class InformTU(Action):
    """Tell the TU that the transaction failed (or, for Timer C, must be cancelled)."""

    reason: Failure
    #: The timer that ran out, for TIMEOUT and TIMER_C.
    timer: Timer | None = None


@dataclass(frozen=True, slots=True)
class Terminate(Action):
    """The transaction is over: forget it (its timers were cancelled just before)."""


# ----- tables --------------------------------------------------------------------


class MachineKind(enum.Enum):
    """The four transaction machines."""

    CLIENT_INVITE = "client INVITE"
    CLIENT_NON_INVITE = "client non-INVITE"
    SERVER_INVITE = "server INVITE"
    SERVER_NON_INVITE = "server non-INVITE"


_CI = ClientInviteState
_CN = ClientNonInviteState
_SI = ServerInviteState
_SN = ServerNonInviteState

#: INVITE client transaction: RFC 3261 figure 5 as corrected by RFC 6026 figure 5,
#: plus Timer C (16.6 step 11, 16.8) and the CANCEL wait of section 9.1.
CLIENT_INVITE_TRANSITIONS: Final[Mapping[tuple[ClientInviteState, Trigger], ClientInviteState]] = {
    (_CI.CALLING, Timer.A): _CI.CALLING,
    (_CI.CALLING, Timer.B): _CI.TERMINATED,
    (_CI.CALLING, Timer.C): _CI.TERMINATED,
    (_CI.CALLING, TransportFailed): _CI.TERMINATED,
    (_CI.CALLING, ProvisionalReceived): _CI.PROCEEDING,
    (_CI.CALLING, SuccessReceived): _CI.ACCEPTED,
    (_CI.CALLING, FinalNon2xxReceived): _CI.COMPLETED,
    (_CI.PROCEEDING, ProvisionalReceived): _CI.PROCEEDING,
    (_CI.PROCEEDING, SuccessReceived): _CI.ACCEPTED,
    (_CI.PROCEEDING, FinalNon2xxReceived): _CI.COMPLETED,
    (_CI.PROCEEDING, Timer.C): _CI.PROCEEDING,
    (_CI.PROCEEDING, CancelSent): _CI.PROCEEDING,
    (_CI.PROCEEDING, Timer.B): _CI.TERMINATED,
    (_CI.COMPLETED, FinalNon2xxReceived): _CI.COMPLETED,
    (_CI.COMPLETED, TransportFailed): _CI.TERMINATED,
    (_CI.COMPLETED, Timer.D): _CI.TERMINATED,
    (_CI.COMPLETED, CancelSent): _CI.COMPLETED,
    (_CI.ACCEPTED, SuccessReceived): _CI.ACCEPTED,
    (_CI.ACCEPTED, Timer.M): _CI.TERMINATED,
    (_CI.ACCEPTED, CancelSent): _CI.ACCEPTED,
}

#: Non-INVITE client transaction: RFC 3261 figure 6.
CLIENT_NON_INVITE_TRANSITIONS: Final[
    Mapping[tuple[ClientNonInviteState, Trigger], ClientNonInviteState]
] = {
    (_CN.TRYING, Timer.E): _CN.TRYING,
    (_CN.TRYING, Timer.F): _CN.TERMINATED,
    (_CN.TRYING, TransportFailed): _CN.TERMINATED,
    (_CN.TRYING, ProvisionalReceived): _CN.PROCEEDING,
    (_CN.TRYING, SuccessReceived): _CN.COMPLETED,
    (_CN.TRYING, FinalNon2xxReceived): _CN.COMPLETED,
    (_CN.PROCEEDING, Timer.E): _CN.PROCEEDING,
    (_CN.PROCEEDING, Timer.F): _CN.TERMINATED,
    (_CN.PROCEEDING, TransportFailed): _CN.TERMINATED,
    (_CN.PROCEEDING, ProvisionalReceived): _CN.PROCEEDING,
    (_CN.PROCEEDING, SuccessReceived): _CN.COMPLETED,
    (_CN.PROCEEDING, FinalNon2xxReceived): _CN.COMPLETED,
    (_CN.COMPLETED, ProvisionalReceived): _CN.COMPLETED,
    (_CN.COMPLETED, SuccessReceived): _CN.COMPLETED,
    (_CN.COMPLETED, FinalNon2xxReceived): _CN.COMPLETED,
    (_CN.COMPLETED, Timer.K): _CN.TERMINATED,
}

#: INVITE server transaction: RFC 6026 figure 7 (which replaces RFC 3261 figure 7).
SERVER_INVITE_TRANSITIONS: Final[Mapping[tuple[ServerInviteState, Trigger], ServerInviteState]] = {
    (_SI.PROCEEDING, RequestRetransmitted): _SI.PROCEEDING,
    (_SI.PROCEEDING, SendProvisional): _SI.PROCEEDING,
    (_SI.PROCEEDING, TransportFailed): _SI.PROCEEDING,
    (_SI.PROCEEDING, SendSuccess): _SI.ACCEPTED,
    (_SI.PROCEEDING, SendFinalNon2xx): _SI.COMPLETED,
    (_SI.COMPLETED, RequestRetransmitted): _SI.COMPLETED,
    (_SI.COMPLETED, Timer.G): _SI.COMPLETED,
    (_SI.COMPLETED, TransportFailed): _SI.COMPLETED,
    (_SI.COMPLETED, AckReceived): _SI.CONFIRMED,
    (_SI.COMPLETED, Timer.H): _SI.TERMINATED,
    (_SI.CONFIRMED, AckReceived): _SI.CONFIRMED,
    (_SI.CONFIRMED, Timer.I): _SI.TERMINATED,
    (_SI.ACCEPTED, RequestRetransmitted): _SI.ACCEPTED,
    (_SI.ACCEPTED, AckReceived): _SI.ACCEPTED,
    (_SI.ACCEPTED, SendSuccess): _SI.ACCEPTED,
    (_SI.ACCEPTED, TransportFailed): _SI.ACCEPTED,
    (_SI.ACCEPTED, Timer.L): _SI.TERMINATED,
}

#: Non-INVITE server transaction: RFC 3261 figure 8.
SERVER_NON_INVITE_TRANSITIONS: Final[
    Mapping[tuple[ServerNonInviteState, Trigger], ServerNonInviteState]
] = {
    (_SN.TRYING, RequestRetransmitted): _SN.TRYING,
    (_SN.TRYING, SendProvisional): _SN.PROCEEDING,
    (_SN.TRYING, SendSuccess): _SN.COMPLETED,
    (_SN.TRYING, SendFinalNon2xx): _SN.COMPLETED,
    (_SN.PROCEEDING, RequestRetransmitted): _SN.PROCEEDING,
    (_SN.PROCEEDING, SendProvisional): _SN.PROCEEDING,
    (_SN.PROCEEDING, SendSuccess): _SN.COMPLETED,
    (_SN.PROCEEDING, SendFinalNon2xx): _SN.COMPLETED,
    (_SN.PROCEEDING, TransportFailed): _SN.TERMINATED,
    (_SN.COMPLETED, RequestRetransmitted): _SN.COMPLETED,
    (_SN.COMPLETED, SendSuccess): _SN.COMPLETED,
    (_SN.COMPLETED, SendFinalNon2xx): _SN.COMPLETED,
    (_SN.COMPLETED, TransportFailed): _SN.TERMINATED,
    (_SN.COMPLETED, Timer.J): _SN.TERMINATED,
}

#: How the diagrams name each trigger (the RFC figures' wording).
TRIGGER_NAMES: Final[Mapping[Trigger, str]] = {
    ProvisionalReceived: "1xx received",
    SuccessReceived: "2xx received",
    FinalNon2xxReceived: "300-699 received",
    RequestRetransmitted: "request retransmission",
    AckReceived: "ACK received",
    TransportFailed: "transport error",
    SendProvisional: "1xx from TU",
    SendSuccess: "2xx from TU",
    SendFinalNon2xx: "300-699 from TU",
    CancelSent: "CANCEL sent by TU",
    **{timer: f"Timer {timer.value} fires" for timer in Timer},
}

#: What each transition does, in words, for the docs: same keys as the tables.
TRANSITION_NOTES: Final[Mapping[MachineKind, Mapping[tuple[enum.Enum, Trigger], str]]] = {
    MachineKind.CLIENT_INVITE: {
        (_CI.CALLING, Timer.A): "retransmit INVITE; restart A with twice the interval (17.1.1.2)",
        (_CI.CALLING, Timer.B): "inform TU: timeout",
        (_CI.CALLING, Timer.C): "inform TU: Timer C (proxy answers as if 408, 16.8)",
        (_CI.CALLING, TransportFailed): "inform TU: transport error",
        (_CI.CALLING, ProvisionalReceived): "1xx to TU; stop A and B; restart C unless 100",
        (_CI.CALLING, SuccessReceived): "2xx to TU; start M (RFC 6026)",
        (_CI.CALLING, FinalNon2xxReceived): "response to TU; send ACK; start D",
        (_CI.PROCEEDING, ProvisionalReceived): "1xx to TU; restart C unless 100",
        (_CI.PROCEEDING, SuccessReceived): "2xx to TU; start M (RFC 6026)",
        (_CI.PROCEEDING, FinalNon2xxReceived): "response to TU; send ACK; start D",
        (_CI.PROCEEDING, Timer.C): "inform TU: Timer C (proxy sends CANCEL, 16.8)",
        (_CI.PROCEEDING, CancelSent): "start B: give up 64*T1 after the CANCEL (9.1)",
        (_CI.PROCEEDING, Timer.B): "inform TU: timeout (no final response after CANCEL)",
        (_CI.COMPLETED, FinalNon2xxReceived): "send the ACK again; not passed to TU",
        (_CI.COMPLETED, TransportFailed): "inform TU: transport error",
        (_CI.COMPLETED, Timer.D): "nothing",
        (_CI.COMPLETED, CancelSent): "nothing: the CANCEL crossed the final response",
        (_CI.ACCEPTED, SuccessReceived): "2xx to TU (the TU sends the ACK)",
        (_CI.ACCEPTED, Timer.M): "nothing",
        (_CI.ACCEPTED, CancelSent): "nothing: the CANCEL crossed the 2xx",
    },
    MachineKind.CLIENT_NON_INVITE: {
        (_CN.TRYING, Timer.E): "retransmit request; restart E with MIN(2*E, T2)",
        (_CN.TRYING, Timer.F): "inform TU: timeout",
        (_CN.TRYING, TransportFailed): "inform TU: transport error",
        (_CN.TRYING, ProvisionalReceived): "1xx to TU",
        (_CN.TRYING, SuccessReceived): "response to TU; stop E and F; start K",
        (_CN.TRYING, FinalNon2xxReceived): "response to TU; stop E and F; start K",
        (_CN.PROCEEDING, Timer.E): "retransmit request; restart E with T2",
        (_CN.PROCEEDING, Timer.F): "inform TU: timeout",
        (_CN.PROCEEDING, TransportFailed): "inform TU: transport error",
        (_CN.PROCEEDING, ProvisionalReceived): "1xx to TU",
        (_CN.PROCEEDING, SuccessReceived): "response to TU; stop E and F; start K",
        (_CN.PROCEEDING, FinalNon2xxReceived): "response to TU; stop E and F; start K",
        (_CN.COMPLETED, ProvisionalReceived): "absorbed",
        (_CN.COMPLETED, SuccessReceived): "absorbed (response retransmission)",
        (_CN.COMPLETED, FinalNon2xxReceived): "absorbed (response retransmission)",
        (_CN.COMPLETED, Timer.K): "nothing",
    },
    MachineKind.SERVER_INVITE: {
        (_SI.PROCEEDING, RequestRetransmitted): "send the latest provisional response again",
        (_SI.PROCEEDING, SendProvisional): "send response",
        (_SI.PROCEEDING, TransportFailed): "inform TU: transport error",
        (_SI.PROCEEDING, SendSuccess): "send response; start L (RFC 6026)",
        (_SI.PROCEEDING, SendFinalNon2xx): "send response; start G (unreliable) and H",
        (_SI.COMPLETED, RequestRetransmitted): "send the final response again",
        (_SI.COMPLETED, Timer.G): "send the final response again; restart G with MIN(2*G, T2)",
        (_SI.COMPLETED, TransportFailed): "inform TU: transport error",
        (_SI.COMPLETED, AckReceived): "stop G and H; start I (ACK not passed to TU)",
        (_SI.COMPLETED, Timer.H): "inform TU: timeout (no ACK)",
        (_SI.CONFIRMED, AckReceived): "absorbed (ACK retransmission)",
        (_SI.CONFIRMED, Timer.I): "nothing",
        (_SI.ACCEPTED, RequestRetransmitted): "absorbed, not passed to TU (RFC 6026)",
        (_SI.ACCEPTED, AckReceived): "ACK to TU",
        (_SI.ACCEPTED, SendSuccess): "send response (the TU's 2xx retransmission)",
        (_SI.ACCEPTED, TransportFailed): "inform TU: transport error",
        (_SI.ACCEPTED, Timer.L): "nothing",
    },
    MachineKind.SERVER_NON_INVITE: {
        (_SN.TRYING, RequestRetransmitted): "discarded (17.2.2)",
        (_SN.TRYING, SendProvisional): "send response",
        (_SN.TRYING, SendSuccess): "send response; start J",
        (_SN.TRYING, SendFinalNon2xx): "send response; start J",
        (_SN.PROCEEDING, RequestRetransmitted): "send the latest provisional response again",
        (_SN.PROCEEDING, SendProvisional): "send response",
        (_SN.PROCEEDING, SendSuccess): "send response; start J",
        (_SN.PROCEEDING, SendFinalNon2xx): "send response; start J",
        (_SN.PROCEEDING, TransportFailed): "inform TU: transport error",
        (_SN.COMPLETED, RequestRetransmitted): "send the final response again",
        (_SN.COMPLETED, SendSuccess): "discarded (17.2.2)",
        (_SN.COMPLETED, SendFinalNon2xx): "discarded (17.2.2)",
        (_SN.COMPLETED, TransportFailed): "inform TU: transport error",
        (_SN.COMPLETED, Timer.J): "nothing",
    },
}


# ----- the machines ----------------------------------------------------------------

S = TypeVar("S", ClientInviteState, ClientNonInviteState, ServerInviteState, ServerNonInviteState)

# A machine keeps its armed timers as a bit mask, an int: a set of Timer
# members is a container the garbage collector walks, and a finished
# transaction keeps its machine 64*T1, two a call.
_TIMERS: Final = tuple(Timer)
_TIMER_BIT: Final = {timer: 1 << i for i, timer in enumerate(_TIMERS)}
# The mask of each set of timers a machine keeps across a change of state.
_KEEP_MASKS: dict[frozenset[Timer], int] = {}


def _mask(timers: frozenset[Timer]) -> int:
    mask = _KEEP_MASKS.get(timers)
    if mask is None:
        mask = _KEEP_MASKS[timers] = sum(_TIMER_BIT[timer] for timer in timers)
    return mask


#: The RFC 3261 defaults (T1 = 500 ms, T2 = 4 s, T4 = 5 s).
DEFAULT_CONFIG: Final = TimerConfig()


class _Machine(abc.ABC, Generic[S]):
    """The table-driven engine the four machines share.

    Subclasses give the table, the events they accept, the timers that
    survive a change into each state, and two hooks: ``_act`` (the actions
    of one transition, before the state changes) and ``_enter`` (the
    timers a state starts).
    """

    __slots__ = ("_armed", "_started", "_state", "config", "reliable", "request")

    KIND: ClassVar[MachineKind]
    #: Events this kind of machine takes at all; anything else is a wiring bug.
    EVENTS: ClassVar[frozenset[type[Event]]]

    def __init__(
        self, request: Request, *, reliable: bool, config: TimerConfig, initial: S
    ) -> None:
        #: The request that created the transaction.
        self.request = request
        #: True over TCP, TLS, SCTP and WebSocket: no retransmissions, zero wait timers.
        self.reliable = reliable
        #: The timer values.
        self.config = config
        self._state: S = initial
        self._armed = 0  # a bit per timer of _TIMERS
        self._started = False

    # ----- subclass interface -------------------------------------------------------

    @abc.abstractmethod
    def _table(self) -> Mapping[tuple[S, Trigger], S]:
        """The transition table of this kind of machine."""

    def _keep(self, state: S) -> frozenset[Timer]:
        # Timers that stay armed across a change into ``state``.
        return frozenset()

    @abc.abstractmethod
    def _act(self, old: S, event: Event, new: S, out: list[Action]) -> None:
        """Append the actions of the transition ``old`` --event--> ``new``."""

    def _enter(self, state: S, out: list[Action]) -> None:
        pass

    @abc.abstractmethod
    def _begin(self, out: list[Action]) -> None:
        """Append the actions that start the transaction."""

    # ----- public -----------------------------------------------------------------

    @property
    def state(self) -> S:
        """The current state."""
        return self._state

    @property
    def terminated(self) -> bool:
        """True once the machine has returned :class:`Terminate`."""
        return self._state.name == "TERMINATED"

    @property
    def armed_timers(self) -> frozenset[Timer]:
        """The timers the machine expects to fire (armed and not cancelled)."""
        armed = self._armed
        return frozenset(timer for timer in _TIMERS if armed & _TIMER_BIT[timer])

    def start(self) -> list[Action]:
        """The actions that start the transaction; call once, before ``handle``."""
        if self._started:
            raise TransactionUsageError(f"{self.KIND.value} transaction already started")
        self._started = True
        out: list[Action] = []
        self._begin(out)
        return out

    def handle(self, event: Event) -> list[Action]:
        """Feed ``event``; return the actions to perform, in order.

        Raises :class:`TransactionUsageError` for an event this kind of
        machine never takes and for a TU event the current state does not
        allow; absorbs (returns ``[]``) any other event the table does not
        list, and any :class:`TimerFired` for a timer that is not armed.
        """
        if not self._started:
            raise TransactionUsageError(f"{self.KIND.value} transaction not started")
        etype = type(event)
        if etype not in self.EVENTS:
            raise TransactionUsageError(
                f"a {self.KIND.value} transaction does not take {etype.__name__}"
            )
        trigger: Trigger
        if isinstance(event, TimerFired):
            bit = _TIMER_BIT[event.timer]
            if not self._armed & bit:
                return []  # cancelled, or fired twice: the I/O layer lost a race
            self._armed &= ~bit
            trigger = event.timer
        else:
            trigger = etype
        old = self._state
        new = self._table().get((old, trigger))
        if new is None:
            if isinstance(event, TUEvent):
                raise TransactionUsageError(
                    f"{etype.__name__} is not allowed in state {old.value} "
                    f"of a {self.KIND.value} transaction"
                )
            return []
        out: list[Action] = []
        self._step(old, event, new, out)
        return out

    # ----- engine -----------------------------------------------------------------

    def _step(self, old: S, event: Event, new: S, out: list[Action]) -> None:
        self._act(old, event, new, out)
        if new is old:
            return
        keep = _mask(self._keep(new))
        cancelled = self._armed & ~keep
        if cancelled:
            for timer in _TIMERS:  # in the order of the Timer enumeration
                if cancelled & _TIMER_BIT[timer]:
                    out.append(CancelTimer(timer))
        self._armed &= keep
        self._state = new
        if self.terminated:
            out.append(Terminate())
        else:
            self._enter(new, out)

    def _arm(self, timer: Timer, delay: float, out: list[Action]) -> None:
        self._armed |= _TIMER_BIT[timer]
        out.append(ArmTimer(timer, delay))

    def _wait(self, timer: Timer, out: list[Action]) -> None:
        """Start a wait timer, or take its transition now when it is zero (reliable)."""
        delay = self.config.duration(timer, reliable=self.reliable)
        if delay > 0:
            self._arm(timer, delay, out)
            return
        old = self._state
        self._step(old, TimerFired(timer), self._table()[(old, timer)], out)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._state.value} {self.request.summary()}>"


class ClientInviteTransaction(_Machine[ClientInviteState]):
    """The INVITE client transaction (RFC 3261 17.1.1, RFC 6026 7.2).

    ``start()`` transmits the INVITE and arms A (unreliable only), B, and C
    when ``timer_c`` is set (a proxy's client transaction, 16.6 step 11).
    A 2xx goes to the TU, which sends its own ACK (13.2.2.4); for a 3xx-6xx
    the machine builds the ACK with :func:`~trio_sip.message.make_ack` and
    sends it again for every retransmission of that response.
    """

    __slots__ = ("_ack", "_intervals", "timer_c")

    KIND = MachineKind.CLIENT_INVITE
    EVENTS = frozenset(
        {
            ProvisionalReceived,
            SuccessReceived,
            FinalNon2xxReceived,
            TimerFired,
            TransportFailed,
            CancelSent,
        }
    )

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        config: TimerConfig = DEFAULT_CONFIG,
        timer_c: bool = False,
    ) -> None:
        super().__init__(request, reliable=reliable, config=config, initial=_CI.CALLING)
        #: Run Timer C, the proxy's INVITE timeout, reset by each 101-199 response (16.7).
        self.timer_c = timer_c
        self._ack: Request | None = None
        self._intervals: Iterator[float] = retransmit_intervals(
            RetransmitKind.INVITE_REQUEST, config
        )

    @property
    def key(self) -> ClientKey:
        """The key responses are matched with (17.1.3)."""
        return client_key(self.request)

    @property
    def ack(self) -> Request | None:
        """The ACK sent for the non-2xx final response, once there is one."""
        return self._ack

    def _table(self) -> Mapping[tuple[ClientInviteState, Trigger], ClientInviteState]:
        return CLIENT_INVITE_TRANSITIONS

    def _keep(self, state: ClientInviteState) -> frozenset[Timer]:
        # Timer C runs on through Proceeding (16.6, 16.7 step 2); A and B
        # belong to Calling only (17.1.1.2: B is effective in Calling).
        return frozenset({Timer.C}) if state is _CI.PROCEEDING else frozenset()

    def _begin(self, out: list[Action]) -> None:
        # 17.1.1.2: send, then A (unreliable only) and B for any transport.
        out.append(Transmit(self.request))
        if not self.reliable:
            self._arm(Timer.A, next(self._intervals), out)
        self._arm(Timer.B, self.config.duration(Timer.B), out)
        if self.timer_c:
            self._arm(Timer.C, self.config.duration(Timer.C), out)

    def _act(
        self,
        old: ClientInviteState,
        event: Event,
        new: ClientInviteState,
        out: list[Action],
    ) -> None:
        match event:
            case ProvisionalReceived(response=response):
                out.append(PassToTU(response))
                if self.timer_c and response.status != 100:
                    # 16.7 step 2: a 101-199 resets Timer C, "anything but
                    # 100": a 100 only says the next hop got the INVITE.
                    self._arm(Timer.C, self.config.duration(Timer.C), out)
            case SuccessReceived(response=response):
                # RFC 6026 7.2: every 2xx goes up; the TU builds the ACK.
                out.append(PassToTU(response))
            case FinalNon2xxReceived(response=response):
                if old is _CI.COMPLETED:
                    # 17.1.1.2: a retransmission gets the same ACK, not the TU.
                    assert self._ack is not None
                    out.append(SendAck(self._ack))
                else:
                    self._ack = make_ack(self.request, response)
                    out.append(PassToTU(response))
                    out.append(SendAck(self._ack))
            case TimerFired(timer=Timer.A):
                out.append(Retransmit(self.request))
                self._arm(Timer.A, next(self._intervals), out)
            case TimerFired(timer=Timer.B):
                out.append(InformTU(Failure.TIMEOUT, Timer.B))
            case TimerFired(timer=Timer.C):
                out.append(InformTU(Failure.TIMER_C, Timer.C))
            case TransportFailed():
                out.append(InformTU(Failure.TRANSPORT_ERROR))
            case CancelSent() if old is _CI.PROCEEDING and not self._armed & _TIMER_BIT[Timer.B]:
                # 9.1: no final response 64*T1 after the CANCEL: give up.
                self._arm(Timer.B, self.config.duration(Timer.B), out)
            case _:
                pass  # D and M only change the state; a late CANCEL does nothing

    def _enter(self, state: ClientInviteState, out: list[Action]) -> None:
        if state is _CI.COMPLETED:
            self._wait(Timer.D, out)
        elif state is _CI.ACCEPTED:
            # RFC 6026 7.2: Accepted waits 64*T1 for more 2xx (forks, retransmissions).
            self._arm(Timer.M, self.config.duration(Timer.M), out)


class ClientNonInviteTransaction(_Machine[ClientNonInviteState]):
    """The non-INVITE client transaction (RFC 3261 17.1.2).

    ``start()`` transmits the request and arms E (unreliable only) and F.
    E doubles up to T2 in Trying and is T2 in Proceeding (17.1.2.2).
    """

    __slots__ = ("_intervals",)

    KIND = MachineKind.CLIENT_NON_INVITE
    EVENTS = frozenset(
        {ProvisionalReceived, SuccessReceived, FinalNon2xxReceived, TimerFired, TransportFailed}
    )

    def __init__(
        self, request: Request, *, reliable: bool, config: TimerConfig = DEFAULT_CONFIG
    ) -> None:
        super().__init__(request, reliable=reliable, config=config, initial=_CN.TRYING)
        self._intervals: Iterator[float] = retransmit_intervals(
            RetransmitKind.NON_INVITE_REQUEST, config
        )

    @property
    def key(self) -> ClientKey:
        """The key responses are matched with (17.1.3)."""
        return client_key(self.request)

    def _table(self) -> Mapping[tuple[ClientNonInviteState, Trigger], ClientNonInviteState]:
        return CLIENT_NON_INVITE_TRANSITIONS

    def _keep(self, state: ClientNonInviteState) -> frozenset[Timer]:
        # 17.1.2.2: E and F keep running in Proceeding.
        return frozenset({Timer.E, Timer.F}) if state is _CN.PROCEEDING else frozenset()

    def _begin(self, out: list[Action]) -> None:
        out.append(Transmit(self.request))
        if not self.reliable:
            self._arm(Timer.E, next(self._intervals), out)
        self._arm(Timer.F, self.config.duration(Timer.F), out)

    def _act(
        self,
        old: ClientNonInviteState,
        event: Event,
        new: ClientNonInviteState,
        out: list[Action],
    ) -> None:
        match event:
            case (
                ProvisionalReceived(response=r)
                | SuccessReceived(response=r)
                | (FinalNon2xxReceived(response=r))
            ):
                if old is not _CN.COMPLETED:
                    out.append(PassToTU(r))
                # 17.1.2.2: in Completed, retransmissions are buffered (absorbed).
            case TimerFired(timer=Timer.E):
                out.append(Retransmit(self.request))
                if old is _CN.PROCEEDING:
                    delay = proceeding_interval(self.config)
                else:
                    delay = next(self._intervals)
                self._arm(Timer.E, delay, out)
            case TimerFired(timer=Timer.F):
                out.append(InformTU(Failure.TIMEOUT, Timer.F))
            case TransportFailed():
                out.append(InformTU(Failure.TRANSPORT_ERROR))
            case _:
                pass  # K only changes the state

    def _enter(self, state: ClientNonInviteState, out: list[Action]) -> None:
        if state is _CN.COMPLETED:
            self._wait(Timer.K, out)


class ServerInviteTransaction(_Machine[ServerInviteState]):
    """The INVITE server transaction (RFC 3261 17.2.1 as corrected by RFC 6026 7.1).

    ``start()`` sends a 100 (Trying) unless ``send_trying`` is False (17.2.1:
    the TU promises a response within 200 ms) and passes the INVITE to the TU.
    A 2xx leads to Accepted, where the TU's own 2xx retransmissions pass
    through, ACKs go up to the TU and INVITE retransmissions are absorbed;
    a 3xx-6xx is retransmitted on Timer G until the ACK, which is absorbed.
    """

    __slots__ = ("_final", "_intervals", "_provisional", "send_trying")

    KIND = MachineKind.SERVER_INVITE
    EVENTS = frozenset(
        {
            RequestRetransmitted,
            AckReceived,
            TimerFired,
            TransportFailed,
            SendProvisional,
            SendSuccess,
            SendFinalNon2xx,
        }
    )

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        config: TimerConfig = DEFAULT_CONFIG,
        send_trying: bool = True,
    ) -> None:
        super().__init__(request, reliable=reliable, config=config, initial=_SI.PROCEEDING)
        #: Send 100 (Trying) at once on start.
        self.send_trying = send_trying
        self._provisional: Response | None = None
        self._final: Response | None = None
        # Made when a non-2xx final response needs them (Completed over
        # UDP): most INVITEs are answered 2xx, whose retransmission is the TU's.
        self._intervals: Iterator[float] | None = None

    @property
    def key(self) -> ServerKey | LegacyServerKey:
        """The key requests are matched with (17.2.3)."""
        return server_key(self.request)

    @property
    def last_response(self) -> Response | None:
        """The final response if one was sent, else the latest provisional one."""
        return self._final if self._final is not None else self._provisional

    def _table(self) -> Mapping[tuple[ServerInviteState, Trigger], ServerInviteState]:
        return SERVER_INVITE_TRANSITIONS

    def _begin(self, out: list[Action]) -> None:
        if self.send_trying:
            # 17.2.1: 100 (Trying) quenches INVITE retransmissions; no To tag
            # ("downgraded from MAY to SHOULD NOT").
            self._provisional = make_response(self.request, 100)
            out.append(Transmit(self._provisional))
        out.append(PassToTU(self.request))

    def _act(
        self,
        old: ServerInviteState,
        event: Event,
        new: ServerInviteState,
        out: list[Action],
    ) -> None:
        match event:
            case RequestRetransmitted():
                if old is _SI.PROCEEDING and self._provisional is not None:
                    out.append(Retransmit(self._provisional))
                elif old is _SI.COMPLETED:
                    assert self._final is not None
                    out.append(Retransmit(self._final))
                # Accepted: RFC 6026 7.1 absorbs it; the TU retransmits its 2xx.
            case SendProvisional(response=response):
                self._provisional = response
                out.append(Transmit(response))
            case SendSuccess(response=response):
                self._final = response
                out.append(Transmit(response))
            case SendFinalNon2xx(response=response):
                self._final = response
                out.append(Transmit(response))
            case AckReceived(ack=ack):
                if old is _SI.ACCEPTED:
                    # RFC 6026 8.7: ACKs in Accepted go to the TU, not absorbed.
                    out.append(PassToTU(ack))
                # Completed/Confirmed: the ACK of a non-2xx ends here (17.2.1).
            case TimerFired(timer=Timer.G):
                assert self._final is not None
                assert self._intervals is not None
                out.append(Retransmit(self._final))
                self._arm(Timer.G, next(self._intervals), out)
            case TimerFired(timer=Timer.H):
                # 17.2.1: no ACK; "indicate to the TU that a transaction
                # failure has occurred".
                out.append(InformTU(Failure.TIMEOUT, Timer.H))
            case TransportFailed():
                # RFC 6026 figure 7: inform the TU and stay; the timers end it.
                out.append(InformTU(Failure.TRANSPORT_ERROR))
            case _:
                pass  # I and L only change the state

    def _enter(self, state: ServerInviteState, out: list[Action]) -> None:
        if state is _SI.COMPLETED:
            if not self.reliable:
                self._intervals = retransmit_intervals(
                    RetransmitKind.INVITE_FINAL_RESPONSE, self.config
                )
                self._arm(Timer.G, next(self._intervals), out)
            self._arm(Timer.H, self.config.duration(Timer.H), out)
        elif state is _SI.CONFIRMED:
            self._wait(Timer.I, out)
        elif state is _SI.ACCEPTED:
            self._arm(Timer.L, self.config.duration(Timer.L), out)


class ServerNonInviteTransaction(_Machine[ServerNonInviteState]):
    """The non-INVITE server transaction (RFC 3261 17.2.2).

    ``start()`` passes the request to the TU. Retransmissions are discarded
    in Trying and answered with the latest response afterwards.
    """

    __slots__ = ("_final", "_provisional")

    KIND = MachineKind.SERVER_NON_INVITE
    EVENTS = frozenset(
        {
            RequestRetransmitted,
            TimerFired,
            TransportFailed,
            SendProvisional,
            SendSuccess,
            SendFinalNon2xx,
        }
    )

    def __init__(
        self, request: Request, *, reliable: bool, config: TimerConfig = DEFAULT_CONFIG
    ) -> None:
        super().__init__(request, reliable=reliable, config=config, initial=_SN.TRYING)
        self._provisional: Response | None = None
        self._final: Response | None = None

    @property
    def key(self) -> ServerKey | LegacyServerKey:
        """The key requests are matched with (17.2.3)."""
        return server_key(self.request)

    @property
    def last_response(self) -> Response | None:
        """The final response if one was sent, else the latest provisional one."""
        return self._final if self._final is not None else self._provisional

    def _table(self) -> Mapping[tuple[ServerNonInviteState, Trigger], ServerNonInviteState]:
        return SERVER_NON_INVITE_TRANSITIONS

    def _begin(self, out: list[Action]) -> None:
        out.append(PassToTU(self.request))

    def _act(
        self,
        old: ServerNonInviteState,
        event: Event,
        new: ServerNonInviteState,
        out: list[Action],
    ) -> None:
        match event:
            case RequestRetransmitted():
                last = self._final if old is _SN.COMPLETED else self._provisional
                if old is not _SN.TRYING and last is not None:
                    out.append(Retransmit(last))
            case SendProvisional(response=response):
                self._provisional = response
                out.append(Transmit(response))
            case SendSuccess(response=response) | SendFinalNon2xx(response=response):
                if old is not _SN.COMPLETED:
                    self._final = response
                    out.append(Transmit(response))
                # 17.2.2: later finals from the TU "MUST be discarded".
            case TransportFailed():
                out.append(InformTU(Failure.TRANSPORT_ERROR))
            case _:
                pass  # J only changes the state

    def _enter(self, state: ServerNonInviteState, out: list[Action]) -> None:
        if state is _SN.COMPLETED:
            self._wait(Timer.J, out)


#: Any of the four machines.
Transaction: TypeAlias = (
    ClientInviteTransaction
    | ClientNonInviteTransaction
    | ServerInviteTransaction
    | ServerNonInviteTransaction
)

#: The machine class for each kind.
MACHINES: Final[
    Mapping[
        MachineKind,
        type[ClientInviteTransaction]
        | type[ClientNonInviteTransaction]
        | type[ServerInviteTransaction]
        | type[ServerNonInviteTransaction],
    ]
] = {
    MachineKind.CLIENT_INVITE: ClientInviteTransaction,
    MachineKind.CLIENT_NON_INVITE: ClientNonInviteTransaction,
    MachineKind.SERVER_INVITE: ServerInviteTransaction,
    MachineKind.SERVER_NON_INVITE: ServerNonInviteTransaction,
}


def client_transaction(
    request: Request,
    *,
    reliable: bool,
    config: TimerConfig = DEFAULT_CONFIG,
    timer_c: bool = False,
) -> ClientInviteTransaction | ClientNonInviteTransaction:
    """A client transaction for ``request``, INVITE or not (not started).

    An ACK is not a transaction (17.1.1.3, 13.2.2.4): it raises
    :class:`TransactionUsageError`. ``timer_c`` applies to INVITE only.
    """
    if request.method == "ACK":
        raise TransactionUsageError("an ACK is sent without a client transaction")
    if request.method == "INVITE":
        return ClientInviteTransaction(request, reliable=reliable, config=config, timer_c=timer_c)
    return ClientNonInviteTransaction(request, reliable=reliable, config=config)


def server_transaction(
    request: Request,
    *,
    reliable: bool,
    config: TimerConfig = DEFAULT_CONFIG,
    send_trying: bool = True,
) -> ServerInviteTransaction | ServerNonInviteTransaction:
    """A server transaction for ``request``, INVITE or not (not started).

    An ACK never creates one: it belongs to an INVITE transaction (non-2xx)
    or to the TU (2xx); this raises :class:`TransactionUsageError`.
    ``send_trying`` applies to INVITE only.
    """
    if request.method == "ACK":
        raise TransactionUsageError("an ACK does not create a server transaction")
    if request.method == "INVITE":
        return ServerInviteTransaction(
            request, reliable=reliable, config=config, send_trying=send_trying
        )
    return ServerNonInviteTransaction(request, reliable=reliable, config=config)
