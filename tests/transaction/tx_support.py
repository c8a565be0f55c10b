"""Messages shared by the transaction tests."""

from __future__ import annotations

from collections.abc import Iterable

from trio_sip.message import Request, Response, make_response, parse_message

BRANCH = "z9hG4bK776asdhds"


def request(
    method: str = "INVITE",
    *,
    branch: str | None = BRANCH,
    transport: str = "UDP",
    sent_by: str = "pc33.atlanta.example.com",
    to_tag: str | None = None,
    cseq: int = 314159,
    cseq_method: str | None = None,
    uri: str = "sip:bob@biloxi.example.com",
    from_tag: str = "1928301774",
    call_id: str = "a84b4c76e66710@pc33.atlanta.example.com",
    extra_via: Iterable[str] = (),
) -> Request:
    """A parsed request, shaped like the RFC 3665 examples."""
    via = f"SIP/2.0/{transport} {sent_by}" + (f";branch={branch}" if branch else "")
    to = "Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: {via}",
        *(f"Via: {v}" for v in extra_via),
        "Max-Forwards: 70",
        f"To: {to}",
        f"From: Alice <sip:alice@atlanta.example.com>;tag={from_tag}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {cseq_method or method}",
        "Contact: <sip:alice@pc33.atlanta.example.com>",
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, Request)
    return msg


def response(req: Request, status: int, to_tag: str | None = "a6c85cf") -> Response:
    """A response to ``req`` (with a To tag above 100)."""
    return make_response(req, status, to_tag=to_tag if status > 100 else None)
