"""Endpoint.set_request_handler, respond_nowait and wait_sent: the server side with no task.

The handler is called as each request arrives, with what incoming() would
yield; it answers with respond_nowait, which sends over UDP before it
returns and queues, in order, what cannot go at once (a TCP leg) for the
Endpoint's task. The caller is another Endpoint; every response that reaches
it is also noted below the Endpoint (on its Dispatcher's receive path), so
that a 100 Trying the client transaction would swallow is still seen. Both
backends, in virtual time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from contextlib import aclosing

import anyio
import pytest

from trio_sip.endpoint import Endpoint
from trio_sip.message import Request, Response
from trio_sip.transport import Leg

from ._helpers import BOUND, running_endpoint, serve, uri_of

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


def responses_reaching(ep: Endpoint) -> list[int]:
    """The status of every response that reaches ``ep``'s Dispatcher, in order of arrival."""
    statuses: list[int] = []

    def receiver(packet: Request | Response, leg: Leg, source: tuple[str, int]) -> Awaitable[None]:
        if isinstance(packet, Response):
            statuses.append(packet.status)
        return ep.receive(packet, leg, source)

    ep.dispatcher.set_receiver(receiver)
    return statuses


def packets_out(ep: Endpoint) -> int:
    return ep.dispatcher.statistics().packets_out


async def test_an_invite_answered_by_the_handler_goes_out_before_it_returns() -> None:
    # Over UDP the 200 is on the wire when respond_nowait returns; the
    # request never queues for incoming().
    sent_inside: list[int] = []
    async with running_endpoint() as uas, running_endpoint() as uac:

        def handler(request: Request) -> None:
            before = packets_out(uas)
            uas.respond_nowait(request, 200)
            sent_inside.append(packets_out(uas) - before)

        uas.set_request_handler(handler)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            final = await call.wait_final()
        assert final.status == 200
        assert sent_inside == [1]
        assert uas.statistics().incoming_queued == 0
        assert call.dialogs[0].confirmed
        assert len(uas.dialogs) == 1


async def test_the_handler_gets_what_incoming_would_and_nothing_else() -> None:
    # INVITE, INFO and MESSAGE reach it; the ACK, OPTIONS, the CANCEL, BYE and
    # a method outside ``allow`` are the Endpoint's own business.
    seen: list[str] = []
    kept: list[Request] = []
    async with running_endpoint() as uas, running_endpoint() as uac:

        def handler(request: Request) -> None:
            seen.append(request.method)
            if request.method == "INVITE" and request.headers.get("subject") == "ring only":
                kept.append(request)  # left unanswered, for the caller to cancel
                return
            uas.respond_nowait(request, 200)

        uas.set_request_handler(handler)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            assert (await call.wait_final()).status == 200
            dialog = call.dialogs[0]
            await anyio.sleep(1)  # the ACK arrives
            assert uas.statistics().pending_2xx == 0
            options = await uac.request(uri_of(uas), "OPTIONS")
            info = await uac.request(dialog, "INFO")
            message = await uac.request(uri_of(uas), "MESSAGE")
            subscribe = await uac.request(uri_of(uas), "SUBSCRIBE")
            bye = await uac.request(dialog, "BYE")
            ringing = await uac.new_request(
                "INVITE", uri_of(uas), headers=[("Subject", "ring only")]
            )
            # The CANCEL may only go after a provisional (9.1): the 100 Trying.
            async with aclosing(ringing.provisionals()) as provisionals:
                async for provisional in provisionals:
                    assert provisional.status == 100
                    break
            await ringing.cancel()
            cancelled = await ringing.wait_final()
        assert [r.status for r in (options, info, message, subscribe, bye)] == [
            200,
            200,
            200,
            405,
            200,
        ]
        assert cancelled.status == 487
        assert seen == ["INVITE", "INFO", "MESSAGE", "INVITE"]
        assert uas.was_cancelled(kept[0])


async def test_no_100_trying_when_the_handler_answers_at_once() -> None:
    async with running_endpoint() as uas, running_endpoint() as uac:
        arrived = responses_reaching(uac)

        def handler(request: Request) -> None:
            uas.respond_nowait(request, 486)

        uas.set_request_handler(handler)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            final = await call.wait_final()
            # Long past the 200 ms after which a 100 Trying would have gone.
            await anyio.sleep(10 * uas.trying_delay)
        assert final.status == 486
        assert arrived == [486]
        assert call.provisional_responses == []


