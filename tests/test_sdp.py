"""SDP (RFC 4566): real-world descriptions, refusals, round trips and fuzzing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_sip.errors import ParseError
from trio_sip.message.sdp import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    Media,
    Origin,
    Repeat,
    RtpMap,
    SessionDescription,
    Timing,
    ZoneAdjustment,
)


def crlf(text: str) -> bytes:
    """The test SDPs are written with LF; the wire has CRLF."""
    return text.replace("\n", "\r\n").encode()


# SIPp's built-in uac scenario.
SIPP_OFFER = crlf(
    """\
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""
)

# Linphone-like: several codecs, static 18 listed without an rtpmap, video,
# session bandwidth and an rtcp port attribute.
LINPHONE_OFFER = crlf(
    """\
v=0
o=alice 1829 2371 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
b=AS:380
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 102 103
b=TIAS:2000000
a=rtpmap:102 VP8/90000
a=rtpmap:103 H264/90000
a=fmtp:103 profile-level-id=42801F
a=rtcp-fb:* nack pli
"""
)

# Asterisk-like answer: static codecs with rtpmaps, DTMF, ptime, sendrecv.
ASTERISK_OFFER = crlf(
    """\
v=0
o=- 1672531200 1672531201 IN IP4 203.0.113.5
s=Asterisk
c=IN IP4 203.0.113.5
t=0 0
m=audio 18250 RTP/AVP 9 0 8 3 101
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
"""
)

# ICE (RFC 8445) and SRTP attributes: nothing this module interprets, all kept.
ICE_OFFER = crlf(
    """\
v=0
o=- 4611731400430051336 2 IN IP4 198.51.100.7
s=-
t=0 0
a=ice-ufrag:F7gI
a=ice-pwd:x9cml/YzichV2+XlhiMu8g
m=audio 54400 RTP/SAVP 0 101
c=IN IP4 198.51.100.7
a=rtcp:54401 IN IP4 198.51.100.7
a=candidate:1 1 UDP 2130706431 192.168.1.7 54400 typ host
a=candidate:2 1 UDP 1694498815 198.51.100.7 54400 typ srflx raddr 192.168.1.7 rport 54400
a=candidate:1 2 UDP 2130706430 192.168.1.7 54401 typ host
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32
a=rtpmap:101 telephone-event/8000
"""
)

# A re-INVITE putting the call on hold both ways at once: RFC 3264 sendonly,
# and the RFC 2543 null connection address.
HOLD_OFFER = crlf(
    """\
v=0
o=bob 2808844564 2808844565 IN IP4 192.0.2.33
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 49172 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendonly
"""
)

IPV6_OFFER = crlf(
    """\
v=0
o=carol 1 1 IN IP6 2001:db8::2
s=\x20
c=IN IP6 2001:db8::2
t=0 0
m=audio 49170 RTP/AVP 8
m=video 0 RTP/AVP 31
c=IN IP6 ::1
"""
)

# RFC 4566 section 5's example, with the repeat and zone lines of 5.10 and 5.11.
RFC4566_EXAMPLE = crlf(
    """\
v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
p=+1 617 555-6011
c=IN IP4 224.2.17.12/127
t=2873397496 2873404696
r=7d 1h 0 25h
z=2882844526 -1h 2898848070 0
k=prompt
a=recvonly
m=audio 49170 RTP/AVP 0
m=video 51372 RTP/AVP 99
i=the slides
k=clear:secret
a=rtpmap:99 h263-1998/90000
"""
)

REAL_WORLD = [
    SIPP_OFFER,
    LINPHONE_OFFER,
    ASTERISK_OFFER,
    ICE_OFFER,
    HOLD_OFFER,
    IPV6_OFFER,
    RFC4566_EXAMPLE,
]


# --- Real-world descriptions ---------------------------------------------------------


def test_sipp_offer() -> None:
    sdp = SessionDescription.parse(SIPP_OFFER)
    assert sdp.version == 0
    assert sdp.origin == Origin("user1", 53655765, 2353687637, "IN", "IP4", "127.0.0.1")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("IN", "IP4", "127.0.0.1")
    assert sdp.timings == (Timing(0, 0),)
    (audio,) = sdp.media
    assert (audio.media_type, audio.port, audio.proto, audio.formats) == (
        "audio",
        6000,
        "RTP/AVP",
        ("0",),
    )
    assert audio.rtpmaps() == {0: RtpMap(0, "PCMU", 8000)}
    assert audio.connection_address(sdp) == "127.0.0.1"
    assert sdp.effective_direction(audio) is Direction.SENDRECV
    assert not audio.is_rejected


