"""Digest authentication: header syntax, the RFC test vectors, client and server sides."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_sip.errors import ParseError
from trio_sip.message.digest import (
    Algorithm,
    AuthParam,
    Challenge,
    Credentials,
    authorize,
    choose_challenge,
    compute_response,
    ha1,
    ha2,
    parse_challenges,
    userhash,
    verify,
)

# --- RFC 7616 section 3.9.1 -------------------------------------------------

RFC7616_REALM = "http-auth@example.org"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_RESPONSES = {
    Algorithm.MD5: "8ca523f5e9506fed4657c9700eebdbec",
    Algorithm.SHA_256: "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}

# The two WWW-Authenticate fields of the example, as folded on the wire and
# then joined into one value the way a header layer joins repeated fields.
RFC7616_CHALLENGES = (
    "Digest\r\n"
    f'    realm="{RFC7616_REALM}",\r\n'
    '    qop="auth, auth-int",\r\n'
    "    algorithm=SHA-256,\r\n"
    f'    nonce="{RFC7616_NONCE}",\r\n'
    f'    opaque="{RFC7616_OPAQUE}", '
    "Digest\r\n"
    f'    realm="{RFC7616_REALM}",\r\n'
    '    qop="auth, auth-int",\r\n'
    "    algorithm=MD5,\r\n"
    f'    nonce="{RFC7616_NONCE}",\r\n'
    f'    opaque="{RFC7616_OPAQUE}"'
)


def test_rfc7616_challenges_parse() -> None:
    sha256, md5 = parse_challenges(RFC7616_CHALLENGES)
    assert sha256 == Challenge(
        RFC7616_REALM,
        RFC7616_NONCE,
        opaque=RFC7616_OPAQUE,
        algorithm=Algorithm.SHA_256,
        qop=("auth", "auth-int"),
    )
    assert md5.algorithm is Algorithm.MD5
    assert md5.nonce == RFC7616_NONCE


@pytest.mark.parametrize("algorithm", [Algorithm.MD5, Algorithm.SHA_256])
def test_rfc7616_example_through_authorize(algorithm: Algorithm) -> None:
    by_algorithm = {c.algorithm: c for c in parse_challenges(RFC7616_CHALLENGES)}
    credentials = authorize(
        by_algorithm[algorithm],
        username="Mufasa",
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce=RFC7616_CNONCE,
    )
    assert credentials == Credentials(
        "Mufasa",
        RFC7616_REALM,
        RFC7616_NONCE,
        "/dir/index.html",
        RFC7616_RESPONSES[algorithm],
        algorithm=algorithm,
        cnonce=RFC7616_CNONCE,
        opaque=RFC7616_OPAQUE,
        qop="auth",
        nc=1,
    )


@pytest.mark.parametrize("algorithm", [Algorithm.MD5, Algorithm.SHA_256])
def test_rfc7616_example_through_pure_functions(algorithm: Algorithm) -> None:
    key = ha1(algorithm, "Mufasa", RFC7616_REALM, "Circle of Life")
    request = ha2(algorithm, "GET", "/dir/index.html", "auth")
    response = compute_response(
        algorithm, key, request, RFC7616_NONCE, qop="auth", nc=1, cnonce=RFC7616_CNONCE
    )
    assert response == RFC7616_RESPONSES[algorithm]


@pytest.mark.parametrize("algorithm", [Algorithm.MD5, Algorithm.SHA_256])
def test_rfc7616_authorization_header_verifies(algorithm: Algorithm) -> None:
    header = (
        'Digest username="Mufasa",\r\n'
        f'    realm="{RFC7616_REALM}",\r\n'
        '    uri="/dir/index.html",\r\n'
        f"    algorithm={algorithm.value},\r\n"
        f'    nonce="{RFC7616_NONCE}",\r\n'
        "    nc=00000001,\r\n"
        f'    cnonce="{RFC7616_CNONCE}",\r\n'
        "    qop=auth,\r\n"
        f'    response="{RFC7616_RESPONSES[algorithm]}",\r\n'
        f'    opaque="{RFC7616_OPAQUE}"'
    )
    credentials = Credentials.parse(header)
    assert credentials.nc == 1
    assert credentials.qop == "auth"
    assert verify(credentials, method="GET", password="Circle of Life")
    assert not verify(credentials, method="GET", password="Circle Of Life")
    assert not verify(credentials, method="POST", password="Circle of Life")
    stored = ha1(algorithm, "Mufasa", RFC7616_REALM, "Circle of Life")
    assert verify(credentials, method="GET", ha1=stored)
    assert verify(credentials, method="GET", ha1=stored.upper())


# --- RFC 2617 section 3.5 -----------------------------------------------------


def test_rfc2617_example() -> None:
    challenge = Challenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    credentials = authorize(
        challenge,
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
    )
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    assert credentials.algorithm is None  # none offered, none echoed: MD5 implied
    assert str(credentials) == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001'
    )


# --- SIP REGISTER, values computed for this suite -----------------------------

REGISTER_NONCE = "ea9c8e88df84f1cec4341ae6cbe5a359"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (Algorithm.MD5, "b26d1d22d74970d1dc3ddfafdf04cba3"),
        (Algorithm.SHA_256, "8578d283bc51017877d9c4eaf0179448e84ecba506120da78b2b01abe37bafd6"),
        (
            Algorithm.SHA_512_256,
            "59a667c66e47e0b32c2fbf0f60045f07496c00479dc5755326b5efd0cae218d5",
        ),
    ],
)
def test_sip_register(algorithm: Algorithm, expected: str) -> None:
    challenge = Challenge(
        "atlanta.com", REGISTER_NONCE, algorithm=algorithm, qop=("auth",), opaque=""
    )
    credentials = authorize(
        challenge,
        username="alice",
        password="secret",
        method="REGISTER",
        uri="sip:atlanta.com",
        cnonce="0a4f113b",
    )
    assert credentials.response == expected
    assert credentials.opaque == ""
    assert verify(Credentials.parse(str(credentials)), method="REGISTER", password="secret")


def test_sip_register_matches_the_formula_written_out() -> None:
    def h(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    a1 = h("alice:atlanta.com:secret")
    a2 = h("REGISTER:sip:atlanta.com")
    expected = h(f"{a1}:{REGISTER_NONCE}:00000001:0a4f113b:auth:{a2}")
    assert expected == "8578d283bc51017877d9c4eaf0179448e84ecba506120da78b2b01abe37bafd6"


def test_sip_register_without_qop_is_rfc2069_style() -> None:
    challenge = Challenge.parse(f'Digest realm="atlanta.com", nonce="{REGISTER_NONCE}"')
    credentials = authorize(
        challenge, username="alice", password="secret", method="REGISTER", uri="sip:atlanta.com"
    )
    assert credentials.response == "91c233b4805cf5c953b34a0e048bcde9"
    assert credentials.qop is None
    assert credentials.nc is None
    assert credentials.cnonce is None
    assert "qop" not in str(credentials)
    assert "nc=" not in str(credentials)
    assert verify(credentials, method="REGISTER", password="secret")


# --- -sess, auth-int, qop choice, cnonce, nc ------------------------------------


@pytest.mark.parametrize(
    "algorithm", [Algorithm.MD5_SESS, Algorithm.SHA_256_SESS, Algorithm.SHA_512_256_SESS]
)
def test_sess_folds_nonce_and_cnonce_into_ha1(algorithm: Algorithm) -> None:
    challenge = Challenge("r", "n0nce", algorithm=algorithm, qop=("auth",))
    credentials = authorize(
        challenge, username="u", password="p", method="INVITE", uri="sip:b@r", cnonce="c"
    )
    plain = algorithm.hexdigest("u:r:p")
    session = hashlib.new(algorithm.hash_name, f"{plain}:n0nce:c".encode()).hexdigest()
    assert ha1(algorithm, "u", "r", "p", "n0nce", "c") == session
    expected = compute_response(
        algorithm,
        session,
        ha2(algorithm, "INVITE", "sip:b@r", "auth"),
        "n0nce",
        qop="auth",
        nc=1,
        cnonce="c",
    )
    assert credentials.response == expected
    assert verify(credentials, method="INVITE", password="p")
    # A stored H(user:realm:password) serves the -sess variant too.
    assert verify(credentials, method="INVITE", ha1=plain)
    with pytest.raises(ValueError, match="nonce and cnonce"):
        ha1(algorithm, "u", "r", "p")


def test_sess_without_qop_still_sends_a_cnonce() -> None:
    challenge = Challenge("r", "n", algorithm=Algorithm.MD5_SESS)
    credentials = authorize(challenge, username="u", password="p", method="BYE", uri="sip:x")
    assert credentials.cnonce
    assert credentials.qop is None
    assert verify(credentials, method="BYE", password="p")


def test_auth_int_when_only_offer_covers_the_body() -> None:
    challenge = Challenge("r", "n", algorithm=Algorithm.SHA_256, qop=("auth-int",))
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    credentials = authorize(
        challenge, username="u", password="p", method="INVITE", uri="sip:b@r", body=body
    )
    assert credentials.qop == "auth-int"
    assert verify(credentials, method="INVITE", body=body, password="p")
    assert not verify(credentials, method="INVITE", body=body + b"x", password="p")
    assert not verify(credentials, method="INVITE", password="p")


def test_auth_is_preferred_to_auth_int() -> None:
    challenge = Challenge("r", "n", qop=("auth-int", "AUTH"))
    credentials = authorize(challenge, username="u", password="p", method="INVITE", uri="sip:x")
    assert credentials.qop == "auth"


def test_only_unknown_qop_cannot_be_answered() -> None:
    challenge = Challenge("r", "n", qop=("auth-conf",))
    with pytest.raises(ValueError, match="qop"):
        authorize(challenge, username="u", password="p", method="INVITE", uri="sip:x")
    assert choose_challenge([challenge]) is None


def test_cnonce_is_random_when_not_given() -> None:
    challenge = Challenge("r", "n", qop=("auth",))
    first = authorize(challenge, username="u", password="p", method="OPTIONS", uri="sip:x")
    second = authorize(challenge, username="u", password="p", method="OPTIONS", uri="sip:x")
    assert first.cnonce
    assert second.cnonce
    assert first.cnonce != second.cnonce
    assert verify(first, method="OPTIONS", password="p")
    assert verify(second, method="OPTIONS", password="p")


def test_nc_is_eight_hex_digits_both_ways() -> None:
    challenge = Challenge("r", "n", qop=("auth",))
    credentials = authorize(
        challenge, username="u", password="p", method="OPTIONS", uri="sip:x", nc=255
    )
    assert "nc=000000ff" in str(credentials)
    assert Credentials.parse(str(credentials)).nc == 255
    # Upper-case hex from a sloppy peer means the same count.
    upper = str(credentials).replace("nc=000000ff", "nc=000000FF")
    assert Credentials.parse(upper).nc == 255
    for bad_nc in (0, 2**32):
        with pytest.raises(ValueError, match="nc"):
            authorize(challenge, username="u", password="p", method="X", uri="x", nc=bad_nc)


def test_authorize_with_stored_ha1() -> None:
    challenge = Challenge("r", "n", algorithm=Algorithm.SHA_256, qop=("auth",))
    stored = ha1(Algorithm.SHA_256, "u", "r", "p")
    by_password = authorize(
        challenge, username="u", password="p", method="INVITE", uri="sip:x", cnonce="c"
    )
    by_ha1 = authorize(
        challenge, username="u", ha1=stored, method="INVITE", uri="sip:x", cnonce="c"
    )
    assert by_password == by_ha1
    with pytest.raises(ValueError, match="not a SHA-256 digest"):
        authorize(challenge, username="u", ha1=stored[:32], method="INVITE", uri="sip:x")
    with pytest.raises(ValueError, match="exactly one"):
        authorize(challenge, username="u", method="INVITE", uri="sip:x")
    with pytest.raises(ValueError, match="exactly one"):
        authorize(challenge, username="u", password="p", ha1=stored, method="INVITE", uri="sip:x")


def test_verify_with_ha1_of_another_hash_fails() -> None:
    challenge = Challenge("r", "n", algorithm=Algorithm.SHA_256, qop=("auth",))
    credentials = authorize(challenge, username="u", password="p", method="INVITE", uri="sip:x")
    assert not verify(credentials, method="INVITE", ha1=ha1(Algorithm.MD5, "u", "r", "p"))
    assert not verify(credentials, method="INVITE", ha1="z" * 64)
    with pytest.raises(ValueError, match="exactly one"):
        verify(credentials, method="INVITE")


def test_verify_rejects_what_it_cannot_check() -> None:
    challenge = Challenge("r", "n", qop=("auth",))
    good = authorize(challenge, username="u", password="p", method="INVITE", uri="sip:x")
    assert verify(good, method="INVITE", password="p")
    odd_qop = Credentials.parse(str(good).replace("qop=auth", "qop=auth-conf"))
    assert not verify(odd_qop, method="INVITE", password="p")
    odd_algorithm = Credentials.parse(str(good) + ", algorithm=SHA-1")
    assert odd_algorithm.algorithm == "SHA-1"
    assert odd_algorithm.effective_algorithm is None
    assert not verify(odd_algorithm, method="INVITE", password="p")
    non_ascii = Credentials.parse(str(good).replace(good.response, "é" * 32))
    assert not verify(non_ascii, method="INVITE", password="p")
    # A response in upper-case hex is the same response.
    upper = Credentials.parse(str(good).replace(good.response, good.response.upper()))
    assert verify(upper, method="INVITE", password="p")


def test_verify_checks_a_given_username() -> None:
    challenge = Challenge("r", "n", qop=("auth",))
    credentials = authorize(challenge, username="u", password="p", method="INVITE", uri="sip:x")
    assert verify(credentials, method="INVITE", password="p", username="u")
    assert not verify(credentials, method="INVITE", password="p", username="v")


# --- userhash ------------------------------------------------------------------


def test_userhash_hides_the_name() -> None:
    challenge = Challenge.parse(
        'Digest realm="api@example.org", nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", '
        'algorithm=SHA-512-256, qop="auth", userhash=true, charset=UTF-8'
    )
    assert challenge.userhash
    assert challenge.charset == "UTF-8"
    name = "J\u00e4s\u00f8n Doe"
    credentials = authorize(
        challenge, username=name, password="Secret, or not?", method="GET", uri="/doe.json"
    )
    hashed = hashlib.new("sha512_256", f"{name}:api@example.org".encode()).hexdigest()
    assert credentials.username == hashed == userhash(Algorithm.SHA_512_256, name, challenge.realm)
    assert credentials.userhash
    assert "userhash=true" in str(credentials)
    assert name not in str(credentials)
    parsed = Credentials.parse(str(credentials))
    assert parsed == credentials
    assert verify(parsed, method="GET", password="Secret, or not?", username=name)
    assert not verify(parsed, method="GET", password="Secret, or not?", username="Jason Doe")
    stored = ha1(Algorithm.SHA_512_256, name, "api@example.org", "Secret, or not?")
    assert verify(parsed, method="GET", ha1=stored)
    with pytest.raises(ValueError, match="real username"):
        verify(parsed, method="GET", password="Secret, or not?")


def test_username_star_is_decoded() -> None:
    credentials = Credentials.parse(
        "Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=\"api@example.org\", "
        'nonce="n", uri="/doe.json", response="00"'
    )
    assert credentials.username == "J\u00e4s\u00f8n Doe"
    assert 'username="J\u00e4s\u00f8n Doe"' in str(credentials)
    with pytest.raises(ParseError):
        Credentials.parse(
            'Digest username*=UTF-8\'\'J%C3, realm="r", nonce="n", uri="u", response="0"'
        )
    with pytest.raises(ParseError):
        Credentials.parse(
            'Digest username*=UTF-8\'\'x, userhash=true, realm="r", nonce="n", uri="u", '
            'response="0"'
        )


# --- quoting and escaping ------------------------------------------------------


def test_quotes_and_backslashes_in_username_round_trip() -> None:
    name = 'Bob "the \\ builder"'
    challenge = Challenge("r", "n", qop=("auth",))
    credentials = authorize(challenge, username=name, password="p", method="INVITE", uri="sip:x")
    text = str(credentials)
    assert 'username="Bob \\"the \\\\ builder\\""' in text
    parsed = Credentials.parse(text)
    assert parsed.username == name
    assert parsed == credentials
    assert verify(parsed, method="INVITE", password="p")


def test_unescaping_on_parse() -> None:
    challenge = Challenge.parse('Digest realm="a\\"b\\\\c\\d", nonce="x"')
    assert challenge.realm == 'a"b\\cd'
    assert str(challenge) == 'Digest realm="a\\"b\\\\cd", nonce="x"'


def test_fold_inside_a_quoted_string_is_one_space() -> None:
    challenge = Challenge.parse('Digest realm="two \r\n  words", nonce="x"')
    assert challenge.realm == "two words"


def test_control_characters_are_escaped_and_cr_lf_refused() -> None:
    challenge = Challenge("a\x01b\tc", "n")
    assert 'realm="a\\\x01b\tc"' in str(challenge)
    assert Challenge.parse(str(challenge)) == challenge
    for bad in ("a\rb", "a\nb", "\ud800"):
        with pytest.raises(ValueError, match="quoted-string"):
            Challenge(bad, "n")
    with pytest.raises(ValueError, match="token"):
        Challenge("r", "n", qop=("a b",))
    with pytest.raises(ValueError, match="token"):
        AuthParam("x", "not a token", quoted=False)


# --- building challenges ------------------------------------------------------


def test_challenge_str() -> None:
    challenge = Challenge(
        "example.com",
        "abc",
        opaque="o",
        algorithm=Algorithm.SHA_256,
        qop=("auth", "auth-int"),
        stale=True,
        domain=("sip:example.com", "sip:other.example.com"),
        userhash=True,
        charset="UTF-8",
        params=(AuthParam("x-vendor", "1", quoted=False), AuthParam("Note", "a, b")),
    )
    assert str(challenge) == (
        'Digest realm="example.com", domain="sip:example.com sip:other.example.com", '
        'nonce="abc", opaque="o", algorithm=SHA-256, qop="auth,auth-int", stale=TRUE, '
        'charset=UTF-8, userhash=true, x-vendor=1, Note="a, b"'
    )
    assert Challenge.parse(str(challenge)) == challenge
    assert challenge.param("NOTE") == "a, b"
    assert challenge.param("missing") is None


def test_algorithm_given_as_string_is_normalised() -> None:
    assert Challenge("r", "n", algorithm="sha-256").algorithm is Algorithm.SHA_256
    assert Credentials("u", "r", "n", "x", "0", algorithm="md5-SESS").algorithm is (
        Algorithm.MD5_SESS
    )


# --- algorithms ------------------------------------------------------------------


def test_algorithm_parse() -> None:
    assert Algorithm.parse("md5") is Algorithm.MD5
    assert Algorithm.parse("SHA-512-256-SESS") is Algorithm.SHA_512_256_SESS
    assert Algorithm.parse("sha-256") is Algorithm.SHA_256
    assert Algorithm.parse("SHA-1") is None
    assert Algorithm.parse("") is None
    assert [a.value for a in Algorithm] == [
        "MD5",
        "MD5-sess",
        "SHA-256",
        "SHA-256-sess",
        "SHA-512-256",
        "SHA-512-256-sess",
    ]
    assert Algorithm.SHA_512_256.hexdigest(b"") == (
        "c672b8d1ef56ed28ab87c3622c5114069bdd3ad7b8f9737498d0c01ecef0967a"
    )
    assert Algorithm.MD5.hex_length == 32
    assert Algorithm.SHA_512_256_SESS.hex_length == 64


def test_unknown_algorithm_is_kept() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n", algorithm=AKAv1-MD5')
    assert challenge.algorithm == "AKAv1-MD5"
    assert challenge.effective_algorithm is None
    assert str(challenge) == 'Digest realm="r", nonce="n", algorithm=AKAv1-MD5'
    with pytest.raises(ValueError, match="cannot answer"):
        authorize(challenge, username="u", password="p", method="REGISTER", uri="sip:r")


def test_missing_algorithm_means_md5() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n"')
    assert challenge.algorithm is None
    assert challenge.effective_algorithm is Algorithm.MD5


# --- several challenges, choosing one ----------------------------------------


def test_several_challenges_split_on_scheme_boundaries() -> None:
    value = (
        'Digest realm="a, Digest realm=b", nonce="1", algorithm=SHA-256, qop="auth", '
        'Digest realm="a", nonce="2",algorithm=MD5,qop="auth",'
        ' Basic realm="legacy",, '
        'digest realm="c", nonce="3"'
    )
    challenges = parse_challenges(value)
    assert [(c.scheme, c.realm, c.nonce) for c in challenges] == [
        ("Digest", "a, Digest realm=b", "1"),
        ("Digest", "a", "2"),
        ("Basic", "", ""),
        ("Digest", "c", "3"),
    ]
    basic = challenges[2]
    assert not basic.is_digest
    assert basic.param("realm") == "legacy"
    assert basic.effective_algorithm is None
    assert str(basic) == 'Basic realm="legacy"'
    assert Challenge.parse(str(basic)) == basic


def test_bare_scheme_is_a_challenge() -> None:
    (negotiate,) = parse_challenges("Negotiate")
    assert negotiate.scheme == "Negotiate"
    assert str(negotiate) == "Negotiate"
    with pytest.raises(ValueError, match="Digest fields"):
        Challenge("r", "", scheme="Basic")


def _offer(algorithm: str | None, nonce: str) -> Challenge:
    return Challenge("r", nonce, algorithm=algorithm, qop=("auth",))


def test_choose_the_strongest() -> None:
    offered = [
        _offer("MD5", "1"),
        _offer("SHA-256", "2"),
        _offer("SHA-1", "3"),
        _offer("SHA-512-256", "4"),
        _offer("SHA-512-256-sess", "5"),
    ]
    chosen = choose_challenge(offered)
    assert chosen is not None
    assert chosen.nonce == "4"
    assert choose_challenge(reversed(offered)) == chosen
    by_server = choose_challenge(offered, by_strength=False)
    assert by_server is not None
    assert by_server.nonce == "1"


def test_choose_skips_what_cannot_be_answered() -> None:
    basic = Challenge("", "", scheme="Basic", params=(AuthParam("realm", "r"),))
    unknown = _offer("AKAv1-MD5", "1")
    conf_only = Challenge("r", "2", qop=("auth-conf",))
    assert choose_challenge([basic, unknown, conf_only]) is None
    assert choose_challenge([]) is None
    legacy = Challenge("r", "3")
    assert choose_challenge([basic, unknown, legacy, conf_only]) is legacy
    assert choose_challenge([basic, unknown, legacy], by_strength=False) is legacy


def test_choose_ties_go_to_the_first_offered() -> None:
    first, second = _offer("SHA-256", "1"), _offer("SHA-256", "2")
    assert choose_challenge([first, second]) is first


# --- real-world header values -----------------------------------------------------


def test_asterisk_pjsip_challenge() -> None:
    # res_pjsip writes no spaces after commas and a lower-case algorithm.
    challenge = Challenge.parse(
        'Digest realm="asterisk",nonce="1596036193/9bd4e3ac7f8b5ddf7c0da0ec3f9e6c31",'
        'opaque="5d9d1d8b3ac7b17c",algorithm=md5,qop="auth"'
    )
    assert challenge.realm == "asterisk"
    assert challenge.nonce == "1596036193/9bd4e3ac7f8b5ddf7c0da0ec3f9e6c31"
    assert challenge.algorithm is Algorithm.MD5
    assert challenge.qop == ("auth",)
    assert challenge.opaque == "5d9d1d8b3ac7b17c"


def test_asterisk_chan_sip_challenge() -> None:
    challenge = Challenge.parse('Digest algorithm=MD5, realm="asterisk", nonce="3c7a6e0b"')
    assert (challenge.realm, challenge.nonce, challenge.qop) == ("asterisk", "3c7a6e0b", ())


def test_kamailio_style_challenge_with_odd_order_spacing_and_case() -> None:
    challenge = Challenge.parse(
        'digest  NONCE = "Xw7aZl8O2W1hVQ4i0F0xX8Q2vT3kXk5B" ,REALM="sip.example.org",'
        'QOP="auth-int , auth",\t ALGORITHM = "SHA-256" , Stale=True, Opaque=""'
    )
    assert challenge == Challenge(
        "sip.example.org",
        "Xw7aZl8O2W1hVQ4i0F0xX8Q2vT3kXk5B",
        opaque="",
        algorithm=Algorithm.SHA_256,
        qop=("auth-int", "auth"),
        stale=True,
    )


def test_kamailio_style_challenges_with_extra_params() -> None:
    value = (
        'Digest realm="kamailio.org", nonce="Z0x1YmN2", qop="auth", algorithm=SHA-512-256, '
        'x-kam-id=7, Digest realm="kamailio.org", nonce="Z0x1YmN3", qop="auth", algorithm=MD5'
    )
    strongest = choose_challenge(parse_challenges(value))
    assert strongest is not None
    assert strongest.algorithm is Algorithm.SHA_512_256
    assert strongest.params == (AuthParam("x-kam-id", "7", quoted=False),)
    assert strongest.param("X-KAM-ID") == "7"


def test_phone_authorization_with_quoted_qop_and_nc() -> None:
    # Some phones quote qop and nc although both are tokens.
    credentials = Credentials.parse(
        'Digest USERNAME="1001",Realm="asterisk",nonce="1596036193/9bd4e3ac",'
        'uri="sip:pbx.example.com;transport=udp",response="0123456789abcdef0123456789abcdef",'
        'ALGORITHM=MD5,cnonce="abc",qop="auth",nc="00000002",opaque="5d9d"'
    )
    assert credentials.username == "1001"
    assert credentials.realm == "asterisk"
    assert credentials.uri == "sip:pbx.example.com;transport=udp"
    assert credentials.qop == "auth"
    assert credentials.nc == 2
    assert credentials.algorithm is Algorithm.MD5
    assert credentials.opaque == "5d9d"


def test_verify_a_phone_register() -> None:
    challenge = Challenge.parse(
        'Digest realm="asterisk",nonce="1596036193/9bd4e3ac",opaque="5d9d",algorithm=md5,qop="auth"'
    )
    credentials = authorize(
        challenge, username="1001", password="s3cret", method="REGISTER", uri="sip:pbx", nc=3
    )
    header = str(credentials)
    assert header.startswith('Digest username="1001", realm="asterisk"')
    assert "algorithm=MD5" in header
    assert verify(Credentials.parse(header), method="REGISTER", password="s3cret")


# --- errors -------------------------------------------------------------------

BAD_CHALLENGES = [
    "",
    "   ",
    ",",
    'Digest nonce="n"',
    'Digest realm="r"',
    'Digest realm="r, nonce="n"',
    'Digest realm="r", nonce="n", realm="s"',
    'realm="r", nonce="n"',
    "Digest realm",
    'Digest realm=, nonce="n"',
    "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
    'Digest realm="r" nonce="n"',
    'Digest realm="r",nonce="n", qop="auth, a b"',
    'Digest realm="a\rb", nonce="n"',
    'Digest realm="a\nb", nonce="n"',
    'Digest realm="a\\\nb", nonce="n"',
    'Digest realm="\ud800", nonce="n"',
    'Digest realm="r", nonce="n", algorithm="MD 5"',
    'Digest realm="r", nonce="n", charset="UTF 8"',
    'Digest\t\r\nrealm="r", nonce="n"',
]


@pytest.mark.parametrize("value", BAD_CHALLENGES)
def test_bad_challenges(value: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_challenges(value)
    assert err.value.status_hint == 400


def test_challenge_parse_wants_exactly_one() -> None:
    with pytest.raises(ParseError, match="one challenge"):
        Challenge.parse('Digest realm="a", nonce="1", Digest realm="b", nonce="2"')


GOOD_CREDENTIALS = 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="00"'

BAD_CREDENTIALS = [
    "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
    'Basic realm="x"',
    'Digest realm="r", nonce="n", uri="sip:x", response="00"',
    'Digest username="u", realm="r", nonce="n", response="00"',
    'Digest username="u", realm="r", nonce="n", uri="sip:x"',
    GOOD_CREDENTIALS + ", qop=auth",
    GOOD_CREDENTIALS + ', qop=auth, cnonce="c"',
    GOOD_CREDENTIALS + ', qop=auth, cnonce="c", nc=1',
    GOOD_CREDENTIALS + ', qop=auth, cnonce="c", nc=0000000g',
    GOOD_CREDENTIALS + ', qop=auth, cnonce="c", nc=000000001',
    GOOD_CREDENTIALS + ', qop="a b", cnonce="c", nc=00000001',
    GOOD_CREDENTIALS + ', username="v"',
    GOOD_CREDENTIALS + ", " + GOOD_CREDENTIALS,
    GOOD_CREDENTIALS + ', algorithm="no token"',
]


@pytest.mark.parametrize("value", BAD_CREDENTIALS)
def test_bad_credentials(value: str) -> None:
    with pytest.raises(ParseError) as err:
        Credentials.parse(value)
    assert err.value.status_hint == 400


def test_good_credentials_base_case_parses() -> None:
    # The base of BAD_CREDENTIALS must itself be fine, or those tests prove nothing.
    credentials = Credentials.parse(GOOD_CREDENTIALS)
    assert credentials == Credentials("u", "r", "n", "sip:x", "00")
    assert str(credentials) == GOOD_CREDENTIALS


# --- properties -----------------------------------------------------------------

# Fragments of the grammar, so that random input gets past the first token.
_FRAGMENTS = st.sampled_from(
    [
        "Digest",
        "Basic",
        " ",
        "\t",
        "\r\n",
        "\r\n ",
        ",",
        "=",
        '"',
        "\\",
        "realm",
        "nonce",
        "qop",
        "nc",
        "cnonce",
        "uri",
        "response",
        "username",
        "username*",
        "algorithm",
        "stale",
        "userhash",
        "domain",
        "charset",
        "auth",
        "auth-int",
        "MD5-sess",
        "SHA-512-256",
        "00000001",
        "true",
        "UTF-8''%C3%A4",
        "x",
        "\x00",
        "\u00e4",
        "\ud800",
    ]
)
_GRAMMARISH = st.lists(_FRAGMENTS, max_size=40).map("".join)
_PARSERS: list[Callable[[str], object]] = [parse_challenges, Challenge.parse, Credentials.parse]


def _parse_error_of(parser: Callable[[str], object], text: str) -> ParseError | None:
    try:
        parser(text)
    except ParseError as exc:
        return exc
    return None


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _GRAMMARISH))
def test_parsers_raise_only_parse_error(text: str) -> None:
    # Anything but ParseError escapes _parse_error_of and fails the test.
    for parser in _PARSERS:
        error = _parse_error_of(parser, text)
        assert error is None or error.status_hint == 400
    assert Algorithm.parse(text) in (None, *Algorithm)


_TOKENS = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]+", fullmatch=True)
_QUOTABLE = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]))
_URIS = st.text(st.characters(exclude_characters="\r\n \t", exclude_categories=["Cs"]), min_size=1)
_ALGORITHMS = st.one_of(
    st.none(),
    st.sampled_from(list(Algorithm)),
    _TOKENS.filter(lambda t: Algorithm.parse(t) is None),
)
_RESERVED = {
    "realm",
    "domain",
    "nonce",
    "opaque",
    "stale",
    "algorithm",
    "qop",
    "userhash",
    "charset",
    "username",
    "username*",
    "uri",
    "response",
    "cnonce",
    "nc",
}
_EXTRA_PARAMS = st.lists(
    st.one_of(
        st.builds(AuthParam, _TOKENS, _QUOTABLE, st.just(True)),
        st.builds(AuthParam, _TOKENS, _TOKENS, st.just(False)),
    ).filter(lambda p: p.name.lower() not in _RESERVED),
    max_size=3,
).map(tuple)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        Challenge,
        _QUOTABLE,
        _QUOTABLE,
        opaque=st.one_of(st.none(), _QUOTABLE),
        algorithm=_ALGORITHMS,
        qop=st.lists(_TOKENS, max_size=3).map(tuple),
        stale=st.booleans(),
        domain=st.lists(_URIS, max_size=3).map(tuple),
        userhash=st.booleans(),
        charset=st.one_of(st.none(), _TOKENS),
        params=_EXTRA_PARAMS,
    )
)
def test_challenge_round_trip(challenge: Challenge) -> None:
    assert Challenge.parse(str(challenge)) == challenge
    assert parse_challenges(f"{challenge}, {challenge}") == [challenge, challenge]


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        Credentials,
        _QUOTABLE,
        _QUOTABLE,
        _QUOTABLE,
        _QUOTABLE,
        _QUOTABLE,
        algorithm=_ALGORITHMS,
        opaque=st.one_of(st.none(), _QUOTABLE),
        userhash=st.booleans(),
        params=_EXTRA_PARAMS,
    ),
    st.one_of(st.none(), st.tuples(_TOKENS, _QUOTABLE, st.integers(0, 2**32 - 1))),
)
def test_credentials_round_trip(
    credentials: Credentials, qop_cnonce_nc: tuple[str, str, int] | None
) -> None:
    if qop_cnonce_nc is not None:
        qop, cnonce, nc = qop_cnonce_nc
        credentials = Credentials(
            credentials.username,
            credentials.realm,
            credentials.nonce,
            credentials.uri,
            credentials.response,
            algorithm=credentials.algorithm,
            cnonce=cnonce,
            opaque=credentials.opaque,
            qop=qop,
            nc=nc,
            userhash=credentials.userhash,
            params=credentials.params,
        )
    assert Credentials.parse(str(credentials)) == credentials


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from([a for a in Algorithm if a.available]),
    _QUOTABLE,
    st.text(),
    st.sampled_from([(), ("auth",), ("auth-int",), ("auth", "auth-int")]),
    st.binary(),
)
def test_authorize_then_verify(
    algorithm: Algorithm, username: str, password: str, qop: tuple[str, ...], body: bytes
) -> None:
    password = password.encode("utf-8", "replace").decode("utf-8")
    challenge = Challenge("realm", "nonce", algorithm=algorithm, qop=qop)
    credentials = authorize(
        challenge, username=username, password=password, method="INVITE", uri="sip:x", body=body
    )
    parsed = Credentials.parse(str(credentials))
    assert verify(parsed, method="INVITE", body=body, password=password)
    assert not verify(parsed, method="INVITE", body=body, password=password + "x")
