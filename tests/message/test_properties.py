"""Property tests of the message layer (hypothesis).

(a) Messages built from the model -- random methods, URIs with users,
    passwords, host names, IPv4 and IPv6 hosts, ports and parameters, Via
    lists, name-addrs with quoted display names full of quotes and
    backslashes, extension headers and binary bodies -- come back from
    ``parse_message(bytes(msg))`` equal on every typed view, the headers and
    the body.
(b) Random bytes, and valid messages with bytes flipped, cut, or with CR,
    LF, NUL and high octets put in, never raise anything but ParseError:
    not from ``parse_message``, nor from any typed view or ``validate()``
    of whatever parsed.
(c) A stream of valid messages cut at random points comes out of the
    StreamFramer as the same messages.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import itertools
import string
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_sip.errors import ParseError
from trio_sip.message import (
    URI,
    Headers,
    KeepAlivePing,
    KeepAlivePong,
    Message,
    NameAddr,
    Params,
    Request,
    Response,
    StreamFramer,
    Via,
    canonical_name,
    parse_message,
)

# ---------------------------------------------------------------------------
# Strategies: the grammar of RFC 3261 section 25.1, as data
# ---------------------------------------------------------------------------

ALPHANUM = string.ascii_letters + string.digits
TOKEN_CHARS = ALPHANUM + "-.!%*_+`'~"
UNRESERVED = ALPHANUM + "-_.!~*'()"
HEXDIG = "0123456789ABCDEFabcdef"

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
escaped = st.builds(lambda a, b: f"%{a}{b}", st.sampled_from(HEXDIG), st.sampled_from(HEXDIG))


def _escaped_text(chars: str, *, min_size: int = 1) -> st.SearchStrategy[str]:
    # Plain characters around at most two escapes: few draws, so fast.
    return st.builds(
        lambda a, e1, b, e2: a + e1 + b + e2,
        st.text(chars, min_size=min_size, max_size=6),
        st.one_of(st.just(""), escaped),
        st.text(chars, max_size=4),
        st.one_of(st.just(""), escaped),
    )


# user = 1*( unreserved / escaped / user-unreserved )
users = _escaped_text(UNRESERVED + "&=+$,;?/")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
passwords = _escaped_text(UNRESERVED + "&=+$,", min_size=0)
# paramchar = param-unreserved / unreserved / escaped
uri_param_text = _escaped_text(UNRESERVED + "[]/:&+$")
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
uri_header_text = _escaped_text(UNRESERVED + "[]/?:+$")

# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
alnums = st.text(ALPHANUM, min_size=1, max_size=5)
labels = st.one_of(alnums, st.builds("{}-{}".format, alnums, alnums))
hostnames = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4s = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6s = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
hosts = st.one_of(hostnames, ipv4s, ipv6s)
ports = st.one_of(st.none(), st.integers(0, 65535))

uri_params = st.lists(
    st.tuples(uri_param_text, st.one_of(st.none(), uri_param_text)), max_size=3
).map(lambda items: Params(items))


@st.composite
def sip_uris(draw: st.DrawFn, *, with_headers: bool = True) -> URI:
    """A sip: or sips: URI with every optional component drawn at random."""
    user = draw(st.one_of(st.none(), users))
    password = draw(passwords) if user is not None and draw(st.booleans()) else None
    headers: tuple[tuple[str, str], ...] = ()
    if with_headers:
        headers = tuple(draw(st.lists(st.tuples(uri_header_text, uri_header_text), max_size=2)))
    return URI(
        draw(st.sampled_from(["sip", "sips"])),
        draw(hosts),
        user,
        password,
        draw(ports),
        draw(uri_params),
        headers,
    )


tel_uris = st.builds(
    lambda number, params: URI("tel", user=number, params=params),
    st.text("0123456789-.()", min_size=1, max_size=12).map(lambda s: "+" + s),
    uri_params,
)

# quoted-string = DQUOTE *(qdtext / quoted-pair ) DQUOTE: any character but
# CR and LF can stand in it; quotes and backslashes are escaped.
quoted_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=16
)
quoted_strings = quoted_text.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
# display-name = *(token LWS) / quoted-string
display_names = st.one_of(
    st.none(),
    quoted_text,
    st.lists(tokens, min_size=1, max_size=3).map(" ".join),
    st.sampled_from(
        ['a "quoted" name', "back\\slash", '\\"', '"', "\\", "", " padded ", "two  spaces"]
    ),
)
# generic-param = token [ EQUAL gen-value ] ; gen-value = token / host / quoted-string
header_params = st.lists(
    st.tuples(tokens, st.one_of(st.none(), tokens, quoted_strings)), max_size=3
).map(lambda items: Params(items))


@st.composite
def name_addrs(draw: st.DrawFn, *, tag: bool = False) -> NameAddr:
    """A name-addr (always written with <...>, so the URI may have anything)."""
    uri = draw(st.one_of(sip_uris(), tel_uris))
    params = draw(header_params)
    if tag:
        params = params.without("tag").with_param("tag", draw(tokens))
    return NameAddr(uri, draw(display_names), params)


TRANSPORTS = ["UDP", "TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS", "XYZ"]


@st.composite
def vias(draw: st.DrawFn) -> Via:
    """One Via value with a branch and maybe rport, received and others."""
    params = [("branch", "z9hG4bK" + draw(tokens))]
    if draw(st.booleans()):
        params.append(("rport", draw(st.one_of(st.none(), st.integers(1, 65535).map(str)))))
    if draw(st.booleans()):
        params.append(("received", draw(st.one_of(ipv4s, ipv6s))))
    params += draw(st.lists(st.tuples(tokens, st.one_of(st.none(), tokens)), max_size=2))
    return Via(draw(st.sampled_from(TRANSPORTS)), draw(hosts), draw(ports), Params(params))


METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "NOTIFY"]
methods = st.one_of(st.sampled_from(METHODS), tokens)
# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#        "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}" )
words = st.text(TOKEN_CHARS + '()<>:\\"/[]?{}', min_size=1, max_size=16)
call_ids = st.one_of(words, st.builds(lambda a, b: f"{a}@{b}", words, words))

# Headers whose meaning the typed views give; extension headers avoid them.
TYPED = {
    "via",
    "from",
    "to",
    "call-id",
    "cseq",
    "max-forwards",
    "contact",
    "route",
    "record-route",
    "content-length",
    "content-type",
    "expires",
    "date",
}
extension_names = tokens.filter(lambda n: canonical_name(n) not in TYPED)
# Any text without CR or LF; the parser strips the whitespace around values.
extension_values = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=30
).map(lambda s: s.strip(" \t"))
extension_headers = st.lists(st.tuples(extension_names, extension_values), max_size=3)
bodies = st.binary(max_size=64)
# Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB)
reasons = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"], whitelist_characters=" \t"), max_size=20
)


@st.composite
def common_headers(draw: st.DrawFn, method: str) -> list[tuple[str, str]]:
    via_list = draw(st.lists(vias(), min_size=1, max_size=2))
    lines: list[tuple[str, str]] = []
    # Several Vias on one line or on several lines: both are the same list.
    if draw(st.booleans()):
        lines.append(("Via", ", ".join(map(str, via_list))))
    else:
        lines += [(draw(st.sampled_from(["Via", "v", "VIA"])), str(v)) for v in via_list]
    lines.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    lines.append(("From", str(draw(name_addrs(tag=True)))))
    lines.append((draw(st.sampled_from(["To", "t"])), str(draw(name_addrs()))))
    lines.append(("Call-ID", draw(call_ids)))
    lines.append(("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"))
    for name in ("Contact", "Route", "Record-Route"):
        addrs = [str(a) for a in draw(st.lists(name_addrs(), max_size=2))]
        # A list header on one line or on several is the same list; on one
        # line the commas inside quotes and <...> must not split it.
        if addrs and draw(st.booleans()):
            lines.append((name, ", ".join(addrs)))
        else:
            lines += [(name, a) for a in addrs]
    lines += draw(extension_headers)
    return lines


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """A valid request built from the model."""
    method = draw(methods)
    uri = draw(st.one_of(sip_uris(with_headers=False), tel_uris))
    req = Request(method, uri, draw(common_headers(method)))
    req.body = draw(bodies)
    return req


@st.composite
def responses(draw: st.DrawFn) -> Response:
    """A valid response built from the model."""
    method = draw(methods)
    resp = Response(draw(st.integers(100, 699)), draw(reasons), draw(common_headers(method)))
    resp.body = draw(bodies)
    return resp


messages = st.one_of(requests(), responses())

# ---------------------------------------------------------------------------
# (a) round trip
# ---------------------------------------------------------------------------


def _assert_same(parsed: Message, built: Message) -> None:
    assert type(parsed) is type(built)
    if isinstance(built, Request):
        assert isinstance(parsed, Request)
        assert parsed.method == built.method
        assert parsed.uri == built.uri
        assert str(parsed.uri) == str(built.uri)
        parsed.validate()
    else:
        assert isinstance(parsed, Response)
        assert (parsed.status, parsed.reason) == (built.status, built.reason)
        parsed.validate()
    assert parsed.via == built.via
    assert parsed.top_via == built.top_via
    assert [str(v) for v in parsed.via] == [str(v) for v in built.via]
    assert parsed.from_ == built.from_
    assert parsed.from_.display_name == built.from_.display_name
    assert parsed.to == built.to
    assert parsed.to.display_name == built.to.display_name
    assert parsed.call_id == built.call_id
    assert parsed.cseq == built.cseq
    assert parsed.max_forwards == built.max_forwards
    assert parsed.contacts == built.contacts
    assert parsed.routes == built.routes
    assert parsed.record_routes == built.record_routes
    assert parsed.content_length == built.content_length == len(built.body)
    assert parsed.headers == built.headers
    assert list(parsed.headers) == list(built.headers)
    assert parsed.body == built.body
    assert bytes(parsed) == bytes(built)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_round_trip(msg: Request | Response) -> None:
    _assert_same(parse_message(bytes(msg)), msg)


@settings(max_examples=150, deadline=None)
@given(st.one_of(sip_uris(), tel_uris))
def test_uri_round_trip(uri: URI) -> None:
    again = URI.parse(str(uri))
    assert again == uri
    assert str(again) == str(uri)
    assert hash(again) == hash(uri)
    assert (again.user, again.password, again.host, again.port) == (
        uri.user,
        uri.password,
        uri.host,
        uri.port,
    )
    assert again.params.items_as_written() == uri.params.items_as_written()
    assert again.headers == uri.headers


@settings(max_examples=150, deadline=None)
@given(name_addrs(tag=True))
def test_name_addr_round_trip(addr: NameAddr) -> None:
    again = NameAddr.parse(str(addr))
    assert again == addr
    assert again.display_name == addr.display_name
    assert again.tag == addr.tag


@settings(max_examples=150, deadline=None)
@given(vias())
def test_via_round_trip(via: Via) -> None:
    again = Via.parse(str(via))
    assert again == via
    assert (again.branch, again.rport, again.received) == (via.branch, via.rport, via.received)


# ---------------------------------------------------------------------------
# (b) nothing but ParseError, whatever comes in
# ---------------------------------------------------------------------------


def _touch_uri(uri: URI) -> None:
    str(uri)
    repr(uri)
    hash(uri)
    assert uri == uri  # equality must not raise
    uri.transport  # noqa: B018
    uri.maddr  # noqa: B018
    uri.lr  # noqa: B018
    uri.default_port()
    uri.params.items_as_written()
    for name in uri.params:
        uri.params.get(name)


def _touch_name_addr(addr: NameAddr) -> None:
    str(addr)
    addr.tag  # noqa: B018
    _touch_uri(addr.uri)
    NameAddr.parse(str(addr))


VIEWS: list[tuple[str, Callable[[Message], object]]] = [
    ("top_via", lambda m: m.top_via),
    ("via", lambda m: [(str(v), v.rport, v.ttl, v.sent_by, v.has_magic_cookie) for v in m.via]),
    ("call_id", lambda m: m.call_id),
    ("cseq", lambda m: str(m.cseq)),
    ("from", lambda m: _touch_name_addr(m.from_)),
    ("to", lambda m: _touch_name_addr(m.to)),
    ("contacts", lambda m: [_touch_name_addr(a) for a in m.contacts]),
    ("star", lambda m: m.contact_is_star),
    ("routes", lambda m: [_touch_name_addr(a) for a in m.routes]),
    ("record_routes", lambda m: [_touch_name_addr(a) for a in m.record_routes]),
    ("max_forwards", lambda m: m.max_forwards),
    ("content_length", lambda m: m.content_length),
    ("expires", lambda m: m.expires),
    ("min_expires", lambda m: m.min_expires),
    ("retry_after", lambda m: m.retry_after),
    ("date", lambda m: m.date),
    ("content_type", lambda m: m.content_type),
    ("values", lambda m: [m.headers.values(name) for name, _ in m.headers]),
    ("first_values", lambda m: [m.headers.first_value(name) for name, _ in m.headers]),
    ("summary", lambda m: (m.summary(), repr(m), m.start_line)),
    ("uri", lambda m: _touch_uri(m.uri) if isinstance(m, Request) else None),
    ("validate", lambda m: m.validate()),  # type: ignore[attr-defined]
]


def _survive(data: bytes) -> None:
    """Parse ``data``; whatever parses, read everything; only ParseError may escape."""
    for datagram in (True, False):
        try:
            msg = parse_message(data, datagram=datagram)
        except ParseError:
            continue
        for _, view in VIEWS:
            try:
                view(msg)
            except ParseError:
                pass
        # Whatever parsed serialises, unchanged or changed, and parses again.
        assert parse_message(bytes(msg), datagram=datagram).body == msg.body
        msg.headers.add("X-Touched", "1")
        again = bytes(msg)
        try:
            parse_message(again)
        except ParseError:
            pass  # a header we could not read is still written back as it came
    framer = StreamFramer()
    try:
        for i in range(0, len(data), 7):
            framer.feed(data[i : i + 7])
    except ParseError:
        pass


VALID_SAMPLES = [
    b"INVITE sip:bob@biloxi.example.com;transport=tcp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bK74bf9;received=192.0.2.101\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob \\"B\\"" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com?Subject=x>;expires=60\r\n"
    b"Date: Sat, 15 Oct 2005 04:44:56 GMT\r\n"
    b"Expires: 60\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"v=0\r\n",
    b"SIP/2.0 180 Ringing\r\n"
    b"v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx, SIP/2.0/UDP h2;branch=z9hG4bKy\r\n"
    b"t: <tel:+1-212-555-0101;phone-context=example.com>;tag=a\r\n"
    b"f: sip:c@d;tag=1\r\n"
    b"i: abc\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"m: *\r\n"
    b"Subject: folded\r\n"
    b" line\r\n"
    b"l: 0\r\n"
    b"\r\n",
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_parse_error(data: bytes) -> None:
    _survive(data)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(VALID_SAMPLES),
    st.sampled_from([b"INVITE sip:a@b SIP/2.0\r\n", b"SIP/2.0 200 OK\r\n"]),
    st.binary(max_size=200),
)
def test_random_headers_after_a_good_start_line(sample: bytes, start: bytes, tail: bytes) -> None:
    # Random bytes get past the start line and into the header parsers.
    _survive(start + tail)
    _survive(start + tail + b"\r\n\r\n")
    _survive(sample.split(b"\r\n\r\n")[0] + b"\r\n" + tail + b"\r\n\r\n")


# Bytes that tend to break parsers of text protocols.
NASTY = [b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"\xc3", b"\x80", b" ", b"\t", b":", b";", b","]
NASTY += [b'"', b"\\", b"<", b">", b"%", b"@", b"[", b"]", b"?", b"=", b"\r\n ", b"\r\n\r\n"]


def _torture_messages() -> list[bytes]:
    # Every RFC 4475 message of test_torture.py, loaded by path so that this
    # does not depend on how pytest puts test folders on sys.path.
    path = Path(__file__).with_name("test_torture.py")
    spec = importlib.util.spec_from_file_location("_rfc4475_messages", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [
        value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, bytes) and b"SIP/" in value[:300]
    ]


SEEDS = VALID_SAMPLES + _torture_messages()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid (or RFC 4475) message, sampled or built, with a few random edits."""
    if draw(st.integers(0, 3)):
        data = bytearray(draw(st.sampled_from(SEEDS)))
    else:
        data = bytearray(bytes(draw(messages)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "replace"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(NASTY), st.binary(min_size=1, max_size=3)))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        elif kind == "truncate":
            del data[at:]
        else:
            data[at] = draw(st.sampled_from(NASTY))[0]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_raise_only_parse_error(data: bytes) -> None:
    _survive(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_header_values_raise_only_parse_error(text: str) -> None:
    # Each typed value parser on its own, with any text at all.
    parsers: list[Callable[[str], object]] = [
        URI.parse,
        NameAddr.parse,
        Via.parse,
        Params.parse,
        lambda t: Headers([("Contact", t)]).values("contact"),
    ]
    for parse in parsers:
        try:
            value = parse(text)
        except ParseError:
            continue
        str(value)


# ---------------------------------------------------------------------------
# (c) stream framing
# ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(messages, st.sampled_from([b"", b"\r\n", b"\r\n\r\n"])), min_size=1, max_size=4
    ),
    st.lists(st.integers(0, 4000), max_size=12),
)
def test_stream_split_anywhere_gives_the_same_messages(
    items: list[tuple[Request | Response, bytes]], cuts: list[int]
) -> None:
    wire = [bytes(msg) for msg, _ in items]
    stream = b"".join(keepalive + data for data, (_, keepalive) in zip(wire, items, strict=True))
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    framer = StreamFramer()
    events: list[object] = []
    for start, end in itertools.pairwise(points):
        events += framer.feed(stream[start:end])
    got = [e for e in events if not isinstance(e, KeepAlivePing | KeepAlivePong)]
    assert [bytes(m) for m in got] == wire  # type: ignore[call-overload]
    for parsed, (built, _) in zip(got, items, strict=True):
        _assert_same(parsed, built)  # type: ignore[arg-type]
    assert framer.buffered == 0
    pings = sum(isinstance(e, KeepAlivePing) for e in events)
    assert pings == sum(keepalive == b"\r\n\r\n" for _, keepalive in items)