def test_linphone_offer_with_many_codecs() -> None:
    sdp = SessionDescription.parse(LINPHONE_OFFER)
    assert sdp.origin.username == "alice"
    assert sdp.session_name == "Talk"
    assert sdp.bandwidths == (Bandwidth("AS", 380),)
    assert sdp.attributes == (
        Attribute("rtcp-xr", "rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics"),
    )
    audio, video = sdp.media
    assert audio.payload_types == (96, 97, 98, 0, 8, 18, 101, 99, 100)
    maps = audio.rtpmaps()
    assert list(maps) == [96, 97, 98, 0, 8, 18, 101, 99, 100]
    assert maps[96] == RtpMap(96, "opus", 48000, "2")
    assert maps[96].channels == 2
    assert maps[97] == RtpMap(97, "speex", 16000)
    assert maps[97].channels == 1
    # static payload types without an rtpmap line come from RFC 3551's table
    assert maps[0] == RtpMap(0, "PCMU", 8000)
    assert maps[8] == RtpMap(8, "PCMA", 8000)
    assert maps[18] == RtpMap(18, "G729", 8000)
    assert maps[100] == RtpMap(100, "telephone-event", 8000)
    assert audio.fmtp(96) == "useinbandfec=1"
    assert audio.fmtp("18") == "annexb=yes"
    assert audio.fmtp(0) is None
    assert audio.attribute("rtcp") == Attribute("rtcp", "7079")
    assert [a.value for a in audio.attributes_named("rtcp-fb")] == [
        "* trr-int 1000",
        "* ccm tmmbr",
    ]
    assert audio.ptime is None
    assert audio.connection_address(sdp) == "192.168.1.20"
    assert video.media_type == "video"
    assert video.port == 9078
    assert video.bandwidths == (Bandwidth("TIAS", 2000000),)
    assert video.rtpmaps() == {
        102: RtpMap(102, "VP8", 90000),
        103: RtpMap(103, "H264", 90000),
    }
    assert video.fmtp(103) == "profile-level-id=42801F"


def test_asterisk_offer() -> None:
    sdp = SessionDescription.parse(ASTERISK_OFFER)
    assert sdp.origin.session_id == 1672531200
    assert sdp.origin.session_version == 1672531201
    (audio,) = sdp.media
    assert audio.rtpmaps() == {
        9: RtpMap(9, "G722", 8000),
        0: RtpMap(0, "PCMU", 8000),
        8: RtpMap(8, "PCMA", 8000),
        3: RtpMap(3, "GSM", 8000),
        101: RtpMap(101, "telephone-event", 8000),
    }
    assert audio.fmtp(101) == "0-16"
    assert audio.ptime == 20
    assert audio.attribute("maxptime") == Attribute("maxptime", "150")
    assert audio.direction is Direction.SENDRECV
    assert sdp.direction is None


def test_ice_candidates_and_rtcp_are_kept_in_order() -> None:
    sdp = SessionDescription.parse(ICE_OFFER)
    assert sdp.origin.session_id == 4611731400430051336
    assert sdp.connection is None
    assert sdp.attributes == (
        Attribute("ice-ufrag", "F7gI"),
        Attribute("ice-pwd", "x9cml/YzichV2+XlhiMu8g"),
    )
    (audio,) = sdp.media
    assert audio.proto == "RTP/SAVP"
    assert audio.is_rtp
    assert audio.connections == (Connection("IN", "IP4", "198.51.100.7"),)
    assert audio.connection_address(sdp) == "198.51.100.7"
    assert [a.name for a in audio.attributes] == [
        "rtcp",
        "candidate",
        "candidate",
        "candidate",
        "crypto",
        "rtpmap",
    ]
    assert audio.attribute("rtcp") == Attribute("rtcp", "54401 IN IP4 198.51.100.7")
    assert audio.attributes_named("candidate")[1].value == (
        "2 1 UDP 1694498815 198.51.100.7 54400 typ srflx raddr 192.168.1.7 rport 54400"
    )
    assert audio.attribute("crypto") == Attribute(
        "crypto",
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
    )
    # kept byte for byte, in order
    assert SessionDescription.parse(ICE_OFFER).to_bytes() == ICE_OFFER


def test_hold_offer() -> None:
    sdp = SessionDescription.parse(HOLD_OFFER)
    assert sdp.origin.session_version == 2808844565
    assert sdp.connection == Connection("IN", "IP4", "0.0.0.0")
    assert sdp.connection is not None
    assert sdp.connection.is_unspecified
    (audio,) = sdp.media
    assert audio.direction is Direction.SENDONLY
    assert sdp.effective_direction(audio) is Direction.SENDONLY
    assert sdp.effective_direction(audio).reversed() is Direction.RECVONLY
    assert audio.connection_address(sdp) == "0.0.0.0"
    assert not audio.is_rejected


def test_ipv6_offer() -> None:
    sdp = SessionDescription.parse(IPV6_OFFER)
    assert sdp.origin == Origin("carol", 1, 1, "IN", "IP6", "2001:db8::2")
    # "s= " is RFC 4566's way to say the session has no name
    assert sdp.session_name == " "
    assert sdp.connection == Connection("IN", "IP6", "2001:db8::2")
    audio, video = sdp.media
    assert audio.connection_address(sdp) == "2001:db8::2"
    assert audio.rtpmaps() == {8: RtpMap(8, "PCMA", 8000)}
    assert video.is_rejected
    assert video.connection_address(sdp) == "::1"
    assert video.rtpmaps() == {31: RtpMap(31, "H261", 90000)}
    assert SessionDescription.parse(IPV6_OFFER).to_bytes() == IPV6_OFFER


