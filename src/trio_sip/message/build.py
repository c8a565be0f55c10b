"""Building messages: responses, ACK, CANCEL, and fresh identifiers.

The rules are RFC 3261's: section 8.2.6 for responses, 17.1.1.3 for the ACK
to a non-2xx final response, 9.1 for CANCEL, and sections 8.1.1.4, 8.1.1.7 and
19.3 for Call-IDs, branches and tags.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Final

from .headers import Headers, written_name
from .model import Request, Response
from .via import MAGIC_COOKIE

__all__ = [
    "new_branch",
    "new_tag",
    "new_call_id",
    "make_response",
    "make_ack",
    "make_cancel",
]


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 64 random bits."""
    return MAGIC_COOKIE + os.urandom(8).hex()


def new_tag() -> str:
    """A fresh From/To tag: 64 random bits (section 19.3 asks for 32 at least)."""
    return os.urandom(8).hex()


def new_call_id(host: str | None = None) -> str:
    """A fresh, globally unique Call-ID; ``@host`` appended when given."""
    local = os.urandom(16).hex()
    return f"{local}@{host}" if host else local


# What a response copies from its request (RFC 3261 section 8.2.6): always,
# and Record-Route in a 101-299 (12.1.1; but "a registrar MUST NOT include a
# Record-Route header field in any response to a REGISTER", 10.3),
# Timestamp in a 100 (8.2.6.1).
_COPIED: Final = frozenset({"via", "from", "to", "call-id", "cseq"})
_COPIED_DIALOG: Final = _COPIED | {"record-route"}
_COPIED_TRYING: Final = _COPIED | {"timestamp"}


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` per RFC 3261 section 8.2.6.

    Via (every line, in order), From, To, Call-ID and CSeq are copied; a
    To-tag is added when ``to_tag`` is given and the request's To has none;
    Record-Route is copied into 101-299 responses (section 12.1.1) and
    Timestamp into 100 Trying (section 8.2.6.1), never into a response to
    REGISTER (section 10.3). ``headers`` are appended.
    """
    src = request.headers
    if 100 < status < 300 and request.method != "REGISTER":
        copied = _COPIED_DIALOG
    elif status == 100:
        copied = _COPIED_TRYING
    else:
        copied = _COPIED
    add_tag = to_tag is not None and status > 100 and request.to.tag is None
    keys: list[str] = []
    names: list[str] = []
    values: list[str] = []
    # The request's lookup keys are known: the copies skip Headers.add's mapping.
    for key, name, value in zip(src._keys, src._names, src._values, strict=True):
        if key in copied:
            if key == "to" and add_tag:
                value = f"{value};tag={to_tag}"
            keys.append(key)
            names.append(written_name(name, key))
            values.append(value)
    out = Headers._from_parsed(keys, names, values)
    for name, value in headers:
        out.add(name, value)
    if body or "content-length" not in out:
        out.set("Content-Length", str(len(body)))
    response = Response(status, reason, out, body)
    if request._views_version == src.version:
        # The copied headers say what the request's parsed views say: the
        # response starts with them instead of parsing the same text again.
        views = request._views
        seeded = response._views
        for name in _SHARED_VIEWS if add_tag else _SAME_VIEWS:
            view = views.get(name)
            if view is not None:
                seeded[name] = view
        response._views_version = out.version
    return response


#: The views a response shares with its request: all but To when a To tag
#: is added, To too otherwise.
_SHARED_VIEWS: Final = ("top_via", "call_id", "cseq", "from")
_SAME_VIEWS: Final = (*_SHARED_VIEWS, "to")


def make_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response to ``invite`` (section 17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number and Route set as the INVITE,
    the To of the response (with its tag) and only the INVITE's top Via, so
    that it matches the INVITE's client transaction. The ACK for a 2xx is a
    new transaction built from the dialog (section 13.2.2.4), not this.
    """
    to = response.headers.get("to") or invite.headers.get("to") or ""
    return _same_path(invite, "ACK", to)


def make_cancel(request: Request) -> Request:
    """A CANCEL for ``request`` (section 9.1).

    Request-URI, Call-ID, From, To and the CSeq number are those of the
    request, the method is CANCEL, the one Via is the request's top Via (so
    the CANCEL takes the same path and matches its transaction), and the
    Route set is copied.
    """
    return _same_path(request, "CANCEL", request.headers.get("to") or "")


def _same_path(request: Request, method: str, to: str) -> Request:
    # What ACK-for-non-2xx and CANCEL share: the request's top Via only (so
    # they match its transaction), its Route set, From, Call-ID and CSeq number.
    out = Headers()
    src = request.headers
    top_via = src.first_value("via")
    if top_via is not None:
        out.add("Via", top_via)
    max_forwards = src.get("max-forwards")
    out.add("Max-Forwards", max_forwards if max_forwards is not None else "70")
    for value in src.get_all("route"):
        out.add("Route", value)
    out.add("From", src.get("from") or "")
    out.add("To", to)
    out.add("Call-ID", src.get("call-id") or "")
    out.add("CSeq", f"{request.cseq.seq} {method}")
    out.add("Content-Length", "0")
    return Request(method, request.uri_text, out)
