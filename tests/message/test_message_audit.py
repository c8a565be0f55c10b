"""Message layer against RFC 3261 sections 7, 19, 20 and 25: what an audit found."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from trio_sip import ParseError
from trio_sip.message import (
    URI,
    Headers,
    NameAddr,
    Request,
    Response,
    make_response,
    parse_message,
)

OPTIONS = (
    b"OPTIONS sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:bob@biloxi.example.com>\r\n"
    b"From: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 63104 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


# ----- URI comparison (RFC 3261 section 19.1.4) -----------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # "Characters other than those in the reserved set are equivalent to
        # their escaped encoding": reserved ones are not.
        ("sip:alice%3Bday=tuesday@atlanta.com", "sip:alice;day=tuesday@atlanta.com"),
        ("sip:%2B15551234@atlanta.com", "sip:+15551234@atlanta.com"),
        ("sip:alice:pass%2Cword@atlanta.com", "sip:alice:pass,word@atlanta.com"),
        ("sip:atlanta.com;x=a%2Fb", "sip:atlanta.com;x=a/b"),
        ("sip:atlanta.com?subject=a%2Fb", "sip:atlanta.com?subject=a/b"),
        # An escaped '%' decodes to '%', which begins no escape of its own.
        ("sip:a%253B@atlanta.com", "sip:a%3B@atlanta.com"),
    ],
)
def test_an_escaped_reserved_character_is_not_the_character(a: str, b: str) -> None:
    assert URI.parse(a) != URI.parse(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # The same octet escaped either way, and escaped unreserved characters.
        ("sip:alice%3bday@atlanta.com", "sip:alice%3Bday@atlanta.com"),
        ("sip:%61lice%3B@atlanta.com", "sip:alice%3B@atlanta.com"),
        ("sip:atlanta.com;%6Dethod=REGISTER", "sip:atlanta.com;method=REGISTER"),
        ("sip:atlanta.com?subject=%61%2fb", "sip:atlanta.com?subject=a%2Fb"),
        ("sip:%C3%A9@atlanta.com", "sip:%c3%a9@atlanta.com"),
    ],
)
def test_escapes_of_the_same_octet_are_equal(a: str, b: str) -> None:
    assert URI.parse(a) == URI.parse(b)
    assert hash(URI.parse(a)) == hash(URI.parse(b))


def test_equal_tel_uris_hash_alike() -> None:
    # RFC 3966 section 4: visual separators do not count, so these are one
    # URI; a set or dict key must find the one by the other.
    spaced = URI.parse("tel:+1-201-555-0123")
    plain = URI.parse("tel:+12015550123")
    assert spaced == plain
    assert hash(spaced) == hash(plain)
    assert plain in {spaced}


# ----- name-addr (RFC 3261 section 25.1) --------------------------------------------------------


def test_display_name_tokens_may_be_apart_by_a_tab() -> None:
    # display-name = *(token LWS) ; LWS = [*WSP CRLF] 1*WSP ; WSP = SP / HTAB
    addr = NameAddr.parse("Bob\tSmith <sip:bob@biloxi.com>;tag=1")
    assert addr.display_name == "Bob Smith"
    assert addr.uri == URI.parse("sip:bob@biloxi.com")
    assert addr.tag == "1"
    msg = parse_message(OPTIONS.replace(b"To: <", b"To: Bob\tSmith <"))
    assert msg.to.display_name == "Bob Smith"


# ----- headers ----------------------------------------------------------------------------------


def test_headers_put_in_place_of_others_are_what_the_message_says() -> None:
    # A parsed message caches its wire bytes and typed views against the
    # version of its headers; fresh headers must not pass for the old ones.
    msg = parse_message(OPTIONS)
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert bytes(msg) == OPTIONS
    msg.headers = Headers(
        [(name, "other@example.com" if name == "Call-ID" else value) for name, value in msg.headers]
    )
    assert msg.call_id == "other@example.com"
    assert b"Call-ID: other@example.com\r\n" in bytes(msg)
    assert parse_message(bytes(msg)).call_id == "other@example.com"


def test_headers_changed_as_often_as_the_message_s_are_not_taken_for_them() -> None:
    # Counted per Headers object, two versions would meet after one change each.
    msg = parse_message(OPTIONS)
    other = msg.headers.copy()
    other.set("Call-ID", "other@example.com")
    msg.headers.set("CSeq", "63105 OPTIONS")
    assert b"CSeq: 63105 OPTIONS\r\n" in bytes(msg)
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    msg.headers = other
    assert msg.call_id == "other@example.com"
    assert msg.cseq.seq == 63104
    assert parse_message(bytes(msg)).call_id == "other@example.com"


# ----- header injection -------------------------------------------------------------------------

_INJECTED = "Bob\r\nContact: <sip:mallory@203.0.113.9>"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Headers([("Subject", _INJECTED)]),
        lambda: Headers().add("Subject", _INJECTED),
        lambda: Headers().add("X-Note\r\nContact", "<sip:mallory@203.0.113.9>"),
        lambda: Headers().add("X-Note: a", "b"),
        lambda: Headers([("Subject", "a")]).set("Subject", "x\nContact: y"),
        lambda: Headers([("Via", "a")]).prepend("Via", "x\rContact: y"),
        lambda: Request("OPTIONS", "sip:bob@example.com SIP/2.0\r\nContact: <sip:m@x>"),
        lambda: Request("OPTIONS\r\nContact: y", "sip:bob@example.com"),
        lambda: Response(486, "Busy\r\nContact: <sip:m@x>"),
    ],
)
def test_a_line_break_cannot_write_a_header_of_its_own(build: Callable[[], object]) -> None:
    # Text from elsewhere (a display name from a form, a caller's header)
    # with CR or LF would end the line and add headers to what we send.
    with pytest.raises(ParseError) as err:
        build()
    assert err.value.status_hint == 500


def test_setters_refuse_line_breaks_and_leave_the_message_as_it_was() -> None:
    request = Request("OPTIONS", "sip:bob@example.com")
    response = Response(486)
    with pytest.raises(ParseError):
        request.method = "OPTIONS\r\nContact: y"
    with pytest.raises(ParseError):
        response.reason = "Busy\nContact: y"
    assert (request.method, response.reason) == ("OPTIONS", "Busy Here")


# ----- responses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "copied"), [("INVITE", True), ("REGISTER", False)])
def test_record_route_is_copied_into_dialog_responses_but_never_for_register(
    method: str, copied: bool
) -> None:
    # 12.1.1 copies Record-Route into a response that may make a dialog;
    # 10.3: "A registrar MUST NOT include a Record-Route header field in any
    # response to a REGISTER request."
    request = Request(
        method,
        "sip:example.com",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKrr"),
            ("Record-Route", "<sip:p1.example.com;lr>"),
            ("From", "<sip:alice@example.com>;tag=a"),
            ("To", "<sip:alice@example.com>"),
            ("Call-ID", "rr@192.0.2.1"),
            ("CSeq", f"1 {method}"),
        ],
    )
    response = make_response(request, 200, to_tag="t")
    assert ("record-route" in response.headers) is copied
