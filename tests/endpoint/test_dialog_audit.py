"""Dialog behaviour checked against RFC 3261 section 12, beyond test_dialog.py."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from trio_sip.endpoint import Dialog, Endpoint, dialog_id_of_request, dialog_id_of_response
from trio_sip.message import NameAddr, Request, Response, make_response, parse_message

from ._helpers import BOUND, answer, running_endpoint, serve, uri_of


def invite(from_tag: str | None = "AliceTag") -> Request:
    """An INVITE; with ``from_tag=None`` as an RFC 2543 UA sends it."""
    tag = "" if from_tag is None else f";tag={from_tag}"
    lines = [
        "INVITE sip:bob@b.example SIP/2.0",
        "Via: SIP/2.0/UDP a.example:5060;branch=z9hG4bK2543",
        "Max-Forwards: 70",
        f"From: Alice <sip:alice@a.example>{tag}",
        "To: Bob <sip:bob@b.example>",
        "Call-ID: call-2543",
        "CSeq: 7 INVITE",
        "Contact: <sip:alice@10.0.0.1:5070>",
        "Content-Length: 0",
    ]
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def test_uas_dialog_from_request_without_from_tag() -> None:
    # 12.1.1: "A UAS MUST be prepared to receive a request without a tag in
    # the From field, in which case the tag is considered to have a value
    # of null" (RFC 2543 compatibility; RFC 4475 3.4 inv2543).
    req = invite(None)
    dialog = Dialog.from_uas(req, "BobTag", confirmed=True)
    assert dialog.remote_tag == ""
    # The caller's BYE (From still without tag) belongs to this dialog.
    bye = Request("BYE", req.uri, req.headers.copy())
    bye.headers.set("To", "Bob <sip:bob@b.example>;tag=BobTag")
    bye.headers.set("CSeq", "8 BYE")
    assert dialog_id_of_request(bye) == dialog.id
    assert dialog.check_request(bye) is None
    # 12.2.1.1: our requests carry the null remote tag: a To without tag,
    # never an empty (unparsable) ``;tag=``.
    ours = dialog.create_request("BYE")
    assert ours.headers.get("to") == "Alice <sip:alice@a.example>"
    assert ours.to.tag is None
    assert ours.from_.tag == "BobTag"


@pytest.mark.parametrize("side", ["uac", "uas"])
def test_tags_are_repeated_as_written_and_matched_in_any_case(side: str) -> None:
    # Tags are tokens, equal in any case (7.3.1), and the dialog id compares
    # them so; but stacks that compare them byte for byte answer 481 to a
    # request whose tags were re-spelt: ours repeat them as the peer wrote them.
    req = invite("AliceTag")
    if side == "uas":
        dialog = Dialog.from_uas(req, "BobTag", confirmed=True)
        local, remote = "BobTag", "AliceTag"
    else:
        ok = make_response(req, 200, to_tag="BobTag", headers=[("Contact", "<sip:bob@10.0.0.2>")])
        dialog = Dialog.from_uac(req, ok)
        local, remote = "AliceTag", "BobTag"
    assert dialog.id == (req.call_id, local.lower(), remote.lower())
    bye = dialog.create_request("BYE")
    assert (bye.from_.tag, bye.to.tag) == (local, remote)


@pytest.mark.parametrize("name", ["Contact", "m"])
@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_target_refresh_with_callers_contact_carries_one_contact(name: str, method: str) -> None:
    # 8.1.1.8: an INVITE's Contact holds exactly one URI; a target refresh
    # whose caller gives the new Contact (12.2.1.1) must not carry the old
    # one as well, in front of it: the peer would take the old one (12.2.2).
    dialog = Dialog.from_uas(invite(), "BobTag", confirmed=True)
    dialog.local_contact = NameAddr.parse("<sip:bob@10.0.0.2>")
    refresh = dialog.create_request(method, [(name, "<sip:bob@10.0.0.9>")])
    assert refresh.headers.get_all("contact") == ["<sip:bob@10.0.0.9>"]
    # Without a Contact of the caller's, the dialog's own goes in.
    assert dialog.create_request(method).headers.get_all("contact") == ["<sip:bob@10.0.0.2>"]


async def _read_response(sock: anyio.abc.UDPSocket, method: str) -> Response:
    # The final response to ``method`` (provisionals and 2xx retransmissions skipped).
    async for data, _ in sock:
        msg = parse_message(data)
        if isinstance(msg, Response) and msg.cseq.method == method and msg.status >= 200:
            return msg
    raise AssertionError("socket closed")


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_endpoint_call_from_rfc2543_caller_can_be_hung_up() -> None:
    # 12.1.1: the INVITE without From tag answered 2xx makes a dialog whose
    # remote tag is null; the caller's ACK and BYE (From without tag) are in
    # it. Without that dialog the BYE gets 481 and the call never ends.
    async with (
        running_endpoint() as uas,
        await anyio.create_udp_socket(local_host="127.0.0.1") as sock,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, answer)
        port = sock.extra(anyio.abc.SocketAttribute.local_port)
        dst = ("127.0.0.1", uas.dispatcher.legs[0].port)

        def build(method: str, seq: int, branch: str, to: str) -> bytes:
            lines = [
                f"{method} sip:bob@127.0.0.1:{dst[1]} SIP/2.0",
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch}",
                "Max-Forwards: 70",
                "From: <sip:alice@127.0.0.1>",
                f"To: {to}",
                "Call-ID: rfc2543@127.0.0.1",
                f"CSeq: {seq} {method}",
                f"Contact: <sip:alice@127.0.0.1:{port}>",
                "Content-Length: 0",
            ]
            return ("\r\n".join(lines) + "\r\n\r\n").encode()

        with anyio.fail_after(BOUND):
            await sock.sendto(build("INVITE", 1, "inv", "<sip:bob@127.0.0.1>"), *dst)
            ok = await _read_response(sock, "INVITE")
            assert ok.status == 200
            to = ok.headers.get("to")
            assert to is not None
            await sock.sendto(build("ACK", 1, "ack", to), *dst)
            await sock.sendto(build("BYE", 2, "bye", to), *dst)
            bye = await _read_response(sock, "BYE")
        assert bye.status == 200
        assert uas.dialogs == ()
        tg.cancel_scope.cancel()


def test_uac_dialog_from_2xx_without_to_tag() -> None:
    # 12.1.2: "A UAC MUST be prepared to receive a response without a tag in
    # the To field, in which case the tag is considered to have a value of
    # null" (an RFC 2543 UAS). A 100 without tag still belongs to no dialog.
    req = invite()
    ok = make_response(req, 200, headers=[("Contact", "<sip:bob@10.0.0.2>")])
    assert ok.to.tag is None
    dialog = Dialog.from_uac(req, ok)
    assert dialog.remote_tag == ""
    assert dialog_id_of_response(ok) == dialog.id
    assert dialog_id_of_response(make_response(req, 100)) is None
    ack = dialog.create_ack(req.cseq.seq)
    assert ack.to.tag is None
    assert ack.from_.tag == "AliceTag"


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_endpoint_call_to_rfc2543_callee_is_acknowledged_and_can_be_hung_up() -> None:
    # The 2xx of a callee that writes no To tag: before, no dialog was made,
    # no ACK left (the callee retransmitted its 2xx until it gave up) and
    # the call could not be ended.
    async with (
        running_endpoint() as uac,
        await anyio.create_udp_socket(local_host="127.0.0.1") as sock,
    ):
        port = sock.extra(anyio.abc.SocketAttribute.local_port)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", f"sip:bob@127.0.0.1:{port}")
            data, src = await sock.receive()
            invite = parse_message(data)
            assert isinstance(invite, Request)
            ok = make_response(invite, 200, headers=[("Contact", f"<sip:bob@127.0.0.1:{port}>")])
            await sock.sendto(ok.to_bytes(), *src)
            final = await call.wait_final()
            assert final.status == 200
            ack = parse_message((await sock.receive())[0])
            assert isinstance(ack, Request)
            assert ack.method == "ACK"
            assert ack.to.tag is None
            assert ack.cseq.seq == invite.cseq.seq
            (dialog,) = call.dialogs
            assert uac.dialogs == (dialog,)
            bye_call = await uac.new_request("BYE", dialog)
            bye = parse_message((await sock.receive())[0])
            assert isinstance(bye, Request)
            assert (bye.method, bye.to.tag, bye.uri.port) == ("BYE", None, port)
            await sock.sendto(make_response(bye, 200).to_bytes(), *src)
            assert (await bye_call.wait_final()).status == 200


@pytest.mark.anyio
@pytest.mark.virtual_time
@pytest.mark.parametrize("status", [481, 408])
async def test_a_reinvite_answered_481_or_408_ends_the_dialog(status: int) -> None:
    # 12.2.1.2 and 14.1: a 481 or 408 to a request inside a dialog, a
    # re-INVITE included, ends the dialog (before, re-INVITEs were left out
    # and the call lived on with a peer that no longer knew it).
    async def refuse_reinvite(ep: Endpoint, request: Request) -> None:
        if request.method == "INVITE" and request.to.tag is not None:
            await ep.respond(request, status)
        else:
            await answer(ep, request, ring=False)

    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, refuse_reinvite)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            assert (await call.wait_final()).status == 200
            (dialog,) = call.dialogs
            response = await uac.request(dialog, "INVITE")
            assert response.status == status
            await uac.wait_dialog_ended(dialog)
        assert uac.dialogs == ()
        tg.cancel_scope.cancel()
