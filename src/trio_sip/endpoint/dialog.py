"""Dialog state (RFC 3261 section 12), sans-IO.

A :class:`Dialog` is the peer-to-peer relationship an INVITE (or another
dialog-creating request) sets up: identified by Call-ID, local tag and
remote tag (12), it remembers the route set, the remote target, both
sequence numbers and whether it is secure, and it builds the requests sent
inside it (12.2.1.1), including the ACK for a 2xx (13.2.2.4). Like the
message and transaction layers it never does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import SIPError
from ..message import URI, CSeq, Headers, NameAddr, Request, Response, canonical_name

__all__ = [
    "DIALOG_CREATING_METHODS",
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogError",
    "DialogId",
    "DialogState",
    "dialog_id_of_request",
    "dialog_id_of_response",
]

#: Requests whose 101-299 responses create a dialog (12.1; RFC 6665 for SUBSCRIBE).
DIALOG_CREATING_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER"})

#: Requests that update the remote target from their Contact (12.2; RFC 3311 for UPDATE).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogError(SIPError):
    """A message cannot create or belong to a dialog (no tag, no Contact ...)."""


class DialogState(enum.Enum):
    """Where a dialog stands (12: early after a 1xx, confirmed after a 2xx)."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogId(NamedTuple):
    """Call-ID, local tag and remote tag (12): equal ids mean the same dialog.

    Tags compare case-insensitively (7.3.1), so they are stored lower case;
    the Call-ID compares byte for byte.
    """

    call_id: str
    local_tag: str
    remote_tag: str


def dialog_id_of_request(request: Request) -> DialogId | None:
    """The id of the dialog a received ``request`` belongs to, as its UAS sees it.

    The local tag is the To tag and the remote tag the From tag (12.2.2).
    None when the request carries no To tag (it is outside any dialog).
    """
    # A typed view: the Endpoint and the UA ask several times per request.
    return request._view("dialog_id", _dialog_id_of_request)


def _dialog_id_of_request(request: Request) -> DialogId | None:
    to_tag = request.to.tag
    if to_tag is None:
        return None
    return DialogId(request.call_id, to_tag.lower(), (request.from_.tag or "").lower())


def dialog_id_of_response(response: Response) -> DialogId | None:
    """The id of the dialog a received ``response`` belongs to, as its UAC sees it.

    The local tag is the From tag and the remote tag the To tag (12.1.2).
    None when the response carries no To tag, unless it is a 2xx: an RFC
    2543 UAS's answer, whose tag is null (``""``).
    """
    to_tag = response.to.tag
    if to_tag is None:
        # 12.1.2: "A UAC MUST be prepared to receive a response without a
        # tag in the To field, in which case the tag is considered to have a
        # value of null". A provisional without one (a 100) makes no dialog.
        if not 200 <= response.status < 300:
            return None
        to_tag = ""
    return DialogId(response.call_id, (response.from_.tag or "").lower(), to_tag.lower())


def _contact_target(message: Request | Response) -> URI | None:
    contacts = message.contacts
    return contacts[0].uri if contacts else None


