"""RFC 4475, the SIP torture test messages, against the message layer.

Every message of RFC 4475 section 3 is written out here from the RFC's
presentation (long repeated strings built with ``*``, unprintable octets as
byte escapes, the binary MIME part of 3.1.1.11 replaced by octets of our
own). For a valid message the test checks the parsed values, not only that
parsing succeeded. For a broken one it checks that the break is found where
a robust element finds it -- at ``parse_message`` when the message cannot be
framed or answered otherwise, else at ``validate()`` or at the typed view of
the broken header -- and with the status RFC 4475 asks for; where RFC 4475
allows an element to be liberal and the message layer is, the test checks
the liberal reading. Transaction- and application-layer cases check what
the message layer exposes for those layers to decide on.

RFC 4475 section 3.2 holds a single case (3.2.1) and section 3.4 a single
case (3.4.1).
"""

from __future__ import annotations

import datetime
from urllib.parse import unquote

import pytest

from trio_sip.errors import ParseError
from trio_sip.message import (
    MAGIC_COOKIE,
    URI,
    KeepAlivePong,
    Request,
    Response,
    StreamFramer,
    parse_message,
)


def _msg(*lines: bytes, body: bytes = b"") -> bytes:
    """Start line and header lines joined by CRLF, the empty line, the body."""
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _sdp(origin: str, connection: str) -> bytes:
    """The SDP body most RFC 4475 messages carry (150 octets with 192.0.2.x)."""
    return (
        "v=0\r\n"
        f"o=mhandley 29739 7272939 IN IP4 {origin}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {connection}\r\n"
        "t=0 0\r\n"
        "m=audio 49217 RTP/AVP 0 12\r\n"
        "m=video 3227 RTP/AVP 31\r\n"
        "a=rtpmap:31 LPC\r\n"
    ).encode()


def _request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def _response(data: bytes) -> Response:
    msg = parse_message(data)
    assert isinstance(msg, Response)
    return msg


def _hint(excinfo: pytest.ExceptionInfo[ParseError]) -> int:
    return excinfo.value.status_hint


# ---------------------------------------------------------------------------
# 3.1.1  Valid messages
# ---------------------------------------------------------------------------

WSINV = _msg(
    b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0",
    b"TO :",
    b" sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
    rb'from   : "J Rosenberg \\\""       <sip:jdrosen@example.com>',
    b"  ;",
    b"  tag = 98asjd8",
    b"MaX-fOrWaRdS: 0068",
    b"Call-ID: wsinv.ndaksdj@192.0.2.1",
    b"Content-Length   : 150",
    b"cseq: 0009",
    b"  INVITE",
    b"Via  : SIP  /   2.0",
    b" /UDP",
    b"    192.0.2.2;branch=390skdjuw",
    b"s :",
    b"NewFangledHeader:   newfangled value",
    b" continued newfangled value",
    b"UnknownHeaderWithUnusualValue: ;;,,;;,;",
    b"Content-Type: application/sdp",
    b"Route:",
    b" <sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
    b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;",
    b"  branch  =   z9hG4bK9ikj8  ,",
    b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=",
    b" z9hG4bK30239",
    rb'm:"Quoted string \"\"" <sip:jdrosen@example.com> ; newparam =',
    b"      newvalue ;",
    b"  secondparam ; q = 0.33",
    body=_sdp("192.0.2.3", "192.0.2.4"),
)


def test_3_1_1_1_short_tortuous_invite() -> None:
    msg = _request(WSINV)
    assert msg.method == "INVITE"
    assert (msg.uri.scheme, msg.uri.user, msg.uri.host) == (
        "sip",
        "vivekg",
        "chair-dnrc.example.com",
    )
    assert msg.uri.params.items_as_written() == (("unknownparam", None),)
    # Folded, odd-cased and spaced header names and values.
    assert len(msg.headers) == 14
    assert msg.to.uri == URI.parse("sip:vivekg@chair-dnrc.example.com")
    assert msg.to.display_name is None
    assert msg.to.tag == "1918181833n"
    assert msg.to.params["TAG"] == "1918181833n"  # parameter names ignore case
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.uri == URI.parse("sip:jdrosen@example.com")
    assert msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert msg.content_length == 150
    assert (msg.cseq.seq, msg.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.port, v.branch) for v in msg.via] == [
        ("UDP", "192.0.2.2", None, "390skdjuw"),
        ("TCP", "spindle.example.com", None, "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", None, "z9hG4bK30239"),
    ]
    assert not msg.top_via.has_magic_cookie  # an RFC 2543 branch
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.content_type == "application/sdp"
    (route,) = msg.routes
    assert route.uri.host == "services.example.com"
    assert route.uri.lr
    assert route.uri.params["unknownwith"] == "value"
    assert "unknown-no-value" in route.uri.params
    assert route.uri.params["unknown-no-value"] is None
    (contact,) = msg.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.uri == URI.parse("sip:jdrosen@example.com")
    assert contact.params.items_as_written() == (
        ("newparam", "newvalue"),
        ("secondparam", None),
        ("q", "0.33"),
    )
    assert msg.body == _sdp("192.0.2.3", "192.0.2.4")
    assert len(msg.body) == 150
    msg.validate()
    assert bytes(msg) == WSINV


INTMETH_METHOD = b"!interesting-Method0123456789_*+`.%indeed'~"
INTMETH_USER = "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
INTMETH_PASSWORD = "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
INTMETH = _msg(
    INTMETH_METHOD
    + b" sip:"
    + INTMETH_USER.encode()
    + b":"
    + INTMETH_PASSWORD.encode()
    + b"@example.com SIP/2.0",
    b"Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
    b'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:' + INTMETH_USER.encode() + b"@example.com>",
    b"From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>"
    b";fromParam''~+*_!.-%=\"" + "работающий".encode() + b"\";tag=_token~1'+`*%!-.",
    b"Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
    b"CSeq: 139122385 " + INTMETH_METHOD,
    b"Max-Forwards: 255",
    b"extensionHeader-!.%*+_`'~:" + "\ufeff大停電".encode(),
    b"Content-Length: 0",
)


def test_3_1_1_2_wide_range_of_valid_characters() -> None:
    msg = _request(INTMETH)
    method = INTMETH_METHOD.decode()
    assert msg.method == method
    assert msg.uri.user == INTMETH_USER
    assert msg.uri.password == INTMETH_PASSWORD
    assert msg.uri.host == "example.com"
    assert not msg.uri.params
    assert not msg.uri.headers
    assert msg.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.top_via.transport == "TCP"
    # Quoted-pairs may escape control characters, even NUL (RFC 3261 25.1).
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.to.uri.user == INTMETH_USER
    assert msg.to.uri.password is None
    assert msg.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.uri == URI.parse("sip:mundane@example.com")
    assert msg.from_.params["fromParam''~+*_!.-%"] == '"работающий"'
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert (msg.cseq.seq, msg.cseq.method) == (139122385, method)
    assert msg.max_forwards == 255
    assert msg.headers.get("EXTENSIONHEADER-!.%*+_`'~") == "\ufeff大停電"
    assert msg.content_length == 0
    assert msg.body == b""
    msg.validate()
    assert bytes(msg) == INTMETH


ESC01 = _msg(
    b"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0",
    b"To: sip:%75se%72@example.com",
    b"From: <sip:I%20have%20spaces@example.net>;tag=938",
    b"Max-Forwards: 87",
    b"i: esc01.239409asdfakjkn23onasd0-3234",
    b"CSeq: 234234 INVITE",
    b"Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw",
    b"C: application/sdp",
    b"Contact:",
    b"  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>",
    b"Content-Length: 150",
    body=_sdp("192.0.2.1", "192.0.2.1"),
)