def test_rfc4566_example_with_repeats_zones_and_keys() -> None:
    sdp = SessionDescription.parse(RFC4566_EXAMPLE)
    assert sdp.information == "A Seminar on the session description protocol"
    assert sdp.uri == "http://www.example.com/seminars/sdp.pdf"
    assert sdp.emails == ("j.doe@example.com (Jane Doe)",)
    assert sdp.phones == ("+1 617 555-6011",)
    assert sdp.connection == Connection("IN", "IP4", "224.2.17.12", ttl=127)
    # "r=7d 1h 0 25h": a week, for an hour, at the start and 25 hours later
    assert sdp.timings == (
        Timing(2873397496, 2873404696, (Repeat(7 * 86400, 3600, (0, 25 * 3600)),)),
    )
    assert sdp.zone_adjustments == (
        ZoneAdjustment(2882844526, -3600),
        ZoneAdjustment(2898848070, 0),
    )
    assert sdp.key == "prompt"
    assert sdp.direction is Direction.RECVONLY
    audio, video = sdp.media
    # no direction at media level: the session's applies
    assert audio.direction is None
    assert sdp.effective_direction(audio) is Direction.RECVONLY
    assert video.information == "the slides"
    assert video.key == "clear:secret"
    assert video.rtpmaps() == {99: RtpMap(99, "h263-1998", 90000)}
    # canonical output turns typed times into seconds
    out = sdp.to_bytes()
    assert b"r=604800 3600 0 90000\r\n" in out
    assert b"z=2882844526 -3600 2898848070 0\r\n" in out
    assert SessionDescription.parse(out) == sdp


def test_multicast_suffixes() -> None:
    sdp = SessionDescription.parse(
        crlf(
            """\
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 224.2.1.1/127/3
t=0 0
m=audio 49170/2 RTP/AVP 0
c=IN IP6 FF15::101/3
c=IN IP6 FF15::201
"""
        )
    )
    assert sdp.connection == Connection("IN", "IP4", "224.2.1.1", ttl=127, count=3)
    (audio,) = sdp.media
    assert audio.port == 49170
    assert audio.port_count == 2
    assert audio.connections == (
        Connection("IN", "IP6", "FF15::101", count=3),
        Connection("IN", "IP6", "FF15::201"),
    )
    # the first media c= wins over the session's
    assert audio.connection_address(sdp) == "FF15::101"
    out = sdp.to_bytes()
    assert b"c=IN IP4 224.2.1.1/127/3\r\n" in out
    assert b"m=audio 49170/2 RTP/AVP 0\r\n" in out
    assert b"c=IN IP6 FF15::101/3\r\n" in out


def test_non_rtp_media_keeps_its_formats() -> None:
    sdp = SessionDescription.parse(
        crlf(
            """\
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=image 4000 udptl t38
a=T38FaxVersion:0
m=application 5000 TCP/MSRP *
"""
        )
    )
    image, msrp = sdp.media
    assert image.formats == ("t38",)
    assert not image.is_rtp
    assert image.payload_types == ()
    assert image.rtpmaps() == {}
    assert msrp.formats == ("*",)


# --- Tolerance ----------------------------------------------------------------------


@pytest.mark.parametrize("raw", REAL_WORLD)
def test_bare_lf_is_accepted_and_crlf_comes_out(raw: bytes) -> None:
    lf = raw.replace(b"\r\n", b"\n")
    sdp = SessionDescription.parse(lf)
    assert sdp == SessionDescription.parse(raw)
    assert b"\n" not in sdp.to_bytes().replace(b"\r\n", b"")


@pytest.mark.parametrize("raw", REAL_WORLD)
def test_str_input_and_bytes_dunder(raw: bytes) -> None:
    sdp = SessionDescription.parse(raw.decode())
    assert sdp == SessionDescription.parse(raw)
    assert bytes(sdp) == sdp.to_bytes()


def test_missing_final_line_end_and_trailing_blank_lines() -> None:
    sdp = SessionDescription.parse(SIPP_OFFER)
    assert SessionDescription.parse(SIPP_OFFER.rstrip(b"\r\n")) == sdp
    assert SessionDescription.parse(SIPP_OFFER + b"\r\n\r\n") == sdp


def test_runs_of_spaces_and_blanks_after_a_flag() -> None:
    sdp = SessionDescription.parse(
        b"v=0\r\no=-  1 2  IN IP4 192.0.2.1 \r\ns=-\r\nt=0  0\r\n"
        b"m=audio  4000 RTP/AVP  0  8 \r\na=sendonly \r\na=rtpmap:0 PCMU/8000 \r\n"
    )
    assert sdp.origin == Origin("-", 1, 2, "IN", "IP4", "192.0.2.1")
    (audio,) = sdp.media
    assert audio.formats == ("0", "8")
    assert audio.direction is Direction.SENDONLY
    assert audio.rtpmaps()[0] == RtpMap(0, "PCMU", 8000)