async def test_100_trying_after_the_delay_when_the_handler_keeps_the_invite() -> None:
    kept: list[Request] = []
    async with running_endpoint() as uas, running_endpoint() as uac:
        arrived = responses_reaching(uac)
        uas.set_request_handler(kept.append)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            start = anyio.current_time()
            async with aclosing(call.provisionals()) as provisionals:
                async for provisional in provisionals:
                    trying_after = anyio.current_time() - start
                    assert provisional.status == 100
                    break
            # Answered later, from a task, as respond() always could.
            await uas.respond(kept[0], 486)
            final = await call.wait_final()
        assert trying_after == pytest.approx(uas.trying_delay, abs=0.01)
        assert final.status == 486
        assert arrived == [100, 486]


async def test_the_awaitable_a_handler_returns_is_awaited_and_the_source_waits_behind_it() -> None:
    # The first MESSAGE's handler needs a second; the second MESSAGE, from
    # the same source, reaches the handler only after that work is done.
    calls: list[tuple[str, float]] = []
    async with running_endpoint() as uas, running_endpoint() as uac:
        start = anyio.current_time()

        async def later(request: Request) -> None:
            await anyio.sleep(1)
            uas.respond_nowait(request, 202)

        def handler(request: Request) -> Awaitable[None] | None:
            calls.append((request.headers.get("subject") or "", anyio.current_time() - start))
            if request.headers.get("subject") == "slow":
                return later(request)
            uas.respond_nowait(request, 200)
            return None

        uas.set_request_handler(handler)
        with anyio.fail_after(BOUND):
            slow = await uac.new_request("MESSAGE", uri_of(uas), headers=[("Subject", "slow")])
            quick = await uac.new_request("MESSAGE", uri_of(uas), headers=[("Subject", "quick")])
            slow_final = await slow.wait_final()
            quick_final = await quick.wait_final()
        assert (slow_final.status, quick_final.status) == (202, 200)
        assert [subject for subject, _ in calls] == ["slow", "quick"]
        assert calls[0][1] == pytest.approx(0.0, abs=0.01)
        assert calls[1][1] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("method", ["MESSAGE", "INVITE"])
async def test_a_handler_that_raises_gets_500_and_is_logged(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="trio_sip.endpoint")
    async with running_endpoint() as uas, running_endpoint() as uac:
        arrived = responses_reaching(uac)

        def handler(request: Request) -> None:
            if request.headers.get("subject") == "fail":
                raise RuntimeError("handler broke")
            uas.respond_nowait(request, 200)

        uas.set_request_handler(handler)
        with anyio.fail_after(BOUND):
            failed = await uac.request(uri_of(uas), method, headers=[("Subject", "fail")])
            await anyio.sleep(1)
            # The Endpoint goes on: the next request is the handler's again.
            after = await uac.request(uri_of(uas), method)
        assert failed.status == 500
        assert after.status == 200
        assert arrived[0] == 500  # at once: no 100 Trying before it
        failures = [r for r in caplog.records if r.name == "trio_sip.endpoint"]
        assert len(failures) == 1
        assert "request handler failed" in failures[0].getMessage()
        assert failures[0].exc_info is not None
        assert isinstance(failures[0].exc_info[1], RuntimeError)


async def test_an_awaitable_that_raises_gets_500_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The work a handler left for later fails: the request is not left to
    # ring (or time out at the caller after 64*T1).
    caplog.set_level(logging.ERROR, logger="trio_sip.endpoint")
    async with running_endpoint() as uas, running_endpoint() as uac:

        async def later() -> None:
            await anyio.sleep(0.5)
            raise RuntimeError("the later work broke")

        uas.set_request_handler(lambda request: later())
        with anyio.fail_after(BOUND):
            started = anyio.current_time()
            failed = await uac.request(uri_of(uas), "MESSAGE")
            took = anyio.current_time() - started
        assert failed.status == 500
        assert took == pytest.approx(0.5, abs=0.05)
        failures = [r for r in caplog.records if r.name == "trio_sip.endpoint"]
        assert len(failures) == 1
        assert failures[0].exc_info is not None
        assert isinstance(failures[0].exc_info[1], RuntimeError)


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        pytest.param("MESSAGE", 202, [202], id="final answer stands"),
        # A provisional is no answer: the INVITE still gets its 500.
        pytest.param("INVITE", 180, [180, 500], id="provisional then 500"),
    ],
)
async def test_a_handler_that_answers_then_raises(
    method: str, status: int, expected: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="trio_sip.endpoint")
    async with running_endpoint() as uas, running_endpoint() as uac:
        arrived = responses_reaching(uac)

        def handler(request: Request) -> None:
            uas.respond_nowait(request, status)
            raise RuntimeError("broke after answering")

        uas.set_request_handler(handler)
        with anyio.fail_after(BOUND):
            response = await uac.request(uri_of(uas), method)
            await anyio.sleep(1)
        assert response.status == expected[-1]
        assert arrived == expected
        assert "request handler failed" in caplog.text


