"""Sans-IO tests of the dialog state (RFC 3261 section 12)."""

from __future__ import annotations

import pytest

from trio_sip.endpoint import (
    Dialog,
    DialogError,
    DialogId,
    DialogState,
    dialog_id_of_request,
    dialog_id_of_response,
)
from trio_sip.message import URI, NameAddr, Request, Response, make_response, parse_message


def invite(*, record_route: tuple[str, ...] = (), uri: str = "sip:bob@b.example") -> Request:
    lines = [
        f"INVITE {uri} SIP/2.0",
        "Via: SIP/2.0/UDP a.example:5060;branch=z9hG4bK1",
        "Max-Forwards: 70",
        "From: Alice <sip:alice@a.example>;tag=AliceTag",
        "To: Bob <sip:bob@b.example>",
        "Call-ID: call-1",
        "CSeq: 10 INVITE",
        "Contact: <sip:alice@10.0.0.1:5070>",
        *(f"Record-Route: {rr}" for rr in record_route),
        "Content-Length: 0",
    ]
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def answer(request: Request, status: int, contact: str = "<sip:bob@10.0.0.2>") -> Response:
    return make_response(request, status, to_tag="BobTag", headers=[("Contact", contact)])


RR = ("<sip:p1.example;lr>", "<sip:p2.example;lr>")


def test_uac_dialog_from_2xx_reverses_record_route() -> None:
    req = invite(record_route=RR)
    dialog = Dialog.from_uac(req, answer(req, 200))
    assert dialog.id == DialogId("call-1", "alicetag", "bobtag")
    assert dialog.state is DialogState.CONFIRMED
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p2.example;lr", "sip:p1.example;lr"]
    assert dialog.remote_target == URI.parse("sip:bob@10.0.0.2")
    assert dialog.local_seq == 10
    assert dialog.remote_seq is None
    assert dialog.is_uac
    assert not dialog.secure


def test_uas_dialog_keeps_record_route_order() -> None:
    req = invite(record_route=RR)
    dialog = Dialog.from_uas(req, "BobTag", confirmed=False)
    assert dialog.id == DialogId("call-1", "bobtag", "alicetag")
    assert dialog.state is DialogState.EARLY
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p1.example;lr", "sip:p2.example;lr"]
    assert dialog.remote_target == URI.parse("sip:alice@10.0.0.1:5070")
    assert dialog.remote_seq == 10
    assert dialog.local_seq is None


def test_ids_of_received_messages_match_the_dialog() -> None:
    req = invite()
    resp = answer(req, 180)
    uac = Dialog.from_uac(req, resp)
    assert dialog_id_of_response(resp) == uac.id
    bye = uac.create_request("BYE")
    uas = Dialog.from_uas(req, "BobTag", confirmed=True)
    assert dialog_id_of_request(bye) == uas.id
    assert dialog_id_of_request(req) is None
    assert dialog_id_of_response(make_response(req, 100)) is None


def test_early_dialog_confirmed_by_2xx_recomputes_route_set() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req, 183))
    assert dialog.state is DialogState.EARLY
    assert dialog.route_set == []
    ok = answer(invite(record_route=RR), 200, "<sip:bob@10.0.0.3>")
    dialog.update_from_response(ok, "INVITE")
    assert dialog.confirmed
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p2.example;lr", "sip:p1.example;lr"]
    assert dialog.remote_target == URI.parse("sip:bob@10.0.0.3")


def test_in_dialog_request_loose_routing_and_cseq() -> None:
    req = invite(record_route=RR)
    dialog = Dialog.from_uac(req, answer(req, 200))
    bye = dialog.create_request("BYE", [("Reason", "SIP;cause=200")])
    assert bye.uri == URI.parse("sip:bob@10.0.0.2")
    assert bye.headers.get_all("route") == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert bye.cseq.seq == 11
    assert bye.cseq.method == "BYE"
    # The tags as the exchange wrote them, not re-spelt (peers compare them byte for byte).
    assert bye.from_.tag == "AliceTag"
    assert bye.to.tag == "BobTag"
    assert bye.headers.get("reason") == "SIP;cause=200"
    assert dialog.create_request("INFO").cseq.seq == 12


def test_strict_router_first_becomes_request_uri() -> None:
    req = invite(record_route=("<sip:p1.example;lr>", "<sip:strict.example>"))
    dialog = Dialog.from_uac(req, answer(req, 200))
    bye = dialog.create_request("BYE")
    assert bye.uri == URI.parse("sip:strict.example")
    assert bye.headers.get_all("route") == ["<sip:p1.example;lr>", "<sip:bob@10.0.0.2>"]


def test_ack_for_2xx_keeps_invite_cseq_and_does_not_count() -> None:
    req = invite(record_route=RR)
    dialog = Dialog.from_uac(req, answer(req, 200))
    ack = dialog.create_ack(10)
    assert ack.method == "ACK"
    assert ack.cseq.seq == 10
    assert ack.cseq.method == "ACK"
    assert "via" not in ack.headers
    assert ack.headers.get_all("route") == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert dialog.local_seq == 10
    with pytest.raises(DialogError):
        dialog.create_request("ACK")


def test_uas_first_request_and_remote_cseq_going_backwards() -> None:
    req = invite()
    dialog = Dialog.from_uas(req, "BobTag", confirmed=True)
    assert dialog.create_request("BYE").cseq.seq == 1
    bye = Dialog.from_uac(req, answer(req, 200)).create_request("BYE")  # CSeq 11
    assert dialog.check_request(bye) is None
    assert dialog.remote_seq == 11
    assert dialog.check_request(req) == 500  # CSeq 10 < 11
    assert dialog.remote_seq == 11


def test_target_refresh_on_reinvite_and_update() -> None:
    req = invite()
    uac = Dialog.from_uac(req, answer(req, 200))
    uas = Dialog.from_uas(req, "BobTag", confirmed=True)
    for method, host in (("INVITE", "10.9.9.9"), ("UPDATE", "10.8.8.8")):
        uac.local_contact = NameAddr.parse(f"<sip:alice@{host}>")
        refresh = uac.create_request(method)
        assert refresh.headers.get("contact") == f"<sip:alice@{host}>"
        assert uas.check_request(refresh) is None
        assert uas.remote_target == URI.parse(f"sip:alice@{host}")
    uac.local_contact = NameAddr.parse("<sip:alice@10.7.7.7>")
    info = uac.create_request("INFO", [("Contact", "<sip:alice@10.7.7.7>")])
    uas.check_request(info)
    assert uas.remote_target == URI.parse("sip:alice@10.8.8.8")


def test_secure_only_for_sips_over_tls() -> None:
    req = invite(uri="sips:bob@b.example")
    assert not Dialog.from_uac(req, answer(req, 200)).secure
    req.headers.set("Via", "SIP/2.0/TLS a.example;branch=z9hG4bK2")
    assert Dialog.from_uac(req, answer(req, 200)).secure


def test_errors_without_tag_or_contact() -> None:
    req = invite()
    # A provisional without To tag makes no dialog (a 2xx makes one with the
    # null tag: test_dialog_audit.py).
    with pytest.raises(DialogError):
        Dialog.from_uac(req, make_response(req, 180))
    req.headers.remove("contact")
    with pytest.raises(DialogError):
        Dialog.from_uas(req, "t", confirmed=True)