def test_session_lines_out_of_order_are_put_in_rfc_order() -> None:
    shuffled = crlf(
        """\
v=0
s=-
o=- 1 1 IN IP4 192.0.2.1
a=tool:x
t=0 0
c=IN IP4 192.0.2.1
m=audio 4000 RTP/AVP 0
a=sendrecv
c=IN IP4 192.0.2.2
"""
    )
    sdp = SessionDescription.parse(shuffled)
    assert sdp.to_bytes() == crlf(
        """\
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
a=tool:x
m=audio 4000 RTP/AVP 0
c=IN IP4 192.0.2.2
a=sendrecv
"""
    )


def test_unknown_attributes_are_kept_in_order() -> None:
    sdp = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"
        b"a=x-b:2\r\na=x-a\r\na=x-b:1\r\na=x-empty:\r\n"
    )
    assert sdp.attributes == (
        Attribute("x-b", "2"),
        Attribute("x-a"),
        Attribute("x-b", "1"),
        Attribute("x-empty", ""),
    )
    assert sdp.attribute("x-b") == Attribute("x-b", "2")
    assert sdp.attribute("nope") is None


def test_text_keeps_utf8_and_odd_separators() -> None:
    # VT, FF and U+2028 are legal inside SDP text; only LF ends a record
    sdp = SessionDescription.parse(
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=Caf\u00e9 \u2028\x0b\x0c\u0085\nt=0 0\n".encode()
    )
    assert sdp.session_name == "Caf\u00e9 \u2028\x0b\x0c\u0085"
    assert SessionDescription.parse(sdp.to_bytes()) == sdp


# --- Refusals --------------------------------------------------------------------------

