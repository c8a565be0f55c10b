"""Transaction matching keys (RFC 3261 17.1.3, 17.2.3, 9.2)."""

from __future__ import annotations

import pytest
from tx_support import request, response

from trio_sip.errors import ParseError
from trio_sip.message import Headers, Request, make_ack, make_cancel
from trio_sip.transaction.keys import (
    ClientKey,
    LegacyServerKey,
    ServerKey,
    ack_key,
    cancel_target_key,
    client_key,
    server_key,
)

LEGACY = "2543-branch-less"


# ----- RFC 3261 server keys ------------------------------------------------------


def test_server_key_fields() -> None:
    key = server_key(request(sent_by="PC33.Atlanta.Example.COM"))
    assert key == ServerKey("z9hg4bk776asdhds", "pc33.atlanta.example.com", 5060, "INVITE")


def test_retransmission_matches() -> None:
    assert server_key(request()) == server_key(request())


def test_same_branch_different_sent_by_do_not_match() -> None:
    a = request(sent_by="pc33.atlanta.example.com")
    assert server_key(a) != server_key(request(sent_by="pc34.atlanta.example.com"))
    assert server_key(a) != server_key(request(sent_by="pc33.atlanta.example.com:5070"))


def test_sent_by_port_is_default_filled() -> None:
    assert server_key(request(sent_by="pc33.atlanta.example.com:5060")) == server_key(request())
    tls = server_key(request(transport="TLS", sent_by="h.example"))
    assert tls == server_key(request(transport="TLS", sent_by="h.example:5061"))
    assert isinstance(tls, ServerKey)
    assert tls.port == 5061


def test_branch_compares_case_insensitively() -> None:
    # RFC 3261 7.3.1: parameter values are case-insensitive unless stated.
    assert server_key(request(branch="z9hG4bKAbC")) == server_key(request(branch="z9hG4bKaBc"))


def test_received_and_rport_do_not_change_the_key() -> None:
    plain = request()
    stamped = request()
    via = stamped.top_via.with_params(received="192.0.2.1", rport="5070")
    stamped.headers.pop_first_value("via")
    stamped.headers.prepend("Via", str(via))
    assert server_key(plain) == server_key(stamped)


def test_ack_for_non_2xx_matches_the_invite() -> None:
    invite = request()
    ack = make_ack(invite, response(invite, 486))
    assert server_key(ack) == server_key(invite)
    assert server_key(ack).method == "INVITE"


def test_ack_with_its_own_branch_does_not_match() -> None:
    # The ACK for a 2xx is a new transaction with a new branch (13.2.2.4).
    invite = request()
    ack = request("ACK", branch="z9hG4bKnewone", to_tag="a6c85cf")
    assert server_key(ack) != server_key(invite)


def test_other_methods_keep_their_method() -> None:
    assert server_key(request("BYE")) != server_key(request("INVITE"))
    assert server_key(request("BYE")).method == "BYE"


def test_cancel_key_differs_but_cancel_target_key_equals_invite() -> None:
    invite = request()
    cancel = make_cancel(invite)
    assert server_key(cancel) != server_key(invite)
    assert server_key(cancel).method == "CANCEL"
    assert cancel_target_key(cancel) == server_key(invite)
    assert cancel_target_key(cancel, "OPTIONS") == server_key(request("OPTIONS"))


def test_ack_key_of_rfc3261_invite_is_its_server_key() -> None:
    invite = request()
    assert ack_key(invite, response(invite, 486)) == server_key(invite)


# ----- RFC 2543 fallback ---------------------------------------------------------


def test_legacy_key_without_magic_cookie() -> None:
    for branch in (LEGACY, None):
        key = server_key(request(branch=branch))
        assert isinstance(key, LegacyServerKey)
        assert key.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
        assert key.cseq == 314159
        assert key.from_tag == "1928301774"
        assert key.to_tag is None
        assert key.method == "INVITE"
    assert server_key(request(branch=LEGACY)) == server_key(request(branch=LEGACY))