async def test_none_gives_the_requests_back_to_incoming() -> None:
    by_handler: list[str] = []
    by_incoming: list[Request] = []

    async def answer_200(ep: Endpoint, request: Request) -> None:
        await ep.respond(request, 200)

    async with (
        running_endpoint() as uas,
        running_endpoint() as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, answer_200, by_incoming)

        def handler(request: Request) -> None:
            by_handler.append(request.headers.get("subject") or "")
            uas.respond_nowait(request, 202)

        uas.set_request_handler(handler)
        with anyio.fail_after(BOUND):
            first = await uac.request(uri_of(uas), "MESSAGE", headers=[("Subject", "one")])
            uas.set_request_handler(None)
            second = await uac.request(uri_of(uas), "MESSAGE", headers=[("Subject", "two")])
        assert (first.status, second.status) == (202, 200)
        assert by_handler == ["one"]
        assert [r.headers.get("subject") for r in by_incoming] == ["two"]
        tg.cancel_scope.cancel()


# ----- over TCP: answers that cannot go at once -----------------------------------------------


async def test_over_tcp_answers_queue_in_order_and_wait_sent_waits_for_them() -> None:
    # A stream send may wait, so nothing is sent in the handler: 180 and 200
    # queue, go in that order from the Endpoint's task, and wait_sent() (in
    # the awaitable the handler returns) returns once both are out.
    counts: dict[str, int] = {}
    async with running_endpoint("tcp") as uas, running_endpoint("tcp") as uac:
        arrived = responses_reaching(uac)

        async def after_sent() -> None:
            await uas.wait_sent()
            counts["after wait_sent"] = packets_out(uas)

        def handler(request: Request) -> Awaitable[None]:
            counts["before"] = packets_out(uas)
            ringing = uas.respond_nowait(request, 180)
            answer = uas.respond_nowait(request, 200)
            assert (ringing.status, answer.status) == (180, 200)
            counts["in the handler"] = packets_out(uas)
            return after_sent()

        uas.set_request_handler(handler)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            final = await call.wait_final()
            await anyio.sleep(1)
        assert final.status == 200
        assert [r.status for r in call.provisional_responses] == [180]
        assert arrived == [180, 200]  # in order, and no 100 Trying
        assert counts["in the handler"] == counts["before"]
        assert counts["after wait_sent"] == counts["before"] + 2
        assert call.dialogs[0].confirmed
        assert uas.statistics().pending_2xx == 0  # the ACK came back


async def test_wait_sent_is_a_checkpoint_when_nothing_waits() -> None:
    async with running_endpoint("tcp") as uas:
        with anyio.fail_after(BOUND):
            await uas.wait_sent()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await uas.wait_sent()  # a checkpoint: the cancellation lands here
            pytest.fail("wait_sent did not check for cancellation")
        assert scope.cancelled_caught


async def test_respond_over_tcp_returns_once_the_answer_has_gone() -> None:
    # respond() from a task (incoming()) waits for the queued send.
    counts: list[tuple[int, int]] = []

    async def answer_and_count(ep: Endpoint, request: Request) -> None:
        before = packets_out(ep)
        for status in (180, 200):
            await ep.respond(request, status)
            counts.append((status, packets_out(ep) - before))

    async with (
        running_endpoint("tcp") as uas,
        running_endpoint("tcp") as uac,
        anyio.create_task_group() as tg,
    ):
        arrived = responses_reaching(uac)
        tg.start_soon(serve, uas, answer_and_count)
        with anyio.fail_after(BOUND):
            call = await uac.new_request("INVITE", uri_of(uas))
            final = await call.wait_final()
        assert final.status == 200
        assert counts == [(180, 1), (200, 2)]
        assert arrived == [180, 200]
        tg.cancel_scope.cancel()


async def test_respond_over_tcp_from_the_handler_s_awaitable() -> None:
    async with running_endpoint("tcp") as uas, running_endpoint("tcp") as uac:

        async def answer_later(request: Request) -> None:
            await anyio.sleep(1)
            await uas.respond(request, 202)

        uas.set_request_handler(answer_later)
        with anyio.fail_after(BOUND):
            response = await uac.request(uri_of(uas), "MESSAGE")
        assert response.status == 202