def test_3_1_1_3_valid_use_of_percent_escaping() -> None:
    msg = _request(ESC01)
    # The Request-URI has sips:user@example.com escaped into its user part.
    assert msg.uri.user == "sips%3Auser%40example.com"
    assert unquote(msg.uri.user) == "sips:user@example.com"
    assert msg.uri.host == "example.net"
    assert msg.uri == URI.parse("sip:sips%3auser%40example%2Ecom@example.net")
    # Escaped and unescaped forms of the same URI are equal (RFC 3261 19.1.4).
    assert msg.to.uri == URI.parse("sip:user@example.com")
    assert msg.to.uri.user == "%75se%72"  # kept as written
    assert unquote(msg.from_.uri.user or "") == "I have spaces"
    assert msg.from_.tag == "938"
    assert msg.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    assert msg.content_type == "application/sdp"
    (contact,) = msg.contacts
    uri = contact.uri
    assert unquote(uri.user or "") == "caller"
    # Escaped parameter names and values are found by their meaning...
    assert uri.lr
    assert uri.params["name"] == "value%41"  # %25 decodes to a literal '%', once
    # ...and written as they came.
    assert str(uri) == "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
    assert uri == URI.parse("sip:caller@host5.example.net;lr;name=value%2541")
    assert uri != URI.parse("sip:caller@host5.example.net;lr;name=valueA")
    assert msg.body == _sdp("192.0.2.1", "192.0.2.1")
    msg.validate()


ESCNULL = _msg(
    b"REGISTER sip:example.com SIP/2.0",
    b"To: sip:null-%00-null@example.com",
    b"From: sip:null-%00-null@example.com;tag=839923423",
    b"Max-Forwards: 70",
    b"Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
    b"CSeq: 14398234 REGISTER",
    b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw",
    b"Contact: <sip:%00@host5.example.com>",
    b"Contact: <sip:%00%00@host5.example.com>",
    b"L:0",
)


def test_3_1_1_4_escaped_nulls_in_uris() -> None:
    msg = _request(ESCNULL)
    assert msg.to.uri.user == "null-%00-null"
    # Unescaping must not shorten the user name at the NUL.
    assert unquote(msg.to.uri.user) == "null-\x00-null"
    assert msg.from_.uri == msg.to.uri
    assert msg.from_.tag == "839923423"
    one, two = msg.contacts
    assert unquote(one.uri.user or "") == "\x00"
    assert unquote(two.uri.user or "") == "\x00\x00"
    assert one.uri != two.uri
    assert one.uri == URI.parse("sip:%00@HOST5.example.com")
    assert msg.content_length == 0
    msg.validate()


ESC02 = _msg(
    b"RE%47IST%45R sip:registrar.example.com SIP/2.0",
    b'To: "%Z%45" <sip:resource@example.com>',
    b'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23',
    b"Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
    b"Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3",
    b"CSeq: 3923239 RE%47IST%45R",
    b"Max-Forwards: 70",
    b"Contact: <sip:alias1@host1.example.com>",
    b"Contact: <sip:alias2@host2.example.com>",
    b"Contact: <sip:alias3@host3.example.com>",
    b"l: 0",
)


def test_3_1_1_5_percent_that_is_not_an_escape() -> None:
    msg = _request(ESC02)
    # '%' is a token character: this method is not REGISTER.
    assert msg.method == "RE%47IST%45R"
    assert msg.method != "REGISTER"
    assert msg.cseq.method == "RE%47IST%45R"
    assert msg.uri == URI.parse("sip:registrar.example.com")
    # Inside a quoted display name '%' is just a character.
    assert msg.to.display_name == "%Z%45"
    assert msg.from_.display_name == "%Z%45"
    assert [c.uri.host for c in msg.contacts] == [
        "host1.example.com",
        "host2.example.com",
        "host3.example.com",
    ]
    assert msg.top_via.transport == "TCP"
    msg.validate()


LWSDISP = _msg(
    b"OPTIONS sip:user@example.com SIP/2.0",
    b"To: sip:user@example.com",
    b"From: caller<sip:caller@example.com>;tag=323",
    b"Max-Forwards: 70",
    b"Call-ID: lwsdisp.1234abcd@funky.example.com",
    b"CSeq: 60 OPTIONS",
    b"Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw",
    b"l: 0",
)


def test_3_1_1_6_no_lws_between_display_name_and_laquot() -> None:
    msg = _request(LWSDISP)
    assert msg.from_.display_name == "caller"
    assert msg.from_.uri == URI.parse("sip:caller@example.com")
    assert msg.from_.tag == "323"
    assert msg.to.display_name is None
    msg.validate()


_LONG_TO_NAME = "I have a user name of " + "extreme" * 10 + " proportion"
_LONG_USER = "amazinglylongcallername" * 5
_LONG_TAG = "12" + "982" * 50 + "424"
_LONG_BRANCH = "very" + "long" * 50 + "branchvalue"
_LONG_CALL_ID = "longreq.one" + "really" * 20 + "longcallid"
_LONG_HEADER = "Unknown-" + "Long" * 20 + "-Name"
_VIA_SPELLINGS = [
    "Via",
    "v",
    "V",
    "Via",
    "ViA",
    "VIa",
    "VIA",
    "via",
    "viA",
    "vIa",
    "vIA",
    "V ",
    "v ",
    "V  ",
    "v  ",
    "Via ",
    "Via  ",
] + ["Via"] * 16
LONGREQ = _msg(
    b"INVITE sip:user@example.com SIP/2.0",
    (
        f'To: "{_LONG_TO_NAME}"<sip:user@example.com:6000;'
        f"unknownparam1=very{'long' * 20}value;"
        f"longparam{'name' * 25}=shortvalue;"
        f"very{'long' * 25}ParameterNameWithNoValue>"
    ).encode(),
    (
        f"F: sip:{_LONG_USER}@example.net;tag={_LONG_TAG};"
        f"unknownheaderparam{'name' * 20}=unknowheaderparam{'value' * 15};"
        f"unknownValueless{'paramname' * 10}"
    ).encode(),
    f"Call-ID: {_LONG_CALL_ID}".encode(),
    b"CSeq: 3882340 INVITE",
    (
        f"{_LONG_HEADER}:unknown-{'long' * 20}-value;"
        f"unknown-{'long' * 20}-parameter-name =unknown-{'long' * 20}-parameter-value"
    ).encode(),
    *[
        f"{name}: SIP/2.0/TCP sip{33 - i}.example.com".encode()
        for i, name in enumerate(_VIA_SPELLINGS)
    ],
    f"Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch={_LONG_BRANCH}".encode(),
    b"Max-Forwards: 70",
    f"Contact: <sip:{_LONG_USER}@host5.example.net>".encode(),
    b"Content-Type: application/sdp",
    b"l: 150",
    body=_sdp("192.0.2.1", "192.0.2.1"),
)