MINIMAL = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b" \r\n\t\r\n", "empty", id="whitespace-only"),
        pytest.param(b"\r\n\r\n", "empty", id="blank-lines"),
        pytest.param(MINIMAL.removeprefix("v=0\n"), "starts with v=", id="missing-v"),
        pytest.param(MINIMAL.replace("v=0", "v=1"), "version", id="v=1"),
        pytest.param(MINIMAL.replace("v=0", "v=x"), "v=", id="v=x"),
        pytest.param("\n" + MINIMAL, "type", id="blank-first-line"),
        pytest.param(MINIMAL.replace("t=0 0\n", "t=0 0\nv=0\n"), "first line", id="second-v"),
        pytest.param(MINIMAL.replace("o=- 1 1 IN IP4 192.0.2.1\n", ""), "o=", id="missing-o"),
        pytest.param(MINIMAL.replace("s=-\n", ""), "s=", id="missing-s"),
        pytest.param(MINIMAL.replace("t=0 0\n", ""), "t=", id="missing-t"),
        pytest.param(MINIMAL.replace("s=-", "s=-\ns=again"), "more than one", id="two-s"),
        pytest.param(
            MINIMAL.replace("t=0 0", "c=IN IP4 1.2.3.4\nc=IN IP4 1.2.3.5\nt=0 0"),
            "more than one",
            id="two-session-c",
        ),
        pytest.param(MINIMAL.replace("s=-", "s=-\nhello"), "<type>=<value>", id="no-equals"),
        pytest.param(MINIMAL.replace("s=-", "s=-\nx=unknown"), "unknown type", id="letter-x"),
        pytest.param(MINIMAL.replace("s=-", "s=-\nS=upper"), "unknown type", id="letter-S"),
        pytest.param(MINIMAL.replace("s=-", "s=-\nab=c"), "<type>=<value>", id="two-letters"),
        pytest.param(MINIMAL.replace("s=-", "s =-"), "<type>=<value>", id="space-before-eq"),
        pytest.param(MINIMAL.replace("4000", "70000"), "port", id="port-too-big"),
        pytest.param(MINIMAL.replace("4000", "abc"), "port", id="port-not-number"),
        pytest.param(MINIMAL.replace("4000", "-1"), "port", id="port-negative"),
        pytest.param(MINIMAL.replace("4000", "4000/0"), "port", id="port-count-0"),
        pytest.param(MINIMAL.replace("RTP/AVP 0", "RTP/AVP PCMU"), "payload", id="fmt-name"),
        pytest.param(MINIMAL.replace("RTP/AVP 0", "RTP/AVP 128"), "payload", id="fmt-128"),
        pytest.param(MINIMAL.replace("RTP/AVP 0", "RTP/AVP"), "m=", id="no-format"),
        pytest.param(MINIMAL.replace("t=0 0", "r=1 1 1\nt=0 0"), "r=", id="r-before-t"),
        pytest.param(MINIMAL.replace("t=0 0", "t=0"), "t=", id="t-one-field"),
        pytest.param(MINIMAL.replace("t=0 0", "t=0 0\nr=0 1 1"), "interval", id="r-zero"),
        pytest.param(MINIMAL.replace("t=0 0", "t=0 0\nr=1 -1 1"), "duration", id="r-minus"),
        pytest.param(MINIMAL.replace("t=0 0", "t=0 0\nz=1"), "z=", id="z-odd"),
        pytest.param(MINIMAL + "o=- 1 1 IN IP4 192.0.2.1\n", "media", id="o-in-media"),
        pytest.param(MINIMAL + "t=0 0\n", "media", id="t-in-media"),
        pytest.param(MINIMAL + "i=a\ni=b\n", "more than one", id="two-media-i"),
        pytest.param(MINIMAL.replace("IN IP4 192.0.2.1", "IN IP4"), "o=", id="short-o"),
        pytest.param(MINIMAL.replace("1 1 IN", "x 1 IN"), "sess-id", id="sess-id-x"),
        pytest.param(MINIMAL + "c=IN IP4\n", "c=", id="short-c"),
        pytest.param(MINIMAL + "c=IN IP4 224.2.1.1/256\n", "TTL", id="ttl-256"),
        pytest.param(MINIMAL + "c=IN IP4 224.2.1.1/1/2/3\n", "suffix", id="c-suffix"),
        pytest.param(MINIMAL + "c=IN IP6 ff15::1/1/2\n", "suffix", id="c6-ttl"),
        pytest.param(MINIMAL + "b=AS\n", "b=", id="b-no-colon"),
        pytest.param(MINIMAL + "b=AS:x\n", "b=", id="b-not-number"),
        pytest.param(MINIMAL + "a=\n", "attribute", id="a-empty"),
        pytest.param(MINIMAL + "a=bad name\n", "attribute", id="a-space-in-name"),
        pytest.param(MINIMAL + "a=rtpmap:96\n", "rtpmap", id="rtpmap-short"),
        pytest.param(MINIMAL + "a=rtpmap\n", "rtpmap", id="rtpmap-no-value"),
        pytest.param(MINIMAL + "a=rtpmap:200 X/8000\n", "payload type", id="rtpmap-200"),
        pytest.param(
            MINIMAL + "a=rtpmap:0 PCMU/8000\na=rtpmap:0 PCMA/8000\n", "two rtpmap", id="rtpmap-2x"
        ),
        pytest.param(MINIMAL + "a=ptime:twenty\n", "ptime", id="ptime-word"),
        pytest.param(MINIMAL + "a=sendonly\na=recvonly\n", "direction", id="two-directions"),
        pytest.param(
            MINIMAL.replace("t=0 0", "t=0 0\na=inactive\na=sendrecv"),
            "direction",
            id="two-session-directions",
        ),
        pytest.param(MINIMAL.replace("s=-", "s=a\x00b"), "NUL", id="nul"),
        pytest.param(MINIMAL.replace("s=-", "s=a\rb"), "CR", id="bare-cr"),
        pytest.param(MINIMAL.replace("s=-", "s=\ud800"), "surrogate", id="str-surrogate"),
        pytest.param(MINIMAL.replace("-", "\udc80", 1), "surrogate", id="surrogate-in-o"),
        pytest.param(MINIMAL.encode().replace(b"s=-", b"s=\xff\xfe"), "UTF-8", id="not-utf8"),
        pytest.param(MINIMAL.replace("o=- 1", "o=- " + "9" * 5000), "sess-id", id="huge-number"),
    ],
)
def test_invalid_sdp_is_refused_with_400(raw: bytes | str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason) as caught:
        SessionDescription.parse(raw)
    assert caught.value.status_hint == 400


def test_unknown_type_letter_drops_the_whole_description() -> None:
    # RFC 4566 section 5: "an SDP parser MUST completely ignore any session
    # description that contains a type letter that it does not understand".
    # Raising is how the caller ignores it; parsing around the line would not.
    with pytest.raises(ParseError, match="line 5: unknown type letter 'y'"):
        SessionDescription.parse(MINIMAL.replace("t=0 0\n", "t=0 0\ny=what\n"))


def test_error_names_the_line() -> None:
    with pytest.raises(ParseError, match="line 5"):
        SessionDescription.parse(MINIMAL.replace("4000", "99999"))


