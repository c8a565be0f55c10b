"""parse_message, serialisation, header access and the builders."""

from __future__ import annotations

import pytest

from trio_sip.errors import ParseError
from trio_sip.message import (
    Headers,
    ParseLimits,
    Request,
    Response,
    make_ack,
    make_cancel,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1,"
    b" SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    b"X-Odd-Header:    keep   this  \r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"v=0\r\n"
)


def test_request_values() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert str(msg.uri) == "sip:bob@biloxi.example.com"
    assert [v.branch for v in msg.via] == [
        "z9hG4bK776asdhds",
        "z9hG4bK77ef4c2312983.1",
        "z9hG4bK74bf9",
    ]
    assert msg.via[2].transport == "TCP"
    assert msg.top_via.host == "pc33.atlanta.example.com"
    assert msg.max_forwards == 70
    assert msg.from_.tag == "9fxced76sl"
    assert msg.from_.display_name == "Alice"
    assert msg.to.tag is None
    assert msg.call_id == "3848276298220188511@atlanta.example.com"
    assert (msg.cseq.seq, msg.cseq.method) == (1, "INVITE")
    assert [str(r.uri) for r in msg.routes] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert msg.contacts[0].uri.transport == "tcp"
    assert msg.headers.get("x-odd-header") == "keep   this"
    assert msg.content_type == "application/sdp"
    assert msg.body == b"v=0\r\n"
    msg.validate()


def test_unchanged_message_serialises_byte_exact() -> None:
    assert bytes(parse_message(INVITE)) == INVITE


def test_changed_message_is_rebuilt() -> None:
    msg = parse_message(INVITE)
    msg.headers.prepend("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnew")
    assert msg.headers.pop_first_value("Route") == "<sip:p1.example.com;lr>"
    msg.headers.set("Max-Forwards", "69")
    again = parse_message(bytes(msg))
    assert again.top_via.branch == "z9hG4bKnew"
    assert len(again.via) == 4
    assert [str(r.uri) for r in again.routes] == ["sip:p2.example.com;lr"]
    assert again.max_forwards == 69
    assert again.body == b"v=0\r\n"
    assert again.headers.get("X-ODD-HEADER") == "keep   this"


def test_compact_forms_and_case() -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nmAX-fORWARDS: 1\r\n"
        b"t: <sip:a@b>\r\nf: <sip:c@d>;tag=1\r\ni: abc\r\nCSEQ: 2 OPTIONS\r\nm: <sip:c@h>\r\n"
        b"l: 0\r\nk: path\r\n\r\n"
    )
    msg = parse_message(data)
    assert msg.call_id == "abc"
    assert msg.headers.get("Supported") == "path"
    assert msg.headers.get("CALL-ID") == "abc"
    assert msg.contacts[0].uri.host == "h"
    assert "Content-Length" in msg.headers
    assert bytes(msg) == data


def test_folded_lines_are_unfolded() -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject: one\r\n"
        b"  two\r\n\tthree\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 7\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert msg.headers.get("subject") == "one two three"
    assert msg.to.uri.user == "a"


def test_response_values() -> None:
    msg = parse_message(
        b"SIP/2.0 486 Busy Here Right Now\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"To: <sip:a@b>;tag=x\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (486, "Busy Here Right Now")
    assert not msg.is_success
    msg.validate()


@pytest.mark.parametrize(("value", "seconds"), [("3600", 3600), (None, None), ("soon", ParseError)])
def test_min_expires_of_a_423(value: str | None, seconds: int | type[ParseError] | None) -> None:
    headers = [("Min-Expires", value)] if value is not None else []
    msg = Response(423, headers=headers)
    if seconds is ParseError:
        with pytest.raises(ParseError, match="Min-Expires"):
            msg.min_expires  # noqa: B018
    else:
        assert msg.min_expires == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("18000 (in a meeting);duration=3600", 18000), ("5", 5), (None, None), ("soon", ParseError)],
)
def test_retry_after_of_a_503(value: str | None, seconds: int | type[ParseError] | None) -> None:
    headers = [("Retry-After", value)] if value is not None else []
    msg = Response(503, headers=headers)
    if seconds is ParseError:
        with pytest.raises(ParseError, match="Retry-After"):
            msg.retry_after  # noqa: B018
    else:
        assert msg.retry_after == seconds


def test_lf_only_line_ends_are_accepted() -> None:
    msg = parse_message(
        b"SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nContent-Length: 2\n\nhi"
    )
    assert msg.body == b"hi"


def test_leading_crlf_ignored() -> None:
    msg = parse_message(b"\r\n\r\nSIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert msg.status == 200  # type: ignore[union-attr]


def test_datagram_content_length_rules() -> None:
    head = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
    extra = parse_message(head + b"Content-Length: 2\r\n\r\nhiEXTRA")
    assert extra.body == b"hi"
    assert bytes(extra) == head + b"Content-Length: 2\r\n\r\nhi"
    missing = parse_message(head + b"\r\nto the end")
    assert missing.body == b"to the end"
    with pytest.raises(ParseError) as err:
        parse_message(head + b"Content-Length: 20\r\n\r\nshort")
    assert err.value.status_hint == 400


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b"INVITE sip:a@b SIP/7.0\r\nContent-Length: 0\r\n\r\n", 505),
        (b"INVITE http://a.b/ SIP/2.0\r\nContent-Length: 0\r\n\r\n", 416),
        (b"INVITE sip:a@b SIP/2.0\r\nNoColonHere\r\n\r\n", 400),
        (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", 400),
        (b"INV@TE sip:a@b SIP/2.0\r\n\r\n", 400),
        (b"SIP/2.0 1000 Huh\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/2.0\r\n", 400),
        (b"", 400),
        (b"\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/2.0\r\n continuation first\r\n\r\n", 400),
    ],
)
def test_bad_messages(data: bytes, hint: int) -> None:
    with pytest.raises(ParseError) as err:
        parse_message(data)
    assert err.value.status_hint == hint


