"""Typed header values: Via, name-addr, CSeq, parameters."""

from __future__ import annotations

import pytest

from trio_sip.errors import ParseError
from trio_sip.message import CSeq, NameAddr, Params, Via, parse_message


def test_via_components() -> None:
    via = Via.parse(
        "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport;received=1.2.3.4"
    )
    assert via.transport == "UDP"
    assert (via.host, via.port) == ("pc33.atlanta.com", 5066)
    assert via.branch == "z9hG4bK776asdhds"
    assert via.has_magic_cookie
    assert via.rport is True
    assert via.received == "1.2.3.4"
    assert not via.reliable


def test_via_ipv6_and_default_ports() -> None:
    via = Via.parse("SIP/2.0/TLS [2001:db8::9]")
    assert via.host == "2001:db8::9"
    assert via.port is None
    assert via.sent_by == ("2001:db8::9", 5061)
    assert str(via) == "SIP/2.0/TLS [2001:db8::9]"
    assert Via.parse("SIP/2.0/TCP a.example").sent_by == ("a.example", 5060)


def test_via_lws_in_sent_protocol_and_lower_case_transport() -> None:
    via = Via.parse("SIP / 2.0 / tcp  host.example ; branch = z9hG4bKx ;ttl=16")
    assert via.transport == "TCP"
    assert via.branch == "z9hG4bKx"
    assert via.ttl == 16


def test_via_rport_value_and_maddr() -> None:
    via = Via.parse("SIP/2.0/UDP h;rport=5070;maddr=224.2.0.1;ttl=16;branch=z9hG4bKa")
    assert via.rport == 5070
    assert via.maddr == "224.2.0.1"


def test_via_with_params_keeps_order() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport")
    filled = via.with_params(received="192.0.2.1", rport="40000")
    assert str(filled) == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport=40000;received=192.0.2.1"


@pytest.mark.parametrize(
    "text",
    ["SIP/2.0/UDP", "SIP/3.0/UDP host", "HTTP/1.1/TCP host", "SIP/2.0/UDP host:99999", "garbage"],
)
def test_bad_via(text: str) -> None:
    with pytest.raises(ParseError):
        Via.parse(text)


def test_name_addr_forms() -> None:
    a = NameAddr.parse('"Alice \\"A\\" Liddell" <sip:alice@atlanta.com;transport=tcp>;tag=88sja8x')
    assert a.display_name == 'Alice "A" Liddell'
    assert a.uri.transport == "tcp"
    assert a.tag == "88sja8x"
    b = NameAddr.parse("Bob  Smith <sip:bob@biloxi.com>")
    assert b.display_name == "Bob Smith"
    c = NameAddr.parse("sip:carol@chicago.com;tag=1")
    assert c.display_name is None
    assert not c.uri.params  # addr-spec form: params belong to the header
    assert c.tag == "1"
    assert str(c) == "<sip:carol@chicago.com>;tag=1"


def test_name_addr_with_tag_and_params() -> None:
    a = NameAddr.parse("<sip:a@b>;expires=60;q=0.5")
    assert a.params.get("expires") == "60"
    assert a.params["q"] == "0.5"
    assert str(a.with_tag("xyz")) == "<sip:a@b>;expires=60;q=0.5;tag=xyz"
    quoted = NameAddr(a.uri, 'A "quoted" name')
    assert NameAddr.parse(str(quoted)) == quoted


@pytest.mark.parametrize(
    "text", ["", "<sip:a@b", "Bob sip:bob@b", '"unterminated <sip:a@b>', "<sip:a@b> junk", "<>"]
)
def test_bad_name_addr(text: str) -> None:
    with pytest.raises(ParseError):
        NameAddr.parse(text)


def test_cseq() -> None:
    assert CSeq.parse("4711 INVITE") == CSeq(4711, "INVITE")
    assert str(CSeq(1, "BYE")) == "1 BYE"
    for bad in ("INVITE", "1", "x INVITE", "2147483648 INVITE", "1 INV ITE"):
        with pytest.raises(ParseError):
            CSeq.parse(bad)


def test_name_addr_and_cseq_values_are_shared_by_text() -> None:
    # Immutable values parsed from the same text are one object (memoised,
    # like URIs); a subclass gets its own type, and bad text raises each time.
    text = "Bob <sip:bob@example.com>;tag=1928301774"
    assert NameAddr.parse(text) is NameAddr.parse(text)
    assert CSeq.parse("1 BYE") is CSeq.parse("1 BYE")

    class Named(NameAddr):
        pass

    class Numbered(CSeq):
        pass

    assert type(Named.parse(text)) is Named
    assert str(Named.parse(text)) == str(NameAddr.parse(text))
    assert type(Numbered.parse("1 BYE")) is Numbered
    for _ in range(2):
        with pytest.raises(ParseError):
            NameAddr.parse("<sip:a@b")
        with pytest.raises(ParseError):
            CSeq.parse("x BYE")


def test_params_case_insensitive_names_and_flags() -> None:
    p = Params.parse(";Branch=abc;LR;q=0.7")
    assert p.get("branch") == "abc"
    assert "lr" in p
    assert p.get("lr") is None
    assert str(p) == ";Branch=abc;LR;q=0.7"
    assert str(p.without("LR")) == ";Branch=abc;q=0.7"
    assert p == Params.parse(";branch=abc;lr;Q=0.7")
    with pytest.raises(ParseError):
        Params.parse(";;x")


def test_replace_top_via_keeps_the_rest_and_caches_the_new_value() -> None:
    data = (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport, SIP/2.0/UDP 192.0.2.2\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.3;branch=z9hG4bKc\r\n"
        b"Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    stamped = msg.top_via.with_params(received="198.51.100.7", rport="4000")
    msg.replace_top_via(stamped)
    assert msg.top_via is stamped
    again = parse_message(bytes(msg))
    assert [str(v) for v in again.via] == [
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport=4000;received=198.51.100.7",
        "SIP/2.0/UDP 192.0.2.2",
        "SIP/2.0/TCP 192.0.2.3;branch=z9hG4bKc",
    ]
    assert again.top_via == stamped