# --- Model checks and builders ------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Attribute("a b"),
        lambda: Attribute("x", "a\r\nm=audio 1 RTP/AVP 0"),
        lambda: Origin("-", -1, 1, "IN", "IP4", "192.0.2.1"),
        lambda: Connection("IN", "IP4", "224.0.0.1/3"),
        lambda: Connection("IN", "IP6", "ff15::1", ttl=3),
        lambda: Connection("IN", "IP4", "224.0.0.1", count=3),
        lambda: Media("audio", 70000, "RTP/AVP", ("0",)),
        lambda: Media("audio", 4000, "RTP/AVP", ()),
        lambda: Media("audio", 4000, "RTP/AVP", ("PCMU",)),
        lambda: Media("audio", 4000, "RTP/AVP", ("0",), attributes=(Attribute("rtpmap", "x"),)),
        lambda: RtpMap(128, "X", 8000),
        lambda: SessionDescription(Origin("-", 1, 1, "IN", "IP4", "h"), session_name="\n"),
        lambda: SessionDescription(Origin("-", 1, 1, "IN", "IP4", "h"), timings=()),
        lambda: SessionDescription(Origin("-", 1, 1, "IN", "IP4", "h"), version=1),
        lambda: Media.audio(4000, [96]),
    ],
)
def test_models_refuse_what_could_not_be_written(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        build()


def test_checks_remembered_for_valid_values_still_refuse_lookalikes() -> None:
    # The model's checks are memoised by value; True == 1 and hashes alike,
    # but a bool is no number of ports or TTL, even after 1 was seen.
    Media("audio", 4000, "RTP/AVP", ("0",), port_count=1)
    with pytest.raises(ValueError, match="number of ports"):
        Media("audio", 4000, "RTP/AVP", ("0",), port_count=True)
    Connection("IN", "IP4", "224.0.0.1", ttl=1)
    with pytest.raises(ValueError, match="TTL"):
        Connection("IN", "IP4", "224.0.0.1", ttl=True)
    # A value that failed is checked again, not remembered.
    for _ in range(2):
        with pytest.raises(ValueError, match="attribute name"):
            Attribute("a b")


def test_new_session_and_audio_builder() -> None:
    sdp = SessionDescription.new(
        "192.0.2.10", session_id=42, media=[Media.audio(40000, connection=None)]
    )
    assert sdp.to_bytes() == crlf(
        """\
v=0
o=- 42 42 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
"""
    )
    (audio,) = sdp.media
    assert audio.rtpmaps() == {
        0: RtpMap(0, "PCMU", 8000),
        8: RtpMap(8, "PCMA", 8000),
        101: RtpMap(101, "telephone-event", 8000),
    }
    assert audio.fmtp(101) == "0-16"
    assert audio.ptime == 20
    assert SessionDescription.parse(sdp.to_bytes()) == sdp


def test_audio_builder_options() -> None:
    opus = RtpMap(111, "opus", 48000, "2")
    audio = Media.audio(
        5000,
        [opus, 0],
        telephone_event=None,
        ptime=None,
        direction=Direction.RECVONLY,
        proto="RTP/SAVP",
        connection=Connection.for_address("2001:db8::7"),
    )
    assert audio.formats == ("111", "0")
    assert audio.proto == "RTP/SAVP"
    assert audio.rtpmaps() == {111: opus, 0: STATIC_PAYLOAD_TYPES[0]}
    assert audio.fmtp(101) is None
    assert audio.ptime is None
    assert audio.direction is Direction.RECVONLY
    assert audio.connections == (Connection("IN", "IP6", "2001:db8::7"),)


def test_new_ipv6_session() -> None:
    sdp = SessionDescription.new("::1", session_id=7, session_version=9, session_name="call")
    assert sdp.origin == Origin("-", 7, 9, "IN", "IP6", "::1")
    assert sdp.connection == Connection("IN", "IP6", "::1")
    assert sdp.to_bytes().splitlines()[1:4] == [
        b"o=- 7 9 IN IP6 ::1",
        b"s=call",
        b"c=IN IP6 ::1",
    ]


def test_new_session_id_is_random_by_default() -> None:
    first = SessionDescription.new("192.0.2.1")
    second = SessionDescription.new("192.0.2.1")
    assert first.origin.session_id != second.origin.session_id
    assert first.origin.session_version == first.origin.session_id


def test_directions() -> None:
    audio = Media.audio(4000)
    sdp = SessionDescription.new("192.0.2.1", session_id=1, media=[audio])
    assert audio.direction is None
    assert sdp.direction is None
    assert sdp.effective_direction(audio) is Direction.SENDRECV

    held = sdp.with_direction(Direction.INACTIVE)
    assert held.direction is Direction.INACTIVE
    assert held.effective_direction(audio) is Direction.INACTIVE

    # media level overrides session level
    sending = audio.with_direction(Direction.SENDONLY)
    assert held.effective_direction(sending) is Direction.SENDONLY
    # replacing a direction leaves one, not two
    receiving = sending.with_direction(Direction.RECVONLY)
    assert receiving.attributes_named("sendonly") == ()
    assert receiving.direction is Direction.RECVONLY
    assert receiving.with_direction(None).direction is None
    assert receiving.attributes[:-1] == audio.attributes

    assert [d.sends for d in Direction] == [True, True, False, False]
    assert [d.receives for d in Direction] == [True, False, True, False]
    assert [d.reversed() for d in Direction] == [
        Direction.SENDRECV,
        Direction.RECVONLY,
        Direction.SENDONLY,
        Direction.INACTIVE,
    ]


def test_with_next_version() -> None:
    sdp = SessionDescription.parse(HOLD_OFFER)
    assert sdp.with_next_version().origin.session_version == 2808844566
    assert sdp.with_next_version().origin.session_id == sdp.origin.session_id


def test_models_are_frozen_values() -> None:
    sdp = SessionDescription.parse(LINPHONE_OFFER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sdp.session_name = "x"  # type: ignore[misc]
    assert hash(sdp) == hash(SessionDescription.parse(LINPHONE_OFFER))
    # lists are accepted and stored as tuples
    media = Media("audio", 1, "RTP/AVP", ["0"])  # type: ignore[arg-type]
    assert media.formats == ("0",)


def test_rtpmap_parse() -> None:
    assert RtpMap.parse("96 opus/48000/2") == RtpMap(96, "opus", 48000, "2")
    assert RtpMap.parse("96 opus/48000/2").value == "96 opus/48000/2"
    assert RtpMap.parse("97 H264/90000").channels == 1
    with pytest.raises(ParseError, match="rtpmap") as caught:
        RtpMap.parse("x opus/48000")
    assert caught.value.status_hint == 400


def test_static_table() -> None:
    assert STATIC_PAYLOAD_TYPES[0] == RtpMap(0, "PCMU", 8000)
    assert STATIC_PAYLOAD_TYPES[8] == RtpMap(8, "PCMA", 8000)
    assert STATIC_PAYLOAD_TYPES[9] == RtpMap(9, "G722", 8000)
    assert STATIC_PAYLOAD_TYPES[18] == RtpMap(18, "G729", 8000)
    assert STATIC_PAYLOAD_TYPES[10].channels == 2
    assert 96 not in STATIC_PAYLOAD_TYPES


# --- Property tests -----------------------------------------------------------------

TOKEN_ALPHABET = "!#$%&'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz{|}~"
INTERPRETED = frozenset({"rtpmap", "ptime", *(d.value for d in Direction)})

tokens = st.text(TOKEN_ALPHABET, min_size=1, max_size=10)
# text: anything but NUL, CR, LF (and surrogates, which UTF-8 cannot carry)
texts = st.text(
    st.characters(exclude_characters="\x00\r\n", exclude_categories=["Cs"]), max_size=20
)
non_ws = st.text(
    st.characters(min_codepoint=0x21, exclude_characters="\x7f", exclude_categories=["Cs"]),
    min_size=1,
    max_size=16,
)
hosts = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["example.com", "0.0.0.0", "::", "::1", "pbx.example.org"]),
    non_ws.filter(lambda s: "/" not in s),
)
numbers = st.integers(0, 2**64)
ntp_seconds = st.integers(0, 10**12)


