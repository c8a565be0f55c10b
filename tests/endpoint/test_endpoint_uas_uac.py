"""Two Endpoints calling each other over loopback, on both backends, in virtual time."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

import anyio
import pytest

from trio_sip.endpoint import Dialog, DialogState, Endpoint
from trio_sip.message import NameAddr, Request

from ._helpers import BOUND, answer, running_endpoint, serve, uri_of

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


@pytest.mark.parametrize("proto", ["udp", "tcp"])
async def test_call_and_bye(proto: str) -> None:
    async with (
        running_endpoint(proto) as uas,
        running_endpoint(proto) as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, answer)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            provisionals = [r.status async for r in call.provisionals()]
            final = await call.wait_final()
        assert final.status == 200
        assert 180 in provisionals
        dialog = call.dialogs[0]
        assert dialog.state is DialogState.CONFIRMED
        assert dialog.remote_target.port == uas.dispatcher.legs[0].port
        # A dialog's requests take its Call-ID and CSeq, not given ones.
        with pytest.raises(ValueError, match="dialog"):
            await uac.new_request("INFO", dialog, call_id="other@here")
        (theirs,) = uas.dialogs
        assert theirs.id == (dialog.call_id, dialog.remote_tag, dialog.local_tag)
        # Early from the 180, confirmed by the 200 on the callee's side too.
        assert theirs.state is DialogState.CONFIRMED
        with anyio.fail_after(BOUND):
            bye = await uac.request(dialog, "BYE")
            await uas.wait_dialog_ended(theirs)
        assert bye.status == 200
        assert uac.dialogs == ()
        assert uas.dialogs == ()
        assert uas.statistics().pending_2xx == 0  # the ACK arrived
        tg.cancel_scope.cancel()


async def test_options_answered_by_the_endpoint() -> None:
    async with running_endpoint(supported=("timer",)) as uas, running_endpoint() as uac:
        with anyio.fail_after(BOUND):
            response = await uac.request(uri_of(uas), "OPTIONS")
        assert response.status == 200
        assert "INVITE" in (response.headers.get("allow") or "")
        assert response.headers.get("accept") == "application/sdp"
        assert response.headers.get("supported") == "timer"
        assert response.to.tag is not None


async def test_a_refused_request_inside_a_dialog_leaves_it_be() -> None:
    # 12.3: only a non-2xx final response to the INVITE ends an early dialog.
    # An INFO refused inside it, early (after the 180) or confirmed (after
    # the 200), leaves the dialog to both sides.
    go_on = anyio.Event()

    async def ring_then_answer(ep: Endpoint, request: Request) -> None:
        if request.method == "INVITE":
            await ep.respond(request, 180)
            await go_on.wait()
            await ep.respond(request, 200)
        elif request.method == "INFO":
            await ep.respond(request, 415)
        else:
            await ep.respond(request, 200)

    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, ring_then_answer)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            async with aclosing(call.provisionals()) as provisionals:
                async for provisional in provisionals:
                    assert provisional.status == 180
                    break
            (early,) = call.dialogs
            assert (await uac.request(early, "INFO")).status == 415
            (theirs,) = uas.dialogs
            assert theirs.state is early.state is DialogState.EARLY
            go_on.set()
            assert (await call.wait_final()).status == 200
            assert (await uac.request(early, "INFO")).status == 415
            assert theirs.state is early.state is DialogState.CONFIRMED
            assert (await uac.request(early, "BYE")).status == 200
            await uas.wait_dialog_ended(theirs)
        tg.cancel_scope.cancel()


async def test_a_request_outside_a_dialog_can_continue_a_call_id_and_cseq() -> None:
    async with running_endpoint() as uas, running_endpoint() as uac:
        with anyio.fail_after(BOUND):
            first = await uac.new_request("OPTIONS", uri_of(uas), call_id="reg-1@here", cseq=41)
            await first.wait_final()
            second = await uac.new_request("OPTIONS", uri_of(uas), call_id="reg-1@here", cseq=42)
            await second.wait_final()
            fresh = await uac.new_request("OPTIONS", uri_of(uas))
            await fresh.wait_final()
        sent = [(c.request.call_id, c.request.cseq.seq) for c in (first, second)]
        assert sent == [("reg-1@here", 41), ("reg-1@here", 42)]
        assert fresh.request.call_id != "reg-1@here"
        assert all(c.final is not None and c.final.status == 200 for c in (first, second))


@pytest.mark.parametrize(
    "kwargs",
    [{"call_id": "two words"}, {"call_id": ""}, {"call_id": "a\r\nVia: x"}, {"cseq": 2**31}],
)
async def test_a_call_id_or_cseq_that_cannot_be_sent_is_refused(kwargs: dict[str, Any]) -> None:
    async with running_endpoint() as uas, running_endpoint() as uac:
        with pytest.raises(ValueError, match=r"Call-ID|CSeq"):
            await uac.new_request("OPTIONS", uri_of(uas), **kwargs)
        assert uac.statistics().client_transactions == 0


@pytest.mark.parametrize(("method", "status"), [("SUBSCRIBE", 405), ("FROBNICATE", 501)])
async def test_unknown_and_unsupported_methods(method: str, status: int) -> None:
    async with running_endpoint() as uas, running_endpoint() as uac:
        with anyio.fail_after(BOUND):
            response = await uac.request(uri_of(uas), method)
        assert response.status == status
        if status == 405:
            assert "BYE" in (response.headers.get("allow") or "")


async def test_in_dialog_request_without_dialog_gets_481() -> None:
    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, answer)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            assert (await call.wait_final()).status == 200
            dialog = call.dialogs[0]
            # The callee forgets the call: our BYE then belongs to no dialog.
            for theirs in uas.dialogs:
                uas._end_dialog(theirs)
            bye = await uac.request(dialog, "BYE")
        assert bye.status == 481
        tg.cancel_scope.cancel()


async def test_cseq_going_backwards_gets_500_with_retry_after() -> None:
    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, answer)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            await call.wait_final()
            dialog = call.dialogs[0]
            assert (await uac.request(dialog, "INFO")).status == 200
            assert dialog.local_seq is not None
            dialog.local_seq -= 5
            response = await uac.request(dialog, "INFO")
        assert response.status == 500
        assert response.headers.get("retry-after") is not None
        tg.cancel_scope.cancel()


async def test_100_trying_after_200ms_when_the_application_is_slow() -> None:
    async def slow(ep: Endpoint, request: Request) -> None:
        await anyio.sleep(1)
        await ep.respond(request, 486)

    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, slow)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            start = anyio.current_time()
            times = [(r.status, anyio.current_time() - start) async for r in call.provisionals()]
            final = await call.wait_final()
        assert final.status == 486
        assert [status for status, _ in times] == [100]
        assert times[0][1] == pytest.approx(0.2, abs=0.01)
        tg.cancel_scope.cancel()


async def test_no_100_trying_when_answered_at_once() -> None:
    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, answer)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            statuses = [r.status async for r in call.provisionals()]
        assert statuses == [180]
        tg.cancel_scope.cancel()


async def test_cancel_by_the_caller_scope_gives_487() -> None:
    seen: list[Request] = []

    async def ring(ep: Endpoint, request: Request) -> None:
        await ep.respond(request, 180)

    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, ring, seen)
        call = await uac.new_request("INVITE", uri_of(uas))
        with anyio.move_on_after(5) as ring_timeout:
            await call.wait_final()
        assert ring_timeout.cancelled_caught
        with anyio.fail_after(BOUND):
            final = await call.wait_final()
        assert final.status == 487
        assert uas.was_cancelled(seen[0])
        assert uac.dialogs == ()
        tg.cancel_scope.cancel()


async def test_leaving_the_endpoint_sends_bye() -> None:
    async with running_endpoint() as uas, anyio.create_task_group() as tg:
        tg.start_soon(serve, uas, answer)
        async with running_endpoint() as uac:
            with anyio.fail_after(BOUND):
                call = await uac.new_request("INVITE", uri_of(uas))
                await call.wait_final()
            (theirs,) = uas.dialogs
            start = anyio.current_time()
        with anyio.fail_after(1):
            await uas.wait_dialog_ended(theirs)
        assert anyio.current_time() - start < 1
        tg.cancel_scope.cancel()


async def _established(uac: Endpoint, uas: Endpoint) -> Dialog:
    with anyio.fail_after(BOUND):
        call = await uac.new_request("INVITE", uri_of(uas))
        assert (await call.wait_final()).status == 200
    return call.dialogs[0]


async def test_reinvite_glare_gets_491_and_second_invite_500() -> None:
    async def slow_reinvite(ep: Endpoint, request: Request) -> None:
        if request.method == "INVITE" and request.to.tag is not None:
            await anyio.sleep(2)
        await answer(ep, request, ring=False)

    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, slow_reinvite)
        tg.start_soon(serve, uac, answer)
        dialog = await _established(uac, uas)
        (theirs,) = uas.dialogs
        with anyio.fail_after(BOUND):
            reinvite = await uac.new_request("INVITE", dialog)
            await anyio.sleep(0.1)
            # Glare: the callee re-INVITEs while our re-INVITE is pending (14.2).
            crossing = await uas.request(theirs, "INVITE")
            # A second re-INVITE before the first had its final response (14.2).
            second = await uac.request(dialog, "INVITE")
            first = await reinvite.wait_final()
        assert crossing.status == 491
        assert second.status == 500
        assert second.headers.get("retry-after") is not None
        assert first.status == 200
        assert dialog.confirmed
        tg.cancel_scope.cancel()


async def test_update_refreshes_the_target_both_ways() -> None:
    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, answer)
        dialog = await _established(uac, uas)
        (theirs,) = uas.dialogs
        port = uac.dispatcher.legs[0].port
        dialog.local_contact = NameAddr.parse(f"<sip:moved@127.0.0.1:{port}>")
        theirs.local_contact = NameAddr.parse(
            f"<sip:alsomoved@127.0.0.1:{uas.dispatcher.legs[0].port}>"
        )
        with anyio.fail_after(BOUND):
            response = await uac.request(dialog, "UPDATE")
        assert response.status == 200
        assert theirs.remote_target.user == "moved"
        assert dialog.remote_target.user == "alsomoved"
        tg.cancel_scope.cancel()


async def test_closing_answers_pending_invites() -> None:
    async def never(ep: Endpoint, request: Request) -> None:
        await anyio.sleep_forever()

    async with running_endpoint() as uac, anyio.create_task_group() as tg:
        async with running_endpoint() as uas:
            tg.start_soon(serve, uas, never)
            call = await uac.new_request("INVITE", uri_of(uas))
            await anyio.sleep(1)
        with anyio.fail_after(1):
            final = await call.wait_final()
        assert final.status == 480
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("abandon_after", [None, 1.0, 0.0])
async def test_leaving_waits_for_a_vanished_peer_unless_abandoned(
    abandon_after: float | None,
) -> None:
    # The callee stops answering anything: the BYE of a closing Endpoint
    # waits its close_timeout for an answer, or until abandon_close().
    async with running_endpoint() as uas, anyio.create_task_group() as tg:
        tg.start_soon(serve, uas, answer)
        uac = Endpoint(uas.dispatcher.__class__(["udp:127.0.0.1:0"]), user="ep")
        async with uac.dispatcher, uac:
            await _established(uac, uas)
            uas.dispatcher.set_receiver(None)
            if abandon_after == 0.0:
                uac.abandon_close()
            elif abandon_after is not None:
                tg.start_soon(_abandon_later, uac, abandon_after)
            start = anyio.current_time()
        took = anyio.current_time() - start
        if abandon_after is None:
            assert took == pytest.approx(uac.close_timeout, abs=0.5)
        else:
            assert took == pytest.approx(abandon_after, abs=0.1)
        if abandon_after != 0.0:
            # The BYE was pending, then timed out or given up on: the dialog is over.
            assert uac.dialogs == ()
        tg.cancel_scope.cancel()


async def _abandon_later(ep: Endpoint, delay: float) -> None:
    await anyio.sleep(delay)
    ep.abandon_close()
