from __future__ import annotations

import pytest

from trio_sip.errors import ParseError
from trio_sip.message import URI


def test_full_sip_uri_components() -> None:
    uri = URI.parse(
        "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;maddr=239.1.1.1?subject=x&h=y"
    )
    assert uri.scheme == "sips"
    assert (uri.user, uri.password) == ("alice", "secret")
    assert (uri.host, uri.port) == ("2001:db8::1", 5061)
    assert uri.transport == "tcp"
    assert uri.lr
    assert uri.maddr == "239.1.1.1"
    assert uri.headers == (("subject", "x"), ("h", "y"))
    assert uri.is_secure
    assert uri.hostport == "[2001:db8::1]:5061"


@pytest.mark.parametrize(
    "text",
    [
        "sip:bob@biloxi.example.com",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip:alice@192.0.2.4:5070;transport=udp",
        "sip:user;par=u%40example.net@example.com",
        "sips:[::1]",
        "tel:+1-201-555-0123;phone-context=example.com",
        "mailto:alice@example.com",
        "sip:atlanta.example.com;method=REGISTER?to=alice%40atlanta.com",
    ],
)
def test_round_trip_keeps_text(text: str) -> None:
    assert str(URI.parse(text)) == text


def test_user_may_contain_semicolon_and_escaped_at() -> None:
    uri = URI.parse("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.host == "example.com"
    assert not uri.params


def test_tel_uri() -> None:
    uri = URI.parse("tel:+1-201-555-0123")
    assert (uri.scheme, uri.user, uri.host) == ("tel", "+1-201-555-0123", "")
    assert uri == URI.parse("tel:+12015550123")


def test_default_ports() -> None:
    assert URI.parse("sip:a@b").default_port() == 5060
    assert URI.parse("sips:a@b").default_port() == 5061
    assert URI.parse("sip:a@b;transport=TLS").default_port() == 5061
    assert URI.parse("sip:a@b:7000").default_port() == 7000


# RFC 3261 section 19.1.4, the examples given there.
@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        ),
        (
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
        ),
        ("sip:[2001:db8::0:1]", "sip:[2001:DB8::1]"),
    ],
)
def test_equivalent_uris(a: str, b: str) -> None:
    assert URI.parse(a) == URI.parse(b)
    assert hash(URI.parse(a)) == hash(URI.parse(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:a@b", "sips:a@b"),
    ],
)
def test_different_uris(a: str, b: str) -> None:
    assert URI.parse(a) != URI.parse(b)


@pytest.mark.parametrize(
    "text",
    [
        "bob@example.com",
        "sip:",
        "sip:bob@",
        "sip:bob@exa mple.com",
        "sip:bob@[::1",
        "sip:bob@[zz::1]",
        "sip:bob@host:99999",
        "sip:bob@host:port",
        "sip:bob@host;=x",
        "sip:bob@host?novalue",
        "sip:b<b@host",
        "tel:",
    ],
)
def test_malformed_uris(text: str) -> None:
    with pytest.raises(ParseError) as err:
        URI.parse(text)
    assert err.value.status_hint == 400


def test_replace_and_str() -> None:
    uri = URI.parse("sip:bob@example.com")
    assert str(uri.replace(port=5070, host="10.0.0.1")) == "sip:bob@10.0.0.1:5070"
    assert str(uri.replace(params=uri.params.with_param("lr"))) == "sip:bob@example.com;lr"
