"""Message.drop_views, and the views a response starts with in make_response.

A message's typed views (top_via, to, cseq ...) are parsed once and cached
until its headers change. drop_views lets them go; make_response hands the
response the request's views for the headers it copies. Either way, what a
view says must be what the message's own text says: here checked against a
fresh parse of the message's bytes.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from trio_sip.message import (
    Message,
    NameAddr,
    Request,
    Response,
    Via,
    make_response,
    parse_message,
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1,"
    b" SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Record-Route: <sip:p1.example.com;lr>\r\n"
    b"Route: <sip:p2.example.com;lr>\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

#: The same request in compact form (RFC 3261 section 7.3.3), and inside a dialog.
COMPACT_IN_DIALOG = (
    b"INFO sip:bob@192.0.2.4 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKcompact1;received=198.51.100.7;rport=40001\r\n"
    b"Max-Forwards: 70\r\n"
    b"t: <sip:bob@biloxi.example.com>;tag=314159\r\n"
    b"f: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 7 INFO\r\n"
    b"m: <sip:alice@192.0.2.1:5062>\r\n"
    b"l: 0\r\n"
    b"\r\n"
)

#: The views a response shares with its request (RFC 3261 section 8.2.6).
SHARED = ("top_via", "call_id", "cseq", "from_", "to")


def request_of(data: bytes) -> Request:
    request = parse_message(data)
    assert isinstance(request, Request)
    return request


def views(message: Message, names: tuple[str, ...] = SHARED) -> dict[str, Any]:
    return {name: getattr(message, name) for name in names}


def as_text(values: dict[str, Any]) -> dict[str, str]:
    # Beside ==: URI comparison follows RFC 3261 19.1.4, which forgives
    # some differences the text would show.
    return {name: str(value) for name, value in values.items()}


def reparsed(message: Message) -> Message:
    """``message`` parsed back from its own bytes: views built from the text alone."""
    return parse_message(bytes(message))


# ----- drop_views -------------------------------------------------------------------------


ALL_VIEWS = (
    *SHARED,
    "via",
    "contacts",
    "routes",
    "record_routes",
    "max_forwards",
    "content_length",
)


@pytest.mark.parametrize("data", [INVITE, COMPACT_IN_DIALOG], ids=["long names", "compact"])
def test_views_are_parsed_again_after_drop_views_and_say_the_same(data: bytes) -> None:
    message = request_of(data)
    before = views(message, ALL_VIEWS)
    # Cached: asked twice, the same objects.
    assert message.top_via is before["top_via"]
    assert message.to is before["to"]
    message.drop_views()
    # Nothing kept: every view is read from the headers again.
    assert not message._views
    after = views(message, ALL_VIEWS)
    assert after == before
    assert as_text(after) == as_text(before)
    # Parsed again. (To, From, CSeq and Contact values are memoised by their
    # text, like URIs, so those come back as the same shared objects.)
    for name in ("top_via", "via"):
        assert after[name] is not before[name], name
    assert bytes(message) == data


def test_drop_views_on_a_response_and_on_a_message_never_read() -> None:
    response = reparsed(make_response(request_of(INVITE), 486, to_tag="t1"))
    assert isinstance(response, Response)
    response.drop_views()  # nothing was parsed yet: nothing to let go of
    before = views(response)
    response.drop_views()
    assert views(response) == before
    assert response.to.tag == "t1"
    assert response.cseq.method == "INVITE"


def test_after_drop_views_the_views_follow_changed_headers() -> None:
    message = request_of(INVITE)
    tags = [message.to.tag]
    message.drop_views()
    message.headers.set("To", "Bob <sip:bob@biloxi.example.com>;tag=changed")
    tags.append(message.to.tag)
    message.drop_views()
    tags.append(message.to.tag)
    assert tags == [None, "changed", "changed"]


def test_a_replaced_top_via_survives_drop_views() -> None:
    # replace_top_via caches the Via it was given; after drop_views the
    # header text it wrote is parsed back to the same Via.
    message = request_of(INVITE)
    stamped = message.top_via.with_params(received="192.0.2.99", rport="5099")
    message.replace_top_via(stamped)
    assert message.top_via is stamped
    message.drop_views()
    assert message.top_via is not stamped
    assert message.top_via == stamped
    assert (message.top_via.received, message.top_via.rport) == ("192.0.2.99", 5099)
    assert [via.branch for via in message.via] == [
        "z9hG4bK776asdhds",
        "z9hG4bK77ef4c2312983.1",
        "z9hG4bK74bf9",
    ]


# ----- make_response starts with the request's views ------------------------------------------


@pytest.mark.parametrize("status", [100, 180, 200, 486])
@pytest.mark.parametrize("data", [INVITE, COMPACT_IN_DIALOG], ids=["long names", "compact"])
@pytest.mark.parametrize("read_first", [True, False], ids=["views read", "views unread"])
def test_a_response_s_views_are_those_of_its_own_text(
    data: bytes, status: int, read_first: bool
) -> None:
    request = request_of(data)
    if read_first:
        views(request)  # what a server has parsed by the time it answers
    response = make_response(request, status, to_tag="a6c85cf")
    mine = views(response)
    theirs = views(reparsed(response))
    assert mine == theirs
    assert as_text(mine) == as_text(theirs)


def test_the_to_tag_is_added_outside_a_dialog_and_kept_inside_one() -> None:
    outside = request_of(INVITE)
    views(outside)
    answer = make_response(outside, 200, to_tag="a6c85cf")
    assert answer.to.tag == "a6c85cf"
    assert reparsed(answer).to.tag == "a6c85cf"
    assert outside.to.tag is None  # the request's own view is untouched
    # A 100 gets no tag (section 8.2.6.2).
    assert make_response(outside, 100, to_tag="a6c85cf").to.tag is None

    inside = request_of(COMPACT_IN_DIALOG)
    views(inside)
    answer = make_response(inside, 200, to_tag="not-used")
    assert answer.to.tag == "314159"
    assert reparsed(answer).to.tag == "314159"


def test_the_response_starts_with_the_request_s_parsed_views() -> None:
    # Nothing is parsed twice: the views of the copied headers are the
    # request's own objects, but To only when it is copied unchanged.
    request = request_of(INVITE)
    before = views(request)
    tagged = make_response(request, 200, to_tag="a6c85cf")
    for name in ("top_via", "call_id", "cseq", "from_"):
        assert getattr(tagged, name) is before[name], name
    assert tagged.to is not before["to"]
    trying = make_response(request, 100)
    for name in SHARED:
        assert getattr(trying, name) is before[name], name


def test_views_made_stale_by_a_change_to_the_request_are_not_handed_on() -> None:
    # The request's views were read, then its headers changed: the response
    # copies the new text, so it must not start with the old views.
    request = request_of(INVITE)
    views(request)
    request.headers.set("To", "Carol <sip:carol@chicago.example.com>")
    request.headers.set("CSeq", "2 INVITE")
    response = make_response(request, 180)
    assert str(response.to.uri) == "sip:carol@chicago.example.com"
    assert response.cseq.seq == 2
    assert views(response) == views(reparsed(response))


def test_a_stamped_via_reaches_the_response_as_written() -> None:
    # RFC 3261 18.2.1 / RFC 3581: received and rport stamped on arrival go
    # back in the response's Via, and its view says so.
    request = request_of(INVITE)
    request.replace_top_via(request.top_via.with_params(received="192.0.2.7", rport="5070"))
    response = make_response(request, 200, to_tag="x")
    assert response.top_via == reparsed(response).top_via
    assert (response.top_via.received, response.top_via.rport) == ("192.0.2.7", 5070)
    assert [via.branch for via in response.via] == [via.branch for via in request.via]


def test_compact_names_are_written_in_full_and_the_views_agree() -> None:
    request = request_of(COMPACT_IN_DIALOG)
    views(request)
    response = make_response(request, 200, to_tag="ignored")
    names = [name for name, _ in response.headers]
    assert names[:5] == ["Via", "To", "From", "Call-ID", "CSeq"]
    text = bytes(response).decode()
    for compact in ("v", "t", "f", "i"):
        assert f"\r\n{compact}:" not in text
    again = reparsed(response)
    assert views(response) == views(again)
    assert isinstance(again.top_via, Via)
    assert again.top_via.received == "198.51.100.7"
    assert again.top_via.rport == 40001
    assert isinstance(again.from_, NameAddr)
    assert again.from_.tag == "1928301774"
    assert again.call_id == "a84b4c76e66710@pc33.atlanta.example.com"


def test_drop_views_compacts_the_headers_which_still_read_and_change_the_same() -> None:
    message = request_of(INVITE)
    message.to  # noqa: B018 - a view to drop
    message.drop_views()
    headers = message.headers
    gc.collect()
    # Compact: nothing in the header lines for the garbage collector to walk.
    assert not any(gc.is_tracked(lines) for lines in (headers._keys, headers._values))
    assert bytes(message) == INVITE
    assert headers == request_of(INVITE).headers
    assert headers.get("call-id") == "3848276298220188511@atlanta.example.com"
    assert headers.values("via")[1].startswith("SIP/2.0/UDP bigbox3")
    assert "route" in headers
    assert headers.count("via") == 2
    # Every change works on a compact copy as on a fresh one.
    fresh = request_of(INVITE).headers
    for changed in (headers, fresh):
        changed.add("X-Added", "1")
        changed.prepend("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnew")
        changed.set("Max-Forwards", "69")
        assert changed.pop_first_value("route") == "<sip:p2.example.com;lr>"
        assert changed.remove("record-route") == 1
        changed.compact()
        changed.set("CSeq", "2 INVITE")
    assert list(headers) == list(fresh)
    assert message.cseq.seq == 2  # the views follow the change