def test_3_1_1_7_long_values_in_header_fields() -> None:
    msg = _request(LONGREQ)
    assert msg.to.display_name == _LONG_TO_NAME
    assert (msg.to.uri.user, msg.to.uri.host, msg.to.uri.port) == ("user", "example.com", 6000)
    assert msg.to.uri.params["unknownparam1"] == "very" + "long" * 20 + "value"
    assert msg.to.uri.params["longparam" + "name" * 25] == "shortvalue"
    assert msg.to.uri.params["very" + "long" * 25 + "ParameterNameWithNoValue"] is None
    assert msg.to.tag is None
    assert msg.from_.uri.user == _LONG_USER
    assert not msg.from_.uri.params  # addr-spec form: the params are the header's
    assert msg.from_.tag == _LONG_TAG
    assert msg.from_.params["unknownheaderparam" + "name" * 20] == (
        "unknowheaderparam" + "value" * 15
    )
    assert msg.from_.params["unknownValueless" + "paramname" * 10] is None
    assert msg.call_id == _LONG_CALL_ID
    assert msg.headers.get(_LONG_HEADER.upper()) == (
        f"unknown-{'long' * 20}-value;"
        f"unknown-{'long' * 20}-parameter-name =unknown-{'long' * 20}-parameter-value"
    )
    assert len(msg.via) == 34
    assert [v.host for v in msg.via[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert all(v.transport == "TCP" for v in msg.via)
    last = msg.via[-1]
    assert (last.host, last.received, last.branch) == (
        "host.example.com",
        "192.0.2.5",
        _LONG_BRANCH,
    )
    assert msg.contacts[0].uri.user == _LONG_USER
    assert msg.content_length == 150
    assert msg.body == _sdp("192.0.2.1", "192.0.2.1")
    msg.validate()
    assert bytes(msg) == LONGREQ


DBLREQ_REGISTER = _msg(
    b"REGISTER sip:example.com SIP/2.0",
    b"To: sip:j.user@example.com",
    b"From: sip:j.user@example.com;tag=43251j3j324",
    b"Max-Forwards: 8",
    b"I: dblreq.0ha0isndaksdj99sdfafnl3lk233412",
    b"Contact: sip:j.user@host.example.com",
    b"CSeq: 8 REGISTER",
    b"Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492",
    b"Content-Length: 0",
)
DBLREQ_INVITE = _msg(
    b"INVITE sip:joe@example.com SIP/2.0",
    b"t: sip:joe@example.com",
    b"From: sip:caller@example.net;tag=141334",
    b"Max-Forwards: 8",
    b"Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15",
    b"CSeq: 8 INVITE",
    b"Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234",
    b"Content-Type: application/sdp",
    b"Content-Length: 150",
    body=_sdp("192.0.2.5", "192.0.2.5"),
)
DBLREQ = DBLREQ_REGISTER + DBLREQ_INVITE


def test_3_1_1_8_extra_trailing_octets_in_a_udp_datagram() -> None:
    msg = _request(DBLREQ)
    # RFC 3261 18.3: octets after the body of a datagram are noise.
    assert msg.method == "REGISTER"
    assert msg.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert msg.body == b""
    assert msg.contacts[0].uri == URI.parse("sip:j.user@host.example.com")
    assert bytes(msg) == DBLREQ_REGISTER
    msg.validate()
    # On a stream the same octets are two messages.
    events = StreamFramer().feed(DBLREQ)
    assert [e.method for e in events if isinstance(e, Request)] == ["REGISTER", "INVITE"]
    assert events[-1].body == _sdp("192.0.2.5", "192.0.2.5")  # type: ignore[union-attr]


SEMIURI = _msg(
    b"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0",
    b"To: sip:j_user@example.com",
    b"From: sip:caller@example.org;tag=33242",
    b"Max-Forwards: 3",
    b"Call-ID: semiuri.0ha0isndaksdj",
    b"CSeq: 8 OPTIONS",
    b"Accept: application/sdp, application/pkcs7-mime,",
    b"        multipart/mixed, multipart/signed,",
    b"        message/sip, message/sipfrag",
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw",
    b"l: 0",
)


def test_3_1_1_9_semicolon_separated_parameters_in_uri_user_part() -> None:
    msg = _request(SEMIURI)
    assert msg.uri.user == "user;par=u%40example.net"
    assert unquote(msg.uri.user) == "user;par=u@example.net"
    assert msg.uri.host == "example.com"
    assert not msg.uri.params  # the ';' belongs to the user part
    assert msg.headers.values("accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]
    assert msg.max_forwards == 3
    msg.validate()


TRANSPORTS = _msg(
    b"OPTIONS sip:user@example.com SIP/2.0",
    b"To: sip:user@example.com",
    b"From: <sip:caller@example.com>;tag=323",
    b"Max-Forwards: 70",
    b"Call-ID:  transports.kijh4akdnaqjkwendsasfdj",
    b"Accept: application/sdp",
    b"CSeq: 60 OPTIONS",
    b"Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw",
    b"Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf",
    b"Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj",
    b"Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en",
    b"Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee",
    b"l: 0",
)


def test_3_1_1_10_varied_and_unknown_transport_types() -> None:
    msg = _request(TRANSPORTS)
    assert [(v.transport, v.host) for v in msg.via] == [
        ("UDP", "t1.example.com"),
        ("SCTP", "t2.example.com"),
        ("TLS", "t3.example.com"),
        ("UNKNOWN", "t4.example.com"),
        ("TCP", "t5.example.com"),
    ]
    assert [v.branch for v in msg.via] == [
        "z9hG4bKkdjuw",
        "z9hG4bKklasjdhf",
        "z9hG4bK2980unddj",
        "z9hG4bKasd0f3en",
        "z9hG4bK0a9idfnee",
    ]
    assert msg.via[2].sent_by == ("t3.example.com", 5061)
    assert msg.call_id == "transports.kijh4akdnaqjkwendsasfdj"
    msg.validate()


# The signature part of RFC 4475's message is a PKCS#7 blob; any binary
# octets test the same thing: a body with CR, LF, NUL and high octets, even an
# empty line, is framed by Content-Length alone.
_BINARY = bytes(range(256)) + b"\r\n\r\n\x00\xff" + bytes(range(255, -1, -1))
MPART01_BODY = (
    b"--7a9cbec02ceef655\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n"
    b"Hello\r\n"
    b"--7a9cbec02ceef655\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n" + _BINARY + b"\r\n"
    b"--7a9cbec02ceef655--\r\n"
)
_IDENTITY = (
    "r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+8"
    "13gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJm"
    "QFteeivUhkMWYUA="
)
MPART01 = _msg(
    b"MESSAGE sip:kumiko@example.org SIP/2.0",
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport",
    b"Max-Forwards: 70",
    b"Route: <sip:127.0.0.1:5080>",
    f"Identity: {_IDENTITY}".encode(),
    b"Contact: <sip:fluffy@127.0.0.1:5070>",
    b"To: <sip:kumiko@example.org>",
    b"From: <sip:fluffy@example.com>;tag=2fb0dcc9",
    b"Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
    b"CSeq: 1 MESSAGE",
    b"Content-Transfer-Encoding: binary",
    b"Content-Type: multipart/mixed;boundary=7a9cbec02ceef655",
    b"Date: Sat, 15 Oct 2005 04:44:56 GMT",
    b"User-Agent: SIPimp.org/0.2.5 (curses)",
    f"Content-Length: {len(MPART01_BODY)}".encode(),
    body=MPART01_BODY,
)


def test_3_1_1_11_multipart_mime_message() -> None:
    msg = _request(MPART01)
    assert msg.method == "MESSAGE"
    assert msg.body == MPART01_BODY
    assert msg.content_length == len(MPART01_BODY)
    assert msg.content_type == "multipart/mixed"
    assert msg.headers.get("content-type") == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert msg.headers.get("identity") == _IDENTITY
    assert msg.top_via.rport is True
    assert (msg.top_via.host, msg.top_via.port) == ("127.0.0.1", 5070)
    assert msg.top_via.branch == "z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-"
    assert msg.routes[0].uri.hostport == "127.0.0.1:5080"
    assert msg.date == datetime.datetime(2005, 10, 15, 4, 44, 56, tzinfo=datetime.UTC)
    msg.validate()
    assert bytes(msg) == MPART01
    # Over a stream, cut anywhere, the binary body survives whole.
    framer = StreamFramer()
    got = framer.feed(MPART01[:700]) + framer.feed(MPART01[700:])
    assert [m.body for m in got] == [MPART01_BODY]  # type: ignore[union-attr]


_UNREASON_PHRASE = "= 2**3 * 5**2 но сто девяносто девять - простое"
UNREASON = _msg(
    b"SIP/2.0 200 " + _UNREASON_PHRASE.encode(),
    b"Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923",
    b"Call-ID: unreason.1234ksdfak3j2erwedfsASdf",
    b"CSeq: 35 INVITE",
    b"From: sip:user@example.com;tag=11141343",
    b"To: sip:user@example.edu;tag=2229",
    b"Content-Length: 154",
    b"Content-Type: application/sdp",
    b"Contact: <sip:user@host198.example.com>",
    body=_sdp("192.0.2.198", "192.0.2.198"),
)


def test_3_1_1_12_unusual_reason_phrase() -> None:
    msg = _response(UNREASON)
    assert msg.status == 200
    assert msg.is_success
    assert msg.reason == _UNREASON_PHRASE
    assert msg.to.tag == "2229"
    assert msg.from_.tag == "11141343"
    assert (msg.cseq.seq, msg.cseq.method) == (35, "INVITE")
    assert len(msg.body) == 154
    msg.validate()
    assert bytes(msg) == UNREASON


NOREASON = _msg(
    b"SIP/2.0 100 ",
    b"Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe",
    b"Call-ID: noreason.asndj203insdf99223ndf",
    b"CSeq: 35 INVITE",
    b"From: <sip:user@example.com>;tag=39ansfi3",
    b"To: <sip:user@example.edu>;tag=902jndnke3",
    b"Content-Length: 0",
    b"Contact: <sip:user@host105.example.com>",
)


def test_3_1_1_13_empty_reason_phrase() -> None:
    msg = _response(NOREASON)
    assert msg.status == 100
    assert msg.is_provisional
    assert msg.reason == ""
    assert msg.start_line == "SIP/2.0 100 "  # the SP before the empty phrase stays
    msg.validate()
    assert bytes(msg) == NOREASON


# ---------------------------------------------------------------------------
# 3.1.2  Invalid messages
# ---------------------------------------------------------------------------

BADINV01 = _msg(
    b"INVITE sip:user@example.com SIP/2.0",
    b"To: sip:j.user@example.com",
    b"From: sip:caller@example.net;tag=134161461246",
    b"Max-Forwards: 7",
    b"Call-ID: badinv01.0ha0isndaksdjasdf3234nas",
    b"CSeq: 8 INVITE",
    b"Via: SIP/2.0/UDP 192.0.2.15;;,;,,",
    b'Contact: "Joe" <sip:joe@example.org>;;;;',
    b"Content-Length: 152",
    b"Content-Type: application/sdp",
    body=_sdp("192.0.2.15", "192.0.2.15"),
)


def test_3_1_2_1_extraneous_header_field_separators() -> None:
    msg = _request(BADINV01)  # framing is fine: the broken values are found on use
    assert msg.body == _sdp("192.0.2.15", "192.0.2.15")
    with pytest.raises(ParseError, match="parameter") as err:
        msg.top_via  # noqa: B018
    assert _hint(err) == 400
    with pytest.raises(ParseError):
        msg.via  # noqa: B018
    with pytest.raises(ParseError):
        msg.contacts  # noqa: B018
    with pytest.raises(ParseError) as err:
        msg.validate()
    assert _hint(err) == 400


CLERR = _msg(
    b"INVITE sip:user@example.com SIP/2.0",
    b"Max-Forwards: 80",
    b"To: sip:j.user@example.com",
    b"From: sip:caller@example.net;tag=93942939o2",
    b"Contact: <sip:caller@hungry.example.net>",
    b"Call-ID: clerr.0ha0isndaksdjweiafasdk3",
    b"CSeq: 8 INVITE",
    b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523",
    b"Content-Type: application/sdp",
    b"Content-Length: 9999",
    body=_sdp("192.0.2.155", "192.0.2.155"),
)


def test_3_1_2_2_content_length_larger_than_message() -> None:
    with pytest.raises(ParseError, match="Content-Length") as err:
        parse_message(CLERR)
    assert _hint(err) == 400
    # On a stream the rest may still come: the framer waits for it.
    framer = StreamFramer()
    assert framer.feed(CLERR) == []
    assert framer.buffered == len(CLERR)


NCL = _msg(
    b"INVITE sip:user@example.com SIP/2.0",
    b"Max-Forwards: 254",
    b"To: sip:j.user@example.com",
    b"From: sip:caller@example.net;tag=32394234",
    b"Call-ID: ncl.0ha0isndaksdj2193423r542w35",
    b"CSeq: 0 INVITE",
    b"Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw",
    b"Contact: <sip:caller@example53.example.net>",
    b"Content-Type: application/sdp",
    b"Content-Length: -999",
    body=_sdp("192.0.2.53", "192.0.2.53"),
)


def test_3_1_2_3_negative_content_length() -> None:
    with pytest.raises(ParseError, match="Content-Length") as err:
        parse_message(NCL)
    assert _hint(err) == 400
    with pytest.raises(ParseError):
        StreamFramer().feed(NCL)


SCALAR02 = _msg(
    b"REGISTER sip:example.com SIP/2.0",
    b"Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3",
    b"To: <sip:user@example.com>",
    b"From: <sip:user@example.com>;tag=239232jh3",
    b"CSeq: 36893488147419103232 REGISTER",
    b"Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32",
    b"Max-Forwards: 300",
    b"Expires: 1" + b"0" * 100,
    b"Contact: <sip:user@host129.example.com>",
    b"  ;expires=280297596632815",
    b"Content-Length: 0",
)


def test_3_1_2_4_request_scalar_fields_with_overlarge_values() -> None:
    msg = _request(SCALAR02)
    with pytest.raises(ParseError, match="CSeq") as err:
        msg.cseq  # noqa: B018
    assert _hint(err) == 400
    with pytest.raises(ParseError, match="Max-Forwards"):
        msg.max_forwards  # noqa: B018
    with pytest.raises(ParseError, match="Expires"):
        msg.expires  # noqa: B018
    # The contact's expires parameter is the registrar's to judge; it is exposed.
    assert msg.contacts[0].params["expires"] == "280297596632815"
    with pytest.raises(ParseError) as err:
        msg.validate()
    assert _hint(err) == 400


SCALARLG = _msg(
    b"SIP/2.0 503 Service Unavailable",
    b"Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129",
    b"To: <sip:user@example.com>",
    b"From: <sip:other@example.net>;tag=2easdjfejw",
    b"CSeq: 9292394834772304023312 OPTIONS",
    b"Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r",
    b"Retry-After: 949302838503028349304023988",
    b'Warning: 1812 overture "In Progress"',
    b"Content-Length: 0",
)


def test_3_1_2_5_response_scalar_fields_with_overlarge_values() -> None:
    msg = _response(SCALARLG)
    assert msg.status == 503
    # A UAC drops this response: it cannot be matched to a transaction.
    with pytest.raises(ParseError, match="CSeq"):
        msg.cseq  # noqa: B018
    with pytest.raises(ParseError) as err:
        msg.validate()
    assert _hint(err) == 400
    assert msg.headers.get("retry-after") == "949302838503028349304023988"


QUOTBAL = _msg(
    b"INVITE sip:user@example.com SIP/2.0",
    b'To: "Mr. J. User <sip:j.user@example.com>',
    b"From: sip:caller@example.net;tag=93334",
    b"Max-Forwards: 10",
    b"Call-ID: quotbal.aksdj",
    b"Contact: <sip:caller@host59.example.net>",
    b"CSeq: 8 INVITE",
    b"Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234",
    b"Content-Type: application/sdp",
    b"Content-Length: 152",
    body=_sdp("192.0.2.15", "192.0.2.15"),
)


def test_3_1_2_6_unterminated_quoted_string_in_display_name() -> None:
    msg = _request(QUOTBAL)
    with pytest.raises(ParseError) as err:
        msg.to  # noqa: B018
    assert _hint(err) == 400
    assert msg.from_.tag == "93334"  # the rest of the message is readable
    with pytest.raises(ParseError) as err:
        msg.validate()
    assert _hint(err) == 400


LTGTRURI = _msg(
    b"INVITE <sip:user@example.com> SIP/2.0",
    b"To: sip:user@example.com",
    b"From: sip:caller@example.net;tag=39291",
    b"Max-Forwards: 23",
    b"Call-ID: ltgtruri.1@192.0.2.5",
    b"CSeq: 1 INVITE",
    b"Via: SIP/2.0/UDP 192.0.2.5",
    b"Contact: <sip:caller@host5.example.net>",
    b"Content-Type: application/sdp",
    b"Content-Length: 150",
    body=_sdp("192.0.2.5", "192.0.2.5"),
)
LWSRURI = _msg(
    b"INVITE sip:user@example.com; lr SIP/2.0",
    b"To: sip:user@example.com;tag=3xfe-9921883-z9f",
    b"From: sip:caller@example.net;tag=231413434",
    b"Max-Forwards: 5",
    b"Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423",
    b"CSeq: 2130706432 INVITE",
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395",
    b"Contact: <sip:caller@host1.example.net>",
    b"Content-Type: application/sdp",
    b"Content-Length: 150",
    body=_sdp("192.0.2.1", "192.0.2.1"),
)
LWSSTART = _msg(
    b"INVITE  sip:user@example.com  SIP/2.0",
    b"Max-Forwards: 8",
    b"To: sip:user@example.com",
    b"From: sip:caller@example.net;tag=8814",
    b"Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com",
    b"CSeq: 1893884 INVITE",
    b"Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923",
    b"Contact: <sip:caller@host1.example.net>",
    b"Content-Type: application/sdp",
    b"Content-Length: 150",
    body=_sdp("192.0.2.1", "192.0.2.1"),
)
TRWS = _msg(
    b"OPTIONS sip:remote-target@example.com SIP/2.0  ",
    b"Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093",
    b"To: <sip:remote-target@example.com>",
    b"From: <sip:local-resource@example.com>;tag=329429089",
    b"Call-ID: trws.oicu34958239neffasdhr2345r",
    b"Accept: application/sdp",
    b"CSeq: 238923 OPTIONS",
    b"Max-Forwards: 70",
    b"Content-Length: 0",
)


@pytest.mark.parametrize(
    ("data", "clean_line"),
    [
        # 3.1.2.7: the Request-URI is a name-addr, not a URI.
        (LTGTRURI, b"INVITE sip:user@example.com SIP/2.0"),
        # 3.1.2.8: LWS inside the Request-URI.
        (LWSRURI, b"INVITE sip:user@example.com;lr SIP/2.0"),
        # 3.1.2.9: more than one SP between the elements.
        (LWSSTART, b"INVITE sip:user@example.com SIP/2.0"),
        # 3.1.2.10: SP between SIP-Version and CRLF.
        (TRWS, b"OPTIONS sip:remote-target@example.com SIP/2.0"),
    ],
    ids=["3.1.2.7-ltgtruri", "3.1.2.8-lwsruri", "3.1.2.9-lwsstart", "3.1.2.10-trws"],
)
def test_3_1_2_7_to_10_malformed_request_lines(data: bytes, clean_line: bytes) -> None:
    # RFC 4475 allows being liberal about 3.1.2.9 and 3.1.2.10; we are not:
    # a request line is exactly Method SP Request-URI SP SIP-Version.
    with pytest.raises(ParseError, match=r"request line|Request-URI") as err:
        parse_message(data)
    # 400 Bad Request (not 416: '<sip' is no URI scheme at all).
    assert _hint(err) == 400
    # The control: with its request line mended, the message is fine.
    mended = _request(clean_line + data[data.index(b"\r\n") :])
    mended.validate()
    assert mended.uri.host == clean_line.split(b"@")[1].split(b";")[0].split(b" ")[0].decode()


ESCRURI = _msg(
    b"INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
    b"To: sip:user@example.com",
    b"From: sip:caller@example.net;tag=341518",
    b"Max-Forwards: 7",
    b"Contact: <sip:caller@host39923.example.net>",
    b"Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5",
    b"CSeq: 149209342 INVITE",
    b"Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw",
    b"Content-Type: application/sdp",
    b"Content-Length: 150",
    body=_sdp("192.0.2.1", "192.0.2.1"),
)


def test_3_1_2_11_escaped_headers_in_request_uri() -> None:
    msg = _request(ESCRURI)
    # Exposed, so that a liberal proxy can strip them...
    assert msg.uri.headers == (("Route", "%3Csip:example.com%3E"),)
    assert msg.uri.replace(headers=()) == URI.parse("sip:user@example.com")
    # ...but RFC 3261 19.1.1 allows no headers in a Request-URI: 400.
    with pytest.raises(ParseError, match="Request-URI") as err:
        msg.validate()
    assert _hint(err) == 400


BADDATE = _msg(
    b"INVITE sip:user@example.com SIP/2.0",
    b"To: sip:user@example.com",
    b"From: sip:caller@example.net;tag=2234923",
    b"Max-Forwards: 70",
    b"Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234",
    b"CSeq: 1392934 INVITE",
    b"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw",
    b"Date: Fri, 01 Jan 2010 16:00:00 EST",
    b"Contact: <sip:caller@host5.example.net>",
    b"Content-Type: application/sdp",
    b"Content-Length: 150",
    body=_sdp("192.0.2.5", "192.0.2.5"),
)


def test_3_1_2_12_invalid_time_zone_in_date_header() -> None:
    msg = _request(BADDATE)
    # Only an element that uses the Date rejects the request; the rest may
    # process it and pass the header along untouched (RFC 4475).
    msg.validate()
    assert msg.headers.get("date") == "Fri, 01 Jan 2010 16:00:00 EST"
    with pytest.raises(ParseError, match="Date") as err:
        msg.date  # noqa: B018
    assert _hint(err) == 400
    assert bytes(msg) == BADDATE


REGBADCT = _msg(
    b"REGISTER sip:example.com SIP/2.0",
    b"To: sip:user@example.com",
    b"From: sip:user@example.com;tag=998332",
    b"Max-Forwards: 70",
    b"Call-ID: regbadct.k345asrl3fdbv@10.0.0.1",
    b"CSeq: 1 REGISTER",
    b"Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw",
    b"Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E",
    b"l: 0",
)


def test_3_1_2_13_failure_to_enclose_name_addr_uri_in_angle_brackets() -> None:
    msg = _request(REGBADCT)
    # RFC 3261 20.10: a URI with '?' (or ',' or ';') must be in <...>.
    with pytest.raises(ParseError, match="<") as err:
        msg.contacts  # noqa: B018
    assert _hint(err) == 400
    msg.validate()  # Contact is not among the headers every UAS needs
    # The same Contact in angle brackets is fine (compare 3.3.14).
    fixed = _request(
        REGBADCT.replace(b"Contact: sip:", b"Contact: <sip:").replace(b"%3E\r", b"%3E>\r")
    )
    assert fixed.contacts[0].uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)


BADASPEC = _msg(
    b"OPTIONS sip:user@example.org SIP/2.0",
    b"Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234",
    b"Max-Forwards: 70",
    b'From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423',
    b'To: "Watson, Thomas" < sip:t.watson@example.org >',
    b"Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3",
    b"Accept: application/sdp",
    b"CSeq: 3923239 OPTIONS",
    b"l: 0",
)


def test_3_1_2_14_spaces_within_addr_spec() -> None:
    msg = _request(BADASPEC)
    # Liberal, as RFC 4475 allows: the spaces inside <...> are ignored.
    assert msg.to.display_name == "Watson, Thomas"
    assert msg.to.uri == URI.parse("sip:t.watson@example.org")
    assert msg.from_.display_name == "Bell, Alexander"
    assert msg.from_.tag == "433423"
    msg.validate()
    # A proxy that rebuilds the To header does not propagate the spaces.
    assert str(msg.to) == '"Watson, Thomas" <sip:t.watson@example.org>'


BADDN = _msg(
    b"OPTIONS sip:t.watson@example.org SIP/2.0",
    b"Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw",
    b"Max-Forwards:      70",
    b"From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
    b"To:      Watson, Thomas <sip:t.watson@example.org>",
    b"Call-ID: baddn.31415@c.example.com",
    b"Accept: application/sdp",
    b"CSeq:    3923239 OPTIONS",
    b"l: 0",
)


def test_3_1_2_15_non_token_characters_in_display_name() -> None:
    msg = _request(BADDN)
    assert msg.top_via.host == "c.example.com"
    assert msg.max_forwards == 70
    assert msg.cseq.seq == 3923239
    with pytest.raises(ParseError, match="display name") as err:
        msg.from_  # noqa: B018
    assert _hint(err) == 400
    with pytest.raises(ParseError, match="display name"):
        msg.to  # noqa: B018
    with pytest.raises(ParseError) as err:
        msg.validate()
    assert _hint(err) == 400


BADVERS = _msg(
    b"OPTIONS sip:t.watson@example.org SIP/7.0",
    b"Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw",
    b"Max-Forwards:     70",
    b"From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe",
    b"To:      T. Watson <sip:t.watson@example.org>",
    b"Call-ID: badvers.31417@c.example.com",
    b"CSeq:    1 OPTIONS",
    b"l: 0",
)


def test_3_1_2_16_unknown_protocol_version() -> None:
    with pytest.raises(ParseError, match="version") as err:
        parse_message(BADVERS)
    assert _hint(err) == 505


MISMATCH01 = _msg(
    b"OPTIONS sip:user@example.com SIP/2.0",
    b"To: sip:j.user@example.com",
    b"From: sip:caller@example.net;tag=34525",
    b"Max-Forwards: 6",
    b"Call-ID: mismatch01.dj0234sxdfl3",
    b"CSeq: 8 INVITE",
    b"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw",
    b"l: 0",
)


def test_3_1_2_17_start_line_and_cseq_method_mismatch() -> None:
    msg = _request(MISMATCH01)
    assert (msg.method, msg.cseq.method) == ("OPTIONS", "INVITE")
    with pytest.raises(ParseError, match="CSeq") as err:
        msg.validate()
    assert _hint(err) == 400


MISMATCH02_BODY = b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\n"
MISMATCH02 = _msg(
    b"NEWMETHOD sip:user@example.com SIP/2.0",
    b"To: sip:j.user@example.com",
    b"From: sip:caller@example.net;tag=34525",
    b"Max-Forwards: 6",
    b"Call-ID: mismatch02.dj0234sxdfl3",
    b"CSeq: 8 INVITE",
    b"Contact: <sip:caller@host.example.net>",
    b"Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw",
    b"Content-Type: application/sdp",
    f"l: {len(MISMATCH02_BODY)}".encode(),
    body=MISMATCH02_BODY,
)


def test_3_1_2_18_unknown_method_with_cseq_method_mismatch() -> None:
    msg = _request(MISMATCH02)
    assert msg.method == "NEWMETHOD"
    assert msg.body == MISMATCH02_BODY
    # RFC 4475 prefers 501 from an element that knows it does not implement
    # NEWMETHOD (the UA core, which knows its methods); 400 is also correct,
    # and that is all the message layer can say.
    with pytest.raises(ParseError, match="CSeq") as err:
        msg.validate()
    assert _hint(err) == 400


BIGCODE = _msg(
    b"SIP/2.0 4294967301 better not break the receiver",
    b"Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe",
    b"Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i",
    b"CSeq: 353494 INVITE",
    b"From: <sip:user@example.com>;tag=39ansfi3",
    b"To: <sip:user@example.edu>;tag=902jndnke3",
    b"Content-Length: 0",
    b"Contact: <sip:user@host105.example.com>",
)


def test_3_1_2_19_overlarge_response_code() -> None:
    # A response is never answered: the hint is moot, the message is dropped.
    with pytest.raises(ParseError, match="status line"):
        parse_message(BIGCODE)
    with pytest.raises(ParseError):
        StreamFramer().feed(BIGCODE)


# ---------------------------------------------------------------------------
# 3.2  Transaction layer semantics
# ---------------------------------------------------------------------------

BADBRANCH = _msg(
    b"OPTIONS sip:user@example.com SIP/2.0",
    b"To: sip:user@example.com",
    b"From: sip:caller@example.org;tag=33242",
    b"Max-Forwards: 3",
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK",
    b"Accept: application/sdp",
    b"Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n",
    b"CSeq: 8 OPTIONS",
    b"l: 0",
)


def test_3_2_1_missing_transaction_identifier() -> None:
    msg = _request(BADBRANCH)
    msg.validate()
    assert msg.top_via.branch == MAGIC_COOKIE
    # The cookie promises an RFC 3261 branch but carries no identifier: the
    # transaction layer falls back to RFC 2543 matching (RFC 4475 allows
    # that or a 400), rather than lumping every such request together.
    assert not msg.top_via.has_magic_cookie


# ---------------------------------------------------------------------------
# 3.3  Application layer semantics
# ---------------------------------------------------------------------------

INSUF = _msg(
    b"INVITE sip:user@example.com SIP/2.0",
    b"CSeq: 193942 INVITE",
    b"Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf",
    b"Content-Type: application/sdp",
    b"l: 152",
    body=_sdp("192.0.2.95", "192.0.2.95"),
)


def test_3_3_1_missing_required_header_fields() -> None:
    msg = _request(INSUF)
    assert msg.cseq.seq == 193942
    assert msg.top_via.branch == "z9hG4bKkdj.insuf"
    assert msg.max_forwards is None
    for view in ("from_", "to", "call_id"):
        with pytest.raises(ParseError, match="missing") as err:
            getattr(msg, view)
        assert _hint(err) == 400
    with pytest.raises(ParseError, match="missing") as err:
        msg.validate()
    assert _hint(err) == 400


UNKSCM = _msg(
    b"OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0",
    b"To: sip:user@example.com",
    b"From: sip:caller@example.net;tag=384",
    b"Max-Forwards: 3",
    b"Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34",
    b"CSeq: 3923423 OPTIONS",
    b"Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234",
    b"Content-Length: 0",
)
NOVELSC = _msg(
    b"OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0",
    b"To: sip:user@example.com",
    b"From: sip:caller@example.net;tag=384",
    b"Max-Forwards: 3",
    b"Call-ID: novelsc.asdfasser0q239nwsdfasdkl34",
    b"CSeq: 3923423 OPTIONS",
    b"Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234",
    b"Content-Length: 0",
)


@pytest.mark.parametrize(
    ("data", "scheme"),
    [(UNKSCM, "nobodyKnowsThisScheme"), (NOVELSC, "soap.beep")],
    ids=["3.3.2-unknown-scheme", "3.3.3-known-but-atypical-scheme"],
)
def test_3_3_2_and_3_3_3_request_uri_scheme_we_do_not_handle(data: bytes, scheme: str) -> None:
    # Well-formed, but no SIP element here can act on the Request-URI: 416.
    with pytest.raises(ParseError, match="scheme") as err:
        parse_message(data)
    assert _hint(err) == 416
    assert scheme in str(err.value)


UNKSM2 = _msg(
    b"REGISTER sip:example.com SIP/2.0",
    b"To: isbn:2983792873",
    b"From: <http://www.example.com>;tag=3234233",
    b"Call-ID: unksm2.daksdj@hyphenated-host.example.com",
    b"CSeq: 234902 REGISTER",
    b"Max-Forwards: 70",
    b"Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw",
    b"Contact: <name:John_Smith>",
    b"l: 0",
)


def test_3_3_4_unknown_uri_schemes_in_header_fields() -> None:
    msg = _request(UNKSM2)
    msg.validate()
    # The registrar sees the schemes and refuses an AOR that is not SIP.
    assert (msg.to.uri.scheme, msg.to.uri.opaque) == ("isbn", "2983792873")
    assert not msg.to.uri.is_sip
    assert (msg.from_.uri.scheme, msg.from_.uri.opaque) == ("http", "//www.example.com")
    assert msg.from_.tag == "3234233"
    (contact,) = msg.contacts
    assert (contact.uri.scheme, contact.uri.opaque) == ("name", "John_Smith")
    assert str(contact.uri) == "name:John_Smith"


BEXT01 = _msg(
    b"OPTIONS sip:user@example.com SIP/2.0",
    b"To: sip:j_user@example.com",
    b"From: sip:caller@example.net;tag=242etr",
    b"Max-Forwards: 6",
    b"Call-ID: bext01.0ha0isndaksdj",
    b"Require: nothingSupportsThis, nothingSupportsThisEither",
    b"Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis",
    b"CSeq: 8 OPTIONS",
    b"Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw",
    b"Content-Length: 0",
)


def test_3_3_5_proxy_require_and_require() -> None:
    msg = _request(BEXT01)
    msg.validate()
    # What a 420 Bad Extension lists in Unsupported.
    assert msg.headers.values("require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert msg.headers.values("Proxy-Require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]
    assert msg.top_via.transport == "TLS"


INVUT_BODY = b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'
INVUT = _msg(
    b"INVITE sip:user@example.com SIP/2.0",
    b"Contact: <sip:caller@host5.example.net>",
    b"To: sip:j.user@example.com",
    b"From: sip:caller@example.net;tag=234817",
    b"Max-Forwards: 70",
    b"Call-ID: invut.0ha0isndaksdjadsfij34n23d",
    b"CSeq: 235448 INVITE",
    b"Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw",
    b"Content-Type: application/unknownformat",
    b"Content-Length: 40",
    body=INVUT_BODY,
)


def test_3_3_6_unknown_content_type() -> None:
    msg = _request(INVUT)
    msg.validate()
    assert len(INVUT_BODY) == 40
    assert msg.content_type == "application/unknownformat"  # the UAS answers 415
    assert msg.body == INVUT_BODY


REGAUT01 = _msg(
    b"REGISTER sip:example.com SIP/2.0",
    b"To: sip:j.user@example.com",
    b"From: sip:j.user@example.com;tag=87321hj23128",
    b"Max-Forwards: 8",
    b"Call-ID: regaut01.0ha0isndaksdj",
    b"CSeq: 9338 REGISTER",
    b"Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw",
    b"Authorization: NoOneKnowsThisScheme opaque-data=here",
    b"Content-Length:0",
)


def test_3_3_7_unknown_authorization_scheme() -> None:
    msg = _request(REGAUT01)
    msg.validate()
    assert msg.content_length == 0
    scheme, _, rest = (msg.headers.get("authorization") or "").partition(" ")
    assert (scheme, rest) == ("NoOneKnowsThisScheme", "opaque-data=here")


MULTI01 = _msg(
    b"INVITE sip:user@company.com SIP/2.0",
    b"Contact: <sip:caller@host25.example.net>",
    b"Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw",
    b"Max-Forwards: 70",
    b"CSeq: 5 INVITE",
    b"Call-ID: multi01.98asdh@192.0.2.1",
    b"CSeq: 59 INVITE",
    b"Call-ID: multi01.98asdh@192.0.2.2",
    b"From: sip:caller@example.com;tag=3413415",
    b"To: sip:user@example.com",
    b"To: sip:other@example.net",
    b"From: sip:caller@example.net;tag=2923420123",
    b"Content-Type: application/sdp",
    b"l: 154",
    b"Contact: <sip:caller@host36.example.net>",
    b"Max-Forwards: 5",
    body=_sdp("192.0.2.250", "192.0.2.250"),
)


def test_3_3_8_multiple_values_in_single_value_required_fields() -> None:
    msg = _request(MULTI01)
    assert len(msg.body) == 154
    for name in ("To", "From", "Call-ID", "CSeq", "Max-Forwards"):
        assert len(msg.headers.get_all(name)) == 2
    assert len(msg.contacts) == 2  # a list header: the UA core judges the count
    with pytest.raises(ParseError, match="more than one") as err:
        msg.validate()
    assert _hint(err) == 400


MCL01_BODY = b"There's no way to know how many octets are supposed to be here.\r\n"
MCL01 = _msg(
    b"OPTIONS sip:user@example.com SIP/2.0",
    b"Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423",
    b"To: sip:user@example.com",
    b"From: sip:other@example.net;tag=3923942",
    b"Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf",
    b"CSeq: 15932 OPTIONS",
    b"Content-Length: 13",
    b"Max-Forwards: 60",
    b"Content-Length: 5",
    b"Content-Type: text/plain",
    body=MCL01_BODY,
)


def test_3_3_9_multiple_content_length_values() -> None:
    # No way to frame the body: an error on UDP, fatal to a stream.
    with pytest.raises(ParseError, match="Content-Length") as err:
        parse_message(MCL01)
    assert _hint(err) == 400
    with pytest.raises(ParseError, match="Content-Length"):
        StreamFramer().feed(MCL01)


BCAST = _msg(
    b"SIP/2.0 200 OK",
    b"Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923",
    b"Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23",
    b"Call-ID: bcast.0293lkjasdf03irf",
    b"CSeq: 30 INVITE",
    b"From: sip:user@example.com;tag=11141343",
    b"To: sip:user@example.edu;tag=2229",
    b"Content-Length: 154",
    b"Content-Type: application/sdp",
    b"Contact: <sip:user@host28.example.com>",
    body=_sdp("192.0.2.198", "192.0.2.198"),
)


def test_3_3_10_200_ok_with_broadcast_via() -> None:
    msg = _response(BCAST)
    msg.validate()
    # The forwarding decision is the proxy's; it needs the second Via exactly.
    assert [v.host for v in msg.via] == ["192.0.2.198", "255.255.255.255"]
    assert msg.via[1].sent_by == ("255.255.255.255", 5060)
    assert msg.via[1].branch == "z9hG4bK1saber23"


ZEROMF = _msg(
    b"OPTIONS sip:user@example.com SIP/2.0",
    b"To: sip:user@example.com",
    b"From: sip:caller@example.net;tag=3ghsd41",
    b"Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas",
    b"CSeq: 39234321 OPTIONS",
    b"Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i",
    b"Max-Forwards: 0",
    b"Content-Length: 0",
)


def test_3_3_11_max_forwards_of_zero() -> None:
    msg = _request(ZEROMF)
    msg.validate()  # valid: a proxy answers 483, the UAS answers the OPTIONS
    assert msg.max_forwards == 0


CPARAM01 = _msg(
    b"REGISTER sip:example.com SIP/2.0",
    b"Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw",
    b"Max-Forwards: 70",
    b"From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe",
    b"To: sip:watson@example.com",
    b"Call-ID: cparam01.70710@saturn.example.com",
    b"CSeq: 2 REGISTER",
    b"Contact: sip:+19725552222@gw1.example.net;unknownparam",
    b"l: 0",
)
CPARAM02 = _msg(
    b"REGISTER sip:example.com SIP/2.0",
    b"Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw",
    b"Max-Forwards: 70",
    b"From: sip:watson@example.com;tag=838293",
    b"To: sip:watson@example.com",
    b"Call-ID: cparam02.70710@saturn.example.com",
    b"CSeq: 3 REGISTER",
    b"Contact: <sip:+19725552222@gw1.example.net;unknownparam>",
    b"l: 0",
)


def test_3_3_12_register_with_a_contact_header_parameter() -> None:
    msg = _request(CPARAM01)
    msg.validate()
    (contact,) = msg.contacts
    # Without <...> the parameter belongs to the Contact header, not the URI.
    assert contact.uri == URI.parse("sip:+19725552222@gw1.example.net")
    assert not contact.uri.params
    assert contact.params.items_as_written() == (("unknownparam", None),)


def test_3_3_13_register_with_a_url_parameter() -> None:
    msg = _request(CPARAM02)
    msg.validate()
    (contact,) = msg.contacts
    # Inside <...> it is a URI parameter: a different binding from 3.3.12's.
    assert contact.uri.params.items_as_written() == (("unknownparam", None),)
    assert not contact.params
    assert contact.uri.user == "+19725552222"
    assert contact.uri != _request(CPARAM01).contacts[0].uri.replace(
        params=contact.uri.params.with_param("unknownparam", "x")
    )


REGESCRT = _msg(
    b"REGISTER sip:example.com SIP/2.0",
    b"To: sip:user@example.com",
    b"From: sip:user@example.com;tag=8",
    b"Max-Forwards: 70",
    b"Call-ID: regescrt.k345asrl3fdbv@192.0.2.1",
    b"CSeq: 14398234 REGISTER",
    b"Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw",
    b"M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
    b"L:0",
)


def test_3_3_14_register_with_a_url_escaped_header() -> None:
    msg = _request(REGESCRT)
    msg.validate()
    (contact,) = msg.contacts
    assert contact.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert unquote(contact.uri.headers[0][1]) == "<sip:sip.example.com>"
    # Stored and returned as written, escapes and all.
    assert str(contact.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    assert contact.uri == URI.parse("sip:user@example.com?route=%3csip:sip.example.com%3e")


SDP01 = _msg(
    b"INVITE sip:user@example.com SIP/2.0",
    b"To: sip:j_user@example.com",
    b"Contact: <sip:caller@host15.example.net>",
    b"From: sip:caller@example.net;tag=234",
    b"Max-Forwards: 5",
    b"Call-ID: sdp01.ndaksdj9342dasdd",
    b"Accept: text/nobodyKnowsThis",
    b"CSeq: 8 INVITE",
    b"Via: SIP/2.0/UDP 60.62.70.60;branch=z9hG4bKkdjuw",
    b"Content-Length: 150",
    b"Content-Type: application/sdp",
    body=_sdp("192.0.2.5", "192.0.2.5"),
)


def test_3_3_15_unacceptable_accept_offering() -> None:
    msg = _request(SDP01)
    msg.validate()
    assert msg.headers.values("accept") == ["text/nobodyKnowsThis"]  # the UAS answers 406
    assert msg.content_type == "application/sdp"
    assert msg.top_via.host == "60.62.70.60"


# ---------------------------------------------------------------------------
# 3.4  Backward compatibility
# ---------------------------------------------------------------------------

INV2543_BODY = (
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.5\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.5\r\n"
    b"t=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0\r\n"
)
INV2543 = _msg(
    b"INVITE sip:UserB@example.com SIP/2.0",
    b"Via: SIP/2.0/UDP iftgw.example.com",
    b"From: <sip:+13035551111@ift.client.example.net;user=phone>",
    b"Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>",
    b"To: sip:+16505552222@ss1.example.net;user=phone",
    b"Call-ID: inv2543.1717@ift.client.example.com",
    b"CSeq: 56 INVITE",
    b"Content-Type: application/sdp",
    body=INV2543_BODY,
)


def test_3_4_1_invite_with_rfc_2543_syntax() -> None:
    msg = _request(INV2543)
    msg.validate()
    # No branch, no From tag, no Max-Forwards, no Content-Length.
    assert msg.top_via.branch is None
    assert not msg.top_via.has_magic_cookie
    assert msg.from_.tag is None
    assert msg.max_forwards is None
    assert msg.content_length is None
    # Over UDP the body is the rest of the datagram.
    assert msg.body == INV2543_BODY
    assert msg.from_.uri.params["user"] == "phone"
    # addr-spec form: ';user=phone' is a To header parameter here.
    assert msg.to.uri == URI.parse("sip:+16505552222@ss1.example.net")
    assert msg.to.params["user"] == "phone"
    assert msg.record_routes[0].uri.maddr == "ss1.example.com"
    assert msg.record_routes[0].uri.user == "UserB"
    # On a stream, a message without Content-Length cannot be framed.
    with pytest.raises(ParseError, match="Content-Length"):
        parse_message(INV2543, datagram=False)


def test_keepalive_before_torture_messages_on_a_stream() -> None:
    # Every valid message above, back to back on one stream with CRLF
    # keep-alives between them, comes out again whole and in order.
    stream_ok = [
        WSINV,
        INTMETH,
        ESC01,
        ESCNULL,
        ESC02,
        LWSDISP,
        LONGREQ,
        SEMIURI,
        TRANSPORTS,
        MPART01,
        UNREASON,
        NOREASON,
    ]
    data = b"\r\n".join(stream_ok)
    events = StreamFramer().feed(data)
    messages = [e for e in events if not isinstance(e, KeepAlivePong)]
    assert [bytes(m) for m in messages] == stream_ok  # type: ignore[arg-type]