@st.composite
def connections(draw: st.DrawFn) -> Connection:
    nettype = draw(st.sampled_from(["IN", "ATM"]) | tokens)
    kind = draw(st.sampled_from(["IP4", "IP6", "other"]))
    if kind == "IP4":
        ttl = draw(st.none() | st.integers(0, 255))
        count = None if ttl is None else draw(st.none() | st.integers(1, 300))
        return Connection(nettype, "IP4", draw(hosts), ttl, count)
    if kind == "IP6":
        return Connection(nettype, "IP6", draw(hosts), None, draw(st.none() | st.integers(1, 9)))
    addrtype = draw(tokens.filter(lambda t: t not in ("IP4", "IP6")))
    return Connection(nettype, addrtype, draw(non_ws))


origins = st.builds(
    Origin,
    username=non_ws,
    session_id=numbers,
    session_version=numbers,
    nettype=st.just("IN") | tokens,
    addrtype=st.sampled_from(["IP4", "IP6"]) | tokens,
    address=non_ws,
)
bandwidths = st.builds(Bandwidth, bwtype=tokens, value=numbers)
plain_attributes = st.builds(
    Attribute,
    name=tokens.filter(lambda name: name not in INTERPRETED),
    value=st.none() | texts,
)
repeats = st.builds(
    Repeat,
    interval=st.integers(1, 10**9),
    duration=ntp_seconds,
    offsets=st.lists(ntp_seconds, min_size=1, max_size=3).map(tuple),
)
timings = st.builds(
    Timing,
    start=ntp_seconds,
    stop=ntp_seconds,
    repeats=st.lists(repeats, max_size=2).map(tuple),
)
zones = st.builds(ZoneAdjustment, time=ntp_seconds, offset=st.integers(-(10**6), 10**6))
directions = st.none() | st.sampled_from(list(Direction))


