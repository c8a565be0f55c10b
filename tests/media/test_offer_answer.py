"""SDP offer/answer (RFC 3264) for audio, without an event loop."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trio_sip.media.offer_answer import (
    MediaParams,
    NoCommonMedia,
    answer_offer,
    hold_offer,
    make_offer,
    read_answer,
    resume_offer,
)
from trio_sip.message.sdp import Direction, RtpMap, SessionDescription

OFFER = b"""v=0\r
o=alice 2890844526 2890844526 IN IP4 198.51.100.1\r
s=-\r
c=IN IP4 198.51.100.1\r
t=0 0\r
m=video 51372 RTP/AVP 31\r
m=audio 49170 RTP/AVP 18 8 96 0 97\r
a=rtpmap:96 opus/48000/2\r
a=rtpmap:97 telephone-event/8000\r
a=fmtp:97 0-15\r
a=ptime:30\r
m=audio 49180 RTP/AVP 0\r
"""


def _answer(
    offer: bytes | SessionDescription, **kwargs: object
) -> tuple[SessionDescription, MediaParams | None]:
    parsed = offer if isinstance(offer, SessionDescription) else SessionDescription.parse(offer)
    answer, params = answer_offer(parsed, "203.0.113.5", 40000, **kwargs)  # type: ignore[arg-type]
    # The answer always serialises and reads back the same.
    assert SessionDescription.parse(answer.to_bytes()) == answer
    return answer, params


def test_offer_lists_our_codecs_and_telephone_event() -> None:
    offer = make_offer("192.0.2.7", 30000, session_id=42)
    (media,) = offer.media
    assert media.formats == ("0", "8", "101")
    assert media.port == 30000
    assert offer.connection is not None
    assert offer.connection.address == "192.0.2.7"
    assert media.rtpmaps()[101] == RtpMap(101, "telephone-event", 8000)
    assert media.fmtp(101) == "0-16"
    assert media.direction is Direction.SENDRECV
    assert offer.origin.session_id == 42


def test_offer_with_connection_per_media_and_ipv6() -> None:
    offer = make_offer("2001:db8::1", 30000, connection_per_media=True, telephone_event=None)
    assert offer.connection is None
    (media,) = offer.media
    assert media.formats == ("0", "8")
    assert media.connections[0].addrtype == "IP6"
    assert media.connection_address(offer) == "2001:db8::1"


def test_answer_keeps_line_order_and_intersects_codecs() -> None:
    answer, params = _answer(OFFER)
    video, audio, second_audio = answer.media
    # One answer line per offered line, in order (RFC 3264 6).
    assert [m.media_type for m in answer.media] == ["video", "audio", "audio"]
    assert video.port == 0  # video is not supported
    assert second_audio.port == 0  # only one audio stream is accepted
    assert audio.port == 40000
    # Common codecs in the offerer's order, with its telephone-event number.
    assert audio.formats == ("8", "0", "97")
    assert audio.fmtp(97) == "0-15"
    assert audio.ptime == 30
    assert params == MediaParams(
        remote=("198.51.100.1", 49170),
        codec=RtpMap(8, "PCMA", 8000),
        telephone_event=97,
        direction=Direction.SENDRECV,
        ptime=30,
        index=1,
    )


def test_answer_without_telephone_event_when_not_offered_or_not_wanted() -> None:
    offer = make_offer("192.0.2.7", 30000, codecs=[0], telephone_event=None)
    answer, params = _answer(offer)
    assert answer.media[0].formats == ("0",)
    assert params is not None
    assert params.telephone_event is None
    answer, params = _answer(make_offer("192.0.2.7", 30000), telephone_event=False)
    assert answer.media[0].formats == ("0", "8")
    assert params is not None
    assert params.telephone_event is None


def test_telephone_event_payload_type_follows_the_offer() -> None:
    offer = make_offer("192.0.2.7", 30000, telephone_event=120)
    answer, params = _answer(offer)
    assert answer.media[0].rtpmaps()[120].encoding_name == "telephone-event"
    assert params is not None
    assert params.telephone_event == 120
    ours = read_answer(offer, answer)
    assert ours is not None
    assert ours.telephone_event == 120


def test_no_common_codec_rejects_every_stream() -> None:
    offer = SessionDescription.parse(
        OFFER.replace(b" 18 8 96 0 97", b" 18 96").replace(b"RTP/AVP 0\r", b"RTP/AVP 18\r")
    )
    answer, params = _answer(offer)
    assert params is None
    assert [m.port for m in answer.media] == [0, 0, 0]
    assert read_answer(offer, answer) is None
    with pytest.raises(NoCommonMedia):
        answer_offer(offer, "203.0.113.5", 40000, require=True)


def test_stream_offered_with_port_zero_stays_rejected() -> None:
    offer = SessionDescription.parse(OFFER.replace(b"49170", b"0"))
    answer, params = _answer(offer)
    assert [m.port for m in answer.media] == [0, 0, 40000]
    assert params is not None
    assert params.index == 2
    assert params.codec.encoding_name == "PCMU"


@pytest.mark.parametrize(
    ("offered", "wanted", "answered"),
    [
        (Direction.SENDRECV, Direction.SENDRECV, Direction.SENDRECV),
        (Direction.SENDONLY, Direction.SENDRECV, Direction.RECVONLY),
        (Direction.RECVONLY, Direction.SENDRECV, Direction.SENDONLY),
        (Direction.INACTIVE, Direction.SENDRECV, Direction.INACTIVE),
        (Direction.SENDRECV, Direction.SENDONLY, Direction.SENDONLY),
        (Direction.SENDONLY, Direction.SENDONLY, Direction.INACTIVE),
        (Direction.SENDRECV, Direction.RECVONLY, Direction.RECVONLY),
    ],
)
def test_answer_direction(offered: Direction, wanted: Direction, answered: Direction) -> None:
    offer = make_offer("192.0.2.7", 30000, direction=offered)
    answer, params = _answer(offer, direction=wanted)
    assert answer.effective_direction(answer.media[0]) is answered
    assert params is not None
    assert params.direction is answered


def test_session_level_direction_of_the_offer_counts() -> None:
    offer = make_offer("192.0.2.7", 30000)
    media = tuple(m.with_direction(None) for m in offer.media)
    offer = replace(offer, media=media).with_direction(Direction.SENDONLY)
    _, params = _answer(offer)
    assert params is not None
    assert params.direction is Direction.RECVONLY


def test_hold_and_resume_round_trip() -> None:
    offer = make_offer("192.0.2.7", 30000)
    answer, _ = _answer(offer)
    held = hold_offer(offer)
    assert held.origin.session_version == offer.origin.session_version + 1
    assert held.media[0].direction is Direction.SENDONLY
    held_answer, held_params = _answer(held, previous=answer)
    # The peer sees us on hold: it only receives.
    assert held_params is not None
    assert held_params.direction is Direction.RECVONLY
    assert held_answer.origin.session_id == answer.origin.session_id
    assert held_answer.origin.session_version == answer.origin.session_version + 1
    ours = read_answer(held, held_answer)
    assert ours is not None
    assert ours.direction is Direction.SENDONLY
    resumed = resume_offer(held)
    assert resumed.origin.session_version == held.origin.session_version + 1
    assert resumed.media[0].direction is Direction.SENDRECV
    _, resumed_params = _answer(resumed, previous=held_answer)
    assert resumed_params is not None
    assert resumed_params.direction is Direction.SENDRECV


def test_hold_of_a_receive_only_stream_is_inactive() -> None:
    offer = make_offer("192.0.2.7", 30000, direction=Direction.RECVONLY)
    assert hold_offer(offer).media[0].direction is Direction.INACTIVE


def test_connection_per_session_or_per_media() -> None:
    offer = SessionDescription.parse(
        OFFER.replace(
            b"m=audio 49170 RTP/AVP 18 8 96 0 97\r\n",
            b"m=audio 49170 RTP/AVP 18 8 96 0 97\r\nc=IN IP4 198.51.100.99\r\n",
        )
    )
    answer, params = _answer(offer)
    assert params is not None
    assert params.remote == ("198.51.100.99", 49170)  # the media's c= wins
    assert answer.connection is not None
    assert answer.connection.address == "203.0.113.5"
    assert all(not m.connections for m in answer.media)
    answer, _ = _answer(offer, connection_per_media=True)
    assert answer.connection is None
    assert answer.media[1].connection_address(answer) == "203.0.113.5"
    assert not answer.media[0].connections  # a rejected line needs none


def test_unspecified_connection_means_no_remote() -> None:
    offer = SessionDescription.parse(OFFER.replace(b"c=IN IP4 198.51.100.1", b"c=IN IP4 0.0.0.0"))
    answer, params = _answer(offer)
    assert params is not None
    assert params.remote is None
    # The RFC 2543 hold: we must not send, so we only receive.
    assert params.direction is Direction.RECVONLY
    assert answer.media[1].direction is Direction.RECVONLY


def test_offerer_reads_the_answer() -> None:
    offer = make_offer("192.0.2.7", 30000, codecs=[8, 0])
    answer = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"
        b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n"
    )
    params = read_answer(offer, answer)
    assert params == MediaParams(
        remote=("203.0.113.5", 40000),
        codec=RtpMap(0, "PCMU", 8000),
        telephone_event=101,
        direction=Direction.SENDONLY,
        ptime=20,
        index=0,
    )
