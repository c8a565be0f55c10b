"""Audit of the media layer against RFC 3264, RFC 8866 and RFC 3551.

Each test pins a behaviour that the RFC text requires and that the rest of the
media tests do not cover.
"""

from __future__ import annotations

import anyio
import pytest

from trio_sip.errors import ParseError
from trio_sip.media.offer_answer import answer_offer, hold_offer, make_offer
from trio_sip.media.rtp import RtpPacket
from trio_sip.media.session import MediaSession
from trio_sip.message.sdp import Direction, SessionDescription, Timing

HOST = "127.0.0.1"

# An offer as sent by a UA that fills t= with NTP times (RFC 8866 section 5.9)
# instead of the usual "t=0 0".
TIMED_OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.51.100.1\r\n"
    b"t=3034423619 3042462419\r\n"
    b"m=audio 49170 RTP/AVP 0 8\r\n"
    b"a=ptime:20\r\n"
)


def test_answer_copies_the_offer_t_line() -> None:
    # RFC 3264 section 6: "The t= line in the answer MUST equal that of the
    # offer. The time of the session cannot be negotiated."
    offer = SessionDescription.parse(TIMED_OFFER)
    answer, params = answer_offer(offer, "203.0.113.5", 40000)
    assert params is not None
    assert answer.timings == (Timing(3034423619, 3042462419),)
    again, _ = answer_offer(offer, "203.0.113.5", 40000, previous=answer)
    assert again.timings == (Timing(3034423619, 3042462419),)


def test_answer_to_an_unchanged_offer_keeps_its_version() -> None:
    # RFC 3264 section 8: an unchanged offer (a session refresh) may be
    # answered with the previous SDP; the version in o= grows only when the
    # SDP changes ("If the version in the origin line does not increment,
    # the SDP MUST be identical"), and peers renegotiate when it grows.
    offer = make_offer("192.0.2.7", 30000)
    answer, _ = answer_offer(offer, "203.0.113.5", 40000)
    refreshed, params = answer_offer(offer, "203.0.113.5", 40000, previous=answer)
    assert params is not None
    assert refreshed == answer
    assert refreshed.to_bytes() == answer.to_bytes()
    # A real change still increments it, by exactly one.
    held = hold_offer(offer)
    changed, _ = answer_offer(held, "203.0.113.5", 40000, previous=refreshed)
    assert changed.media[0].direction is Direction.RECVONLY
    assert changed.origin.session_version == answer.origin.session_version + 1
    assert changed.origin.session_id == answer.origin.session_id


@pytest.mark.parametrize(("value", "ptime"), [("20.0", 20), ("22.5", 23), ("30", 30)])
def test_fractional_ptime_is_accepted(value: str, ptime: int) -> None:
    # RFC 8866 section 6.4: ptime-value = non-zero-int-or-real. A decimal
    # packet time is valid SDP; refusing it refuses the whole offer.
    raw = TIMED_OFFER.replace(b"a=ptime:20", f"a=ptime:{value}".encode())
    offer = SessionDescription.parse(raw)
    assert offer.media[0].ptime == ptime
    assert SessionDescription.parse(offer.to_bytes()) == offer
    _, params = answer_offer(offer, "203.0.113.5", 40000)
    assert params is not None
    assert params.ptime == ptime


@pytest.mark.parametrize("value", ["20.", ".5", "2 0", "20.0.0", "-20", "x"])
def test_malformed_ptime_is_still_refused(value: str) -> None:
    # What RFC 8866's grammar does not allow stays a 400.
    raw = TIMED_OFFER.replace(b"a=ptime:20", f"a=ptime:{value}".encode())
    with pytest.raises(ParseError, match="ptime"):
        SessionDescription.parse(raw)


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_first_packet_after_hold_starts_a_talkspurt() -> None:
    # RFC 3551 section 4.1: the first packet after a period in which packets
    # were not transmitted contiguously SHOULD have the marker bit set. While
    # held the session keeps its clock (the timestamp jumps) but sends
    # nothing, so the packet that resumes the stream starts a talkspurt.
    async with (
        MediaSession(HOST) as a,
        await anyio.create_udp_socket(local_host=HOST) as raw,
    ):
        a.remote = (HOST, raw.extra(anyio.abc.SocketAttribute.local_port))
        got: list[RtpPacket] = []

        async def receiver() -> None:
            with anyio.fail_after(60):
                while len(got) < 4:
                    data, _ = await raw.receive()
                    got.append(RtpPacket.parse(data))

        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)
            await a.send(b"\xff" * 160)
            await a.send(b"\xff" * 160)
            a.direction = Direction.RECVONLY
            for _ in range(5):
                await a.send(b"\xff" * 160)
            a.direction = Direction.SENDRECV
            await a.send(b"\xff" * 160)
            await a.send(b"\xff" * 160)
    start = got[0].timestamp
    assert [(p.timestamp - start) & 0xFFFFFFFF for p in got] == [0, 160, 1120, 1280]
    assert [p.marker for p in got] == [True, False, True, False]
