"""Transaction matching keys (RFC 3261 sections 17.1.3, 17.2.3 and 9.2).

Pure functions from a message to a hashable key: two messages belong to the
same transaction exactly when their keys are equal, so a dict keyed by them
is the whole matching procedure. The Dispatcher's response cache and the
Endpoint's transaction tables use them on every packet, so they read only
the cached views ``top_via`` and ``cseq`` (and, for the rare RFC 2543
fallback, From, To, Call-ID and the Request-URI).

Comparisons follow section 7.3.1: parameter values and host names compare
case-insensitively, so branches, tags and hosts are lower-cased; the
Call-ID is compared byte for byte (section 20.8). A message without a
usable top Via or CSeq raises :class:`~trio_sip.errors.ParseError` from the
message layer.
"""

from __future__ import annotations

from typing import NamedTuple

from ..message import URI, Request, Response, Via

__all__ = [
    "ClientKey",
    "LegacyServerKey",
    "ServerKey",
    "ack_key",
    "cancel_target_key",
    "client_key",
    "server_key",
]


class ServerKey(NamedTuple):
    """The key of a server transaction whose client is RFC 3261 compliant (17.2.3)."""

    branch: str
    #: sent-by host, lower case, no IPv6 brackets.
    host: str
    #: sent-by port with the transport's default filled in.
    port: int
    #: The request method, with ACK counted as INVITE.
    method: str


class LegacyServerKey(NamedTuple):
    """The key of a server transaction for an RFC 2543 client (no magic cookie, 17.2.3).

    For INVITE and ACK, ``to_tag`` is the tag of the request's own To
    header; see :func:`ack_key` for how an ACK is matched to the INVITE it
    acknowledges.
    """

    uri: URI
    to_tag: str | None
    from_tag: str | None
    call_id: str
    cseq: int
    #: The top Via as text, normalised (host lower case, port filled in,
    #: without the ``received``/``rport`` parameters this side adds).
    via: str
    #: The request method, with ACK counted as INVITE.
    method: str


class ClientKey(NamedTuple):
    """The key of a client transaction (17.1.3): top Via branch and CSeq method."""

    branch: str
    method: str


def _lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def _legacy_via(via: Via) -> str:
    # The Dispatcher stamps received/rport on the top Via of what it receives
    # (RFC 3261 section 18.2.1, RFC 3581); they are not part of what the
    # client sent, so they must not make a retransmission look different.
    params = via.params.without("received", "rport")
    normal = Via(via.transport, via.host.lower(), via.default_port(), params, via.protocol)
    return str(normal)


def _legacy_key(request: Request, method: str) -> LegacyServerKey:
    return LegacyServerKey(
        request.uri,
        _lower(request.to.tag),
        _lower(request.from_.tag),
        request.call_id,
        request.cseq.seq,
        _legacy_via(request.top_via),
        method,
    )


def _server_key(request: Request, method: str) -> ServerKey | LegacyServerKey:
    via = request.top_via
    if via.has_magic_cookie:
        branch = via.branch
        assert branch is not None  # has_magic_cookie says so
        return ServerKey(branch.lower(), via.host.lower(), via.default_port(), method)
    return _legacy_key(request, method)


def server_key(request: Request) -> ServerKey | LegacyServerKey:
    """The server transaction ``request`` belongs to (RFC 3261 section 17.2.3).

    With an RFC 3261 branch (magic cookie ``z9hG4bK``) the key is the branch,
    the sent-by host and port of the top Via, and the method, where ACK
    counts as INVITE so that the ACK for a non-2xx final response finds its
    INVITE transaction; CANCEL keeps its own method and so its own
    transaction (see :func:`cancel_target_key`).

    Without the magic cookie the RFC 2543 rules apply: Request-URI (compared
    as section 19.1.4 says), To tag, From tag, Call-ID, CSeq number, top Via
    and method (ACK counted as INVITE). RFC 2543 matches an ACK against the
    To tag of the *response* the server sent, which the INVITE did not
    carry; :func:`ack_key` gives that key, and the Endpoint files an INVITE
    server transaction under it as well once it sends a final response.
    """
    # A typed view: looked up for every request, its answer and its ACK.
    return request._view("server_key", _server_key_of)


def _server_key_of(request: Request) -> ServerKey | LegacyServerKey:
    method = request.method
    return _server_key(request, "INVITE" if method == "ACK" else method)


def ack_key(invite: Request, response: Response) -> ServerKey | LegacyServerKey:
    """The key that the ACK for ``response`` to ``invite`` will have.

    For an RFC 3261 client this is ``server_key(invite)``: the ACK reuses the
    INVITE's branch (section 17.1.1.3). For an RFC 2543 client the ACK
    carries the To tag of the response (section 17.2.3 matches it against
    "the To tag of the response sent by the server transaction"), so this is
    the INVITE's key with that tag. The Endpoint registers the INVITE server
    transaction under this key too when it sends a final response; then
    ``server_key(ack)`` finds it by a plain dict lookup.
    """
    key = server_key(invite)
    if isinstance(key, LegacyServerKey):
        return key._replace(to_tag=_lower(response.to.tag))
    return key


def cancel_target_key(cancel: Request, method: str = "INVITE") -> ServerKey | LegacyServerKey:
    """The server key of the request that ``cancel`` cancels (RFC 3261 section 9.2).

    Section 9.2 matches a CANCEL with the rules of 17.2.3 "assuming that the
    request method is anything but CANCEL or ACK": the CANCEL's own key with
    ``method`` (INVITE unless told otherwise) in place of CANCEL. A CANCEL
    copies the Request-URI, Call-ID, From, To, CSeq number and top Via of the
    request it cancels (section 9.1), so the keys agree.
    """
    return _server_key(cancel, method)


def client_key(message: Request | Response) -> ClientKey:
    """The client transaction ``message`` belongs to (RFC 3261 section 17.1.3).

    The branch of the top Via and the CSeq method. The same function keys
    the request a client transaction sends and every response to it; the
    method keeps a CANCEL (same branch as its INVITE) apart from the INVITE.
    A message without a branch gets the empty branch, which no transaction
    of ours uses, so it matches nothing.
    """
    branch = message.top_via.branch
    return ClientKey(branch.lower() if branch else "", message.cseq.method)