@dataclass(slots=True)
class Dialog:
    """The state of one dialog (12.1), on the UAC or the UAS side.

    Build one with :meth:`from_uac` or :meth:`from_uas`; then
    :meth:`create_request` and :meth:`create_ack` build requests inside
    it, :meth:`check_request` checks and accounts a received request, and
    :meth:`update_from_response` follows a response of this dialog.
    """

    call_id: str
    #: The tags as written in the dialog-creating exchange: our requests
    #: repeat them byte for byte (stacks that compare tags case-sensitively
    #: would answer a re-spelt one 481); :attr:`id` holds them lower-cased.
    local_tag: str
    remote_tag: str
    #: The From URI for our requests and the To URI (12.1.1, 12.1.2), tags aside.
    local_uri: NameAddr
    remote_uri: NameAddr
    #: Where in-dialog requests go: the peer's Contact (12.1.1, 12.1.2).
    remote_target: URI
    #: Record-Route of the dialog-creating exchange, in the order requests use it.
    route_set: list[NameAddr] = field(default_factory=list)
    #: The CSeq number of our last request (None: none sent yet, UAS side).
    local_seq: int | None = None
    #: The CSeq number of the peer's last request (None: none seen yet, UAC side).
    remote_seq: int | None = None
    #: True when the dialog was set up over TLS with a sips URI (12.1.1).
    secure: bool = False
    state: DialogState = DialogState.EARLY
    #: True for the side that sent the dialog-creating request.
    is_uac: bool = True
    #: Our Contact, repeated in target refresh requests (12.2.1.1).
    local_contact: NameAddr | None = None
    # Made once: the dialog is filed under it in several tables per call.
    _id: DialogId = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._id = DialogId(self.call_id, self.local_tag.lower(), self.remote_tag.lower())

    # ----- creation ---------------------------------------------------------------

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a 101-299 ``response`` to our ``request`` creates (12.1.2).

        The route set is the response's Record-Route reversed; the remote
        target its Contact; the local sequence number the request's CSeq. A
        2xx without To tag (RFC 2543) gives the null remote tag ``""``
        (12.1.2); a provisional without one raises :class:`DialogError`.
        """
        remote_tag = response.to.tag
        if remote_tag is None:
            if not 200 <= response.status < 300:
                raise DialogError("a provisional response without To tag makes no dialog")
            remote_tag = ""
        local_tag = request.from_.tag
        if local_tag is None:
            raise DialogError("our request has no From tag")
        target = _contact_target(response) or request.uri
        local_contacts = request.contacts
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=NameAddr(request.from_.uri, request.from_.display_name),
            remote_uri=NameAddr(request.to.uri, request.to.display_name),
            remote_target=target,
            # 12.1.2: "the route set MUST be set to the list of URIs in the
            # Record-Route header field from the response, taken in reverse order".
            route_set=list(reversed(response.record_routes)),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=request.uri.is_secure and request.top_via.transport.upper() == "TLS",
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            is_uac=True,
            local_contact=local_contacts[0] if local_contacts else None,
        )

    @classmethod
    def from_uas(
        cls,
        request: Request,
        local_tag: str,
        *,
        confirmed: bool,
        local_contact: NameAddr | None = None,
    ) -> Dialog:
        """The dialog we create by answering ``request`` with ``local_tag`` (12.1.1).

        The route set is the request's Record-Route in its order, the remote
        target the request's Contact, the remote sequence number its CSeq;
        the local sequence number starts empty. ``confirmed`` for a 2xx,
        else the dialog is early. A request without From tag (RFC 2543)
        gives the null remote tag ``""`` (12.1.1). Raises
        :class:`DialogError` when the request has no Contact (12.1.1 needs one).
        """
        target = _contact_target(request)
        if target is None:
            raise DialogError(f"{request.method} without Contact cannot create a dialog")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            # 12.1.1: "A UAS MUST be prepared to receive a request without a
            # tag in the From field, in which case the tag is considered to
            # have a value of null" (as dialog_id_of_request has it).
            remote_tag=request.from_.tag or "",
            local_uri=NameAddr(request.to.uri, request.to.display_name),
            remote_uri=NameAddr(request.from_.uri, request.from_.display_name),
            remote_target=target,
            route_set=list(request.record_routes),
            local_seq=None,
            remote_seq=request.cseq.seq,
            secure=request.uri.is_secure and request.top_via.transport.upper() == "TLS",
            state=DialogState.CONFIRMED if confirmed else DialogState.EARLY,
            is_uac=False,
            local_contact=local_contact,
        )

    # ----- identity ---------------------------------------------------------------

    @property
    def id(self) -> DialogId:
        """Call-ID, local tag, remote tag."""
        return self._id

    @property
    def confirmed(self) -> bool:
        """True once a 2xx has been sent or received."""
        return self.state is DialogState.CONFIRMED

    def terminate(self) -> None:
        """Mark the dialog over (BYE sent or received, 481/408 to a request, 12.3)."""
        self.state = DialogState.TERMINATED

    # ----- following the peer -----------------------------------------------------

    def update_from_response(self, response: Response, method: str) -> None:
        """Follow a response of this dialog to our ``method`` request.

        A 2xx confirms an early dialog and, as 13.2.2.4 says, recomputes its
        route set (UAC side); a 101-299 response to a target refresh request
        with a Contact replaces the remote target (12.2.1.2).
        """
        status = response.status
        if not 101 <= status <= 299:
            return
        if status >= 200 and self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED
            if self.is_uac:
                self.route_set = list(reversed(response.record_routes))
        if method in TARGET_REFRESH_METHODS:
            target = _contact_target(response)
            if target is not None:
                self.remote_target = target

    def check_request(self, request: Request) -> int | None:
        """Account a request received in this dialog (12.2.2).

        Returns None when it is in order, or the status to reject it with:
        500 when its CSeq number is lower than the last one (12.2.2, the
        caller adds Retry-After). ACK and CANCEL reuse the number of the
        request they belong to and are not counted. A target refresh request
        with a Contact replaces the remote target.
        """
        method = request.method
        if method in ("ACK", "CANCEL"):
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return 500
        self.remote_seq = seq
        if method in TARGET_REFRESH_METHODS:
            target = _contact_target(request)
            if target is not None:
                self.remote_target = target
        return None

    # ----- our requests -----------------------------------------------------------

    def next_seq(self) -> int:
        """Take the CSeq number for our next request (12.2.1.1: one more than the last)."""
        if self.local_seq is None:
            # 12.2.1.1: the UAS's first request; any value below 2**31 works.
            self.local_seq = 1
        else:
            self.local_seq += 1
        return self.local_seq

    def _base(self, method: str, seq: int) -> Request:
        headers = Headers()
        uri, routes = self._request_uri_and_routes()
        for route in routes:
            headers.add("Route", str(route))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local_uri.with_tag(self.local_tag)))
        # The null remote tag of an RFC 2543 peer (12.1.1) is no tag at all.
        remote = self.remote_uri.with_tag(self.remote_tag) if self.remote_tag else self.remote_uri
        headers.add("To", str(remote))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", str(CSeq(seq, method)))
        return Request(method, uri, headers)

    def _request_uri_and_routes(self) -> tuple[URI, list[NameAddr]]:
        # 12.2.1.1: with a loose router first (lr) the Request-URI is the
        # remote target and the Route set goes as is; with a strict router
        # the first route becomes the Request-URI and the remote target is
        # appended as the last Route.
        routes = self.route_set
        if not routes or routes[0].uri.lr:
            return self.remote_target, list(routes)
        first = routes[0].uri.replace(params=routes[0].uri.params.without("lr"), headers=())
        return first, [*routes[1:], NameAddr(self.remote_target)]

    def create_request(
        self,
        method: str,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """A request inside the dialog (12.2.1.1), without Via (the transport adds it).

        Takes the next local CSeq number; target refresh requests carry our
        Contact unless ``headers`` bring one. ``headers`` are appended;
        Content-Length is set.
        """
        if method in ("ACK", "CANCEL"):
            raise DialogError(f"{method} is built from its INVITE, not from the dialog")
        request = self._base(method, self.next_seq())
        extra = headers if isinstance(headers, (list, tuple)) else list(headers)
        if (
            method in TARGET_REFRESH_METHODS
            and self.local_contact is not None
            # 8.1.1.8: one Contact URI in an INVITE; a caller's new Contact
            # must not come after the old one, which the peer would take.
            and not any(canonical_name(name) == "contact" for name, _ in extra)
        ):
            request.headers.add("Contact", str(self.local_contact))
        for name, value in extra:
            request.headers.add(name, value)
        request.headers.set("Content-Length", str(len(body)))
        request.body = body
        return request

    def create_ack(
        self,
        invite_seq: int,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """The ACK for a 2xx to the INVITE with CSeq ``invite_seq`` (13.2.2.4).

        Built like any in-dialog request, but with the INVITE's CSeq number
        and method ACK; ``headers`` carry e.g. the INVITE's Authorization.
        """
        ack = self._base("ACK", invite_seq)
        for name, value in headers:
            ack.headers.add(name, value)
        ack.headers.set("Content-Length", str(len(body)))
        ack.body = body
        return ack