def test_limits() -> None:
    big = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n" + b"x" * 70000
    with pytest.raises(ParseError) as err:
        parse_message(big)
    assert err.value.status_hint == 413
    many = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 20 + b"\r\n"
    with pytest.raises(ParseError):
        parse_message(many, limits=ParseLimits(max_headers=10))
    long = b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"y" * 200 + b"\r\n\r\n"
    with pytest.raises(ParseError):
        parse_message(long, limits=ParseLimits(max_line_length=100))
    assert parse_message(long).headers.get("x") == "y" * 200


def test_missing_mandatory_headers_fail_validation() -> None:
    msg = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ParseError, match="Via"):
        msg.validate()
    mismatch = parse_message(
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n"
        b"From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    with pytest.raises(ParseError, match="CSeq"):
        mismatch.validate()


def test_headers_container() -> None:
    h = Headers([("Via", "a"), ("Route", "<sip:r1>, <sip:r2>"), ("Via", "b, c")])
    assert h.values("via") == ["a", "b", "c"]
    assert h.get_all("v") == ["a", "b, c"]
    h.prepend("v", "z")
    assert next(iter(h)) == ("Via", "z")
    assert h.count("via") == 3
    h.set("Via", "only")
    assert h.values("via") == ["only"]
    assert h.remove("route") == 1
    assert "route" not in h
    assert h.pop_first_value("via") == "only"
    assert len(h) == 0
    h.add("x-custom", "1")
    assert list(h) == [("X-Custom", "1")]


def test_body_setter_updates_content_length() -> None:
    msg = parse_message(INVITE)
    msg.body = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"
    assert parse_message(bytes(msg)).body == msg.body


def test_make_response_copies_and_tags() -> None:
    invite = parse_message(
        INVITE.replace(b"Contact:", b"Record-Route: <sip:p1.example.com;lr>\r\nContact:")
    )
    assert isinstance(invite, Request)
    ringing = make_response(invite, 180, to_tag="abc")
    assert ringing.reason == "Ringing"
    assert ringing.to.tag == "abc"
    assert [v.branch for v in ringing.via] == [v.branch for v in invite.via]
    assert ringing.call_id == invite.call_id
    assert ringing.cseq == invite.cseq
    assert ringing.from_ == invite.from_
    assert len(ringing.record_routes) == 1
    trying = make_response(invite, 100, to_tag="abc")
    assert trying.to.tag is None
    assert not trying.record_routes
    error = make_response(invite, 486, headers=[("Retry-After", "60")])
    assert error.headers.get("retry-after") == "60"
    assert not error.record_routes
    parsed = parse_message(bytes(ringing))
    assert isinstance(parsed, Response)
    parsed.validate()


def test_make_ack_for_non_2xx() -> None:
    invite = parse_message(INVITE)
    assert isinstance(invite, Request)
    busy = make_response(invite, 486, to_tag="t1")
    ack = make_ack(invite, busy)
    assert ack.method == "ACK"
    assert ack.uri == invite.uri
    assert len(ack.via) == 1
    assert ack.top_via == invite.top_via
    assert ack.to.tag == "t1"
    assert (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert ack.routes == invite.routes
    ack.validate()


def test_make_cancel() -> None:
    invite = parse_message(INVITE)
    assert isinstance(invite, Request)
    cancel = make_cancel(invite)
    assert cancel.method == "CANCEL"
    assert cancel.uri == invite.uri
    assert cancel.via == (invite.top_via,)
    assert cancel.to == invite.to
    assert cancel.from_ == invite.from_
    assert cancel.cseq.seq == invite.cseq.seq
    cancel.validate()


def test_identifiers_are_fresh() -> None:
    branches = {new_branch() for _ in range(1000)}
    assert len(branches) == 1000
    assert all(b.startswith("z9hG4bK") for b in branches)
    assert len({new_tag() for _ in range(1000)}) == 1000
    assert new_call_id("host.example").endswith("@host.example")


def test_built_request_round_trips() -> None:
    req = Request(
        "MESSAGE",
        "sip:bob@example.com",
        [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={new_branch()}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@example.com>;tag={new_tag()}"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", new_call_id()),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", "text/plain"),
        ],
    )
    req.body = "héllo".encode()
    parsed = parse_message(bytes(req))
    assert isinstance(parsed, Request)
    assert parsed.body == "héllo".encode()
    assert parsed.content_length == len("héllo".encode())
    parsed.validate()


def test_non_utf8_bytes_survive() -> None:
    data = INVITE.replace(b"keep   this", b"\xff\xfe raw")
    msg = parse_message(data)
    msg.headers.set("Max-Forwards", "10")
    assert b"\xff\xfe raw" in bytes(msg)
