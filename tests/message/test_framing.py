"""Stream framing: Content-Length, keep-alives, split and merged writes."""

from __future__ import annotations

import pytest

from trio_sip.errors import ParseError
from trio_sip.message import KeepAlivePing, KeepAlivePong, ParseLimits, Request, StreamFramer


def _msg(n: int, body: bytes = b"") -> bytes:
    return (
        f"MESSAGE sip:b@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{n}\r\nCSeq: {n} MESSAGE\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_one_byte_at_a_time() -> None:
    data = _msg(1, b"hello") + _msg(2)
    framer = StreamFramer()
    events = []
    for i in range(len(data)):
        events += framer.feed(data[i : i + 1])
    assert [e.cseq.seq for e in events if isinstance(e, Request)] == [1, 2]
    assert events[0].body == b"hello"  # type: ignore[union-attr]
    assert framer.buffered == 0


def test_several_messages_in_one_write() -> None:
    events = StreamFramer().feed(_msg(1, b"a") + _msg(2, b"bb") + _msg(3, b"ccc"))
    assert [e.body for e in events] == [b"a", b"bb", b"ccc"]  # type: ignore[union-attr]
    assert bytes(events[1]) == _msg(2, b"bb")  # type: ignore[arg-type]


def test_keepalives() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [KeepAlivePing()]
    assert framer.feed(b"\r\n") == []  # could still become a ping
    events = framer.feed(_msg(1))
    assert isinstance(events[0], KeepAlivePong)
    assert isinstance(events[1], Request)
    assert len(events) == 2
    framer = StreamFramer()
    events = framer.feed(b"\r\n" + _msg(5))
    assert isinstance(events[0], KeepAlivePong)
    assert isinstance(events[1], Request)


def test_missing_content_length_is_fatal() -> None:
    with pytest.raises(ParseError):
        StreamFramer().feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n")


def test_size_limit() -> None:
    framer = StreamFramer(ParseLimits(max_message_size=100))
    with pytest.raises(ParseError) as err:
        framer.feed(_msg(1, b"x" * 200))
    assert err.value.status_hint == 413
    with pytest.raises(ParseError):
        StreamFramer(ParseLimits(max_message_size=100)).feed(b"X" * 101)