@st.composite
def media_sections(draw: st.DrawFn) -> Media:
    attributes = draw(st.lists(plain_attributes, max_size=4))
    if draw(st.booleans()):
        proto = draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "RTP/AVPF", "UDP/TLS/RTP/SAVPF"]))
        payload_types = draw(st.lists(st.integers(0, 127), min_size=1, max_size=6))
        formats = [str(pt) for pt in payload_types]
        for pt in sorted(set(payload_types)):
            if draw(st.booleans()):
                rtpmap = RtpMap(
                    pt,
                    draw(tokens),
                    draw(st.integers(1, 10**6)),
                    draw(st.none() | st.sampled_from(["1", "2"]) | non_ws),
                )
                attributes.append(rtpmap.to_attribute())
            if draw(st.booleans()):
                attributes.append(Attribute("fmtp", f"{pt} {draw(texts)}"))
        if draw(st.booleans()):
            attributes.append(Attribute("ptime", str(draw(st.integers(1, 200)))))
    else:
        proto = draw(
            st.lists(tokens, min_size=1, max_size=3)
            .map("/".join)
            .filter(lambda p: "RTP" not in p.upper().split("/"))
        )
        formats = draw(st.lists(tokens, min_size=1, max_size=4))
    direction = draw(directions)
    if direction is not None:
        attributes.append(Attribute(direction.value))
    return Media(
        media_type=draw(st.sampled_from(["audio", "video", "text", "application"]) | tokens),
        port=draw(st.integers(0, 65535)),
        proto=proto,
        formats=tuple(formats),
        port_count=draw(st.integers(1, 16)),
        information=draw(st.none() | texts),
        connections=tuple(draw(st.lists(connections(), max_size=2))),
        bandwidths=tuple(draw(st.lists(bandwidths, max_size=2))),
        key=draw(st.none() | texts),
        attributes=tuple(draw(st.permutations(attributes))),
    )


@st.composite
def session_descriptions(draw: st.DrawFn) -> SessionDescription:
    attributes = draw(st.lists(plain_attributes, max_size=4))
    direction = draw(directions)
    if direction is not None:
        attributes.append(Attribute(direction.value))
    return SessionDescription(
        origin=draw(origins),
        session_name=draw(texts),
        information=draw(st.none() | texts),
        uri=draw(st.none() | texts),
        emails=tuple(draw(st.lists(texts, max_size=2))),
        phones=tuple(draw(st.lists(texts, max_size=2))),
        connection=draw(st.none() | connections()),
        bandwidths=tuple(draw(st.lists(bandwidths, max_size=2))),
        timings=tuple(draw(st.lists(timings, min_size=1, max_size=3))),
        zone_adjustments=tuple(draw(st.lists(zones, max_size=3))),
        key=draw(st.none() | texts),
        attributes=tuple(draw(st.permutations(attributes))),
        media=tuple(draw(st.lists(media_sections(), max_size=3))),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(session_descriptions())
def test_round_trip(sdp: SessionDescription) -> None:
    wire = sdp.to_bytes()
    assert wire.endswith(b"\r\n")
    assert SessionDescription.parse(wire) == sdp
    assert SessionDescription.parse(wire.decode()) == sdp
    assert SessionDescription.parse(wire.replace(b"\r\n", b"\n")) == sdp
    # the accessors are total on any model that exists
    for media in sdp.media:
        media.rtpmaps()
        assert media.ptime is None or media.ptime > 0
        sdp.effective_direction(media)
        media.connection_address(sdp)


def check_only_parse_error(data: bytes | str) -> None:
    """Parse; a refusal must be a ParseError with a 400, a success must round-trip."""
    try:
        sdp = SessionDescription.parse(data)
    except ParseError as exc:
        status = exc.status_hint
    else:
        assert SessionDescription.parse(sdp.to_bytes()) == sdp
        for media in sdp.media:
            media.rtpmaps()
            media.fmtp(0)
            sdp.effective_direction(media)
        return
    assert status == 400


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    check_only_parse_error(data)


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_fuzz_random_text(data: str) -> None:
    check_only_parse_error(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real-world SDP with a few bytes inserted, deleted, replaced or lines shuffled."""
    data = bytearray(draw(st.sampled_from(REAL_WORLD)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "swap-lines"]))
        if action == "insert":
            data[position:position] = draw(
                st.binary(min_size=1, max_size=4)
                | st.sampled_from([b"/", b" ", b"\r\n", b"=", b":", b"0", b"-", b"m=", b"a="])
            )
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif action == "replace" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        else:
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


@settings(max_examples=500)
@given(mutated())
def test_fuzz_mutated_real_world(data: bytes) -> None:
    check_only_parse_error(data)


# Lines built from SDP-looking pieces reach deeper than random bytes do.
sdp_pieces = st.sampled_from(
    [" ", "0", "1", "127", "65536", "/", ":", "-", "IN", "IP4", "IP6", "::1", "1.2.3.4",
     "RTP/AVP", "audio", "rtpmap", "ptime", "sendonly", "recvonly", "PCMU/8000", "d", "h",
     "x", "\t", "\x00", "é"]
)  # fmt: skip
sdp_lines = st.builds(
    lambda letter, pieces: f"{letter}={''.join(pieces)}",
    st.sampled_from("vosiuepcbtrzkamx"),
    st.lists(sdp_pieces, max_size=8),
)


@settings(max_examples=500)
@given(st.lists(sdp_lines, max_size=12), st.sampled_from(["\r\n", "\n"]))
def test_fuzz_sdp_shaped_lines(lines: list[str], end: str) -> None:
    head = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0"]
    check_only_parse_error(end.join([*head, *lines]))
    check_only_parse_error(end.join(lines))