# ---------------------------------------------------------------------------
# What the properties found, pinned down
# ---------------------------------------------------------------------------


def test_bare_lf_inside_a_crlf_header_section_is_refused() -> None:
    # Found by the mutation test: the LF would have ended up inside the To
    # display name, and peers that split lines on LF would see other headers.
    data = b'OPTIONS sip:a@b SIP/2.0\r\nTo: "\n x" <sip:a@b>\r\nContent-Length: 0\r\n\r\n'
    with pytest.raises(ParseError, match="bare") as err:
        parse_message(data)
    assert err.value.status_hint == 400


def test_lf_only_message_may_carry_crlfcrlf_in_its_body() -> None:
    body = b"a\r\n\r\nb"
    msg = parse_message(b"MESSAGE sip:a@b SIP/2.0\nContent-Length: 6\n\n" + body)
    assert msg.body == body
    assert msg.content_length == 6


def test_display_names_that_need_quotes_get_them() -> None:
    uri = URI.parse("sip:a@b")
    for name in ["two  spaces", " lead", "trail ", "tab\tin", "BEL\x07", 'q"uo\\te', ""]:
        text = str(NameAddr(uri, name))
        assert text.startswith('"'), text
        assert NameAddr.parse(text).display_name == name
    assert str(NameAddr(uri, "Bob Smith")) == "Bob Smith <sip:a@b>"
    assert str(NameAddr(uri, "BEL\x07")) == '"BEL\\\x07" <sip:a@b>'
    for bad in ["line\r\nX-Injected: 1", "lf\n"]:
        with pytest.raises(ValueError, match="CR or LF"):
            str(NameAddr(uri, bad))


def test_parenthesis_in_a_uri_is_no_comment() -> None:
    # Found by the round trip: '(' is a visual separator in tel numbers and an
    # unreserved character in SIP URIs; it hid the comma after it.
    h = Headers([("Contact", "<tel:+1-(555)>, <tel:+(>, <sip:a@b>")])
    assert h.values("contact") == ["<tel:+1-(555)>", "<tel:+(>", "<sip:a@b>"]
    h = Headers([("Contact", "sip:a(b@h, sip:c@d")])
    assert h.values("contact") == ["sip:a(b@h", "sip:c@d"]
    # A real comment still keeps its commas.
    h = Headers([("X", "a (comment, with comma), b")])
    assert h.values("x") == ["a (comment, with comma)", "b"]