@pytest.mark.parametrize(
    "change",
    [
        {"uri": "sip:carol@biloxi.example.com"},
        {"from_tag": "other"},
        {"call_id": "other@x"},
        {"cseq": 1},
        {"sent_by": "elsewhere.example.com"},
        {"to_tag": "sometag"},
    ],
)
def test_legacy_key_fields_all_count(change: dict[str, object]) -> None:
    base = request(branch=LEGACY)
    other = request(branch=LEGACY, **change)  # type: ignore[arg-type]
    assert server_key(base) != server_key(other)


def test_legacy_uri_compares_by_rfc3261_rules() -> None:
    # 19.1.4: the host part compares case-insensitively.
    a = request(branch=LEGACY, uri="sip:bob@BILOXI.example.com")
    assert server_key(a) == server_key(request(branch=LEGACY))


def test_legacy_received_rport_and_via_spelling_ignored() -> None:
    plain = request(branch=LEGACY)
    stamped = request(branch=LEGACY, sent_by="PC33.atlanta.example.com:5060")
    via = stamped.top_via.with_params(received="192.0.2.1", rport=None)
    stamped.headers.pop_first_value("via")
    stamped.headers.prepend("Via", str(via))
    assert server_key(plain) == server_key(stamped)


def test_legacy_ack_matches_through_ack_key() -> None:
    # RFC 2543: the ACK carries the To tag of the response, which the INVITE
    # lacked; the Endpoint files the transaction under ack_key as well.
    invite = request(branch=LEGACY)
    final = response(invite, 486, to_tag="srvtag")
    ack = make_ack(invite, final)
    assert server_key(ack) != server_key(invite)
    assert server_key(ack) == ack_key(invite, final)
    # An ACK for another response (another To tag) does not match.
    other = make_ack(invite, response(invite, 486, to_tag="othertag"))
    assert server_key(other) != ack_key(invite, final)


def test_legacy_reinvite_ack_matches_directly() -> None:
    # In a dialog the INVITE already has the To tag, so the ACK key is the INVITE key.
    invite = request(branch=LEGACY, to_tag="a6c85cf")
    final = response(invite, 491)
    assert server_key(make_ack(invite, final)) == server_key(invite)


def test_legacy_cancel() -> None:
    invite = request(branch=LEGACY)
    cancel = make_cancel(invite)
    assert server_key(cancel) != server_key(invite)
    assert cancel_target_key(cancel) == server_key(invite)


def test_legacy_and_rfc3261_keys_never_collide() -> None:
    assert server_key(request(branch=LEGACY)) != server_key(request())


# ----- client keys ---------------------------------------------------------------


def test_client_key_request_and_response_agree() -> None:
    invite = request()
    key = client_key(invite)
    assert key == ClientKey("z9hg4bk776asdhds", "INVITE")
    for status in (100, 180, 200, 486):
        assert client_key(response(invite, status)) == key


def test_client_key_cancel_differs_from_invite() -> None:
    invite = request()
    cancel = make_cancel(invite)
    assert client_key(cancel) != client_key(invite)
    assert client_key(response(cancel, 200)) == client_key(cancel)


def test_client_key_ignores_lower_vias_and_sent_by() -> None:
    a = request(extra_via=["SIP/2.0/UDP proxy.example;branch=z9hG4bKxyz"])
    b = request(sent_by="somewhere.else")
    assert client_key(a) == client_key(b)


def test_client_key_of_a_branchless_message_matches_nothing_of_ours() -> None:
    assert client_key(request(branch=None)).branch == ""


def test_missing_via_or_cseq_raise_parse_error() -> None:
    no_via = Request("OPTIONS", "sip:a@b", Headers([("CSeq", "1 OPTIONS")]))
    with pytest.raises(ParseError):
        server_key(no_via)
    with pytest.raises(ParseError):
        client_key(no_via)
    no_cseq = Request("OPTIONS", "sip:a@b", Headers([("Via", "SIP/2.0/UDP h;branch=z9hG4bK1")]))
    with pytest.raises(ParseError):
        client_key(no_cseq)
