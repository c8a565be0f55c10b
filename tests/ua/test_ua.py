"""Two UserAgents over loopback, and a UserAgent through our proxy and registrar."""

from __future__ import annotations

from contextlib import aclosing

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.server import Authorize, ReceiveChain, Registrar, StatelessProxy
from trio_sip.ua import Call, CallFailed, RegistrationFailed, UserAgent

pytestmark = pytest.mark.anyio

LEG = ["udp:127.0.0.1:0"]


def address(ua: UserAgent) -> str:
    return ua.dispatcher.legs[0].sent_by()


@pytest.mark.parametrize("info", [False, True], ids=["rtp", "sip-info"])
async def test_call_answered_dtmf_and_hangup(info: bool) -> None:
    # The digits go as RFC 4733 events, or in SIP INFO requests (one each,
    # application/dtmf-relay); the callee gets them from call.dtmf() alike.
    got: list[str] = []
    callee_calls: list[Call] = []
    all_digits = anyio.Event()
    async with (
        UserAgent("sip:alice@example.com", listen=LEG) as alice,
        UserAgent("sip:bob@example.com", listen=LEG) as bob,
        anyio.create_task_group() as tg,
    ):

        async def callee() -> None:
            async for call in bob.incoming_calls():
                callee_calls.append(call)
                await call.ring()
                await call.answer()
                with anyio.fail_after(10):
                    async for digit in call.dtmf():
                        got.append(digit)
                        if len(got) == 4:
                            all_digits.set()
                            break
                    await call.wait_ended()
                return

        tg.start_soon(callee)
        with anyio.fail_after(10):
            async with alice.invite(f"sip:bob@{address(bob)}") as call:
                statuses = [r.status async for r in call.events()]
                answer = await call.wait_answered()
                await call.send_dtmf("12b#", info=info)
                # Let the last event's end packets arrive before BYE.
                await all_digits.wait()
                if info:
                    await refused_and_passed_infos(call)
        assert answer.status == 200
        assert 180 in statuses
        assert call.ended
    assert got == ["1", "2", "B", "#"]
    # The RTP statistics count the digits that went over RTP.
    over_rtp = 0 if info else 4
    assert call.media.statistics().dtmf_sent == over_rtp
    assert callee_calls[0].media.statistics().dtmf_received == over_rtp


async def refused_and_passed_infos(call: Call) -> None:
    """INFO requests in ``call`` that carry no digit, and digits that are refused."""
    # Anything but one digit in a DTMF body: 400, and no digit.
    dtmf_relay = [("Content-Type", "application/dtmf-relay")]
    for body in (b"Signal=X\r\n", b"Duration=100\r\n"):
        with pytest.raises(CallFailed) as refused:
            await call.request("INFO", headers=dtmf_relay, body=body)
        assert refused.value.status == 400
    # Another INFO body is none of the UA's business: 200.
    other = await call.request("INFO", headers=[("Content-Type", "application/json")], body=b"{}")
    assert other.status == 200
    with pytest.raises(ValueError, match="not a DTMF digit"):
        await call.send_dtmf("12x", info=True)
    with pytest.raises(ValueError, match="not both"):
        await call.send_dtmf("1", info=True, inband=True)


@pytest.mark.parametrize("caught", ["inside", "outside"])
async def test_rejected_call_raises_call_failed(caught: str) -> None:
    # Inside the invite block from wait_answered(); and leaving the block as
    # itself, not wrapped in the call's task-group ExceptionGroup (that task
    # group is the UA's business).
    async with (
        UserAgent("sip:alice@example.com", listen=LEG) as alice,
        UserAgent("sip:bob@example.com", listen=LEG) as bob,
        anyio.create_task_group() as tg,
    ):

        async def callee() -> None:
            async for call in bob.incoming_calls():
                await call.reject(486)
                return

        tg.start_soon(callee)
        with anyio.fail_after(10):
            if caught == "inside":
                async with alice.invite(f"sip:bob@{address(bob)}") as call:
                    with pytest.raises(CallFailed) as failed:
                        await call.wait_answered()
            else:
                with pytest.raises(CallFailed) as failed:
                    async with alice.invite(f"sip:bob@{address(bob)}") as call:
                        await call.wait_answered()
    assert failed.value.status == 486


async def test_ring_timeout_cancels_and_remote_bye_ends_the_call() -> None:
    async with (
        UserAgent("sip:alice@example.com", listen=LEG) as alice,
        UserAgent("sip:bob@example.com", listen=LEG) as bob,
    ):
        seen: list[Call] = []
        async with anyio.create_task_group() as tg:

            async def callee() -> None:
                async for call in bob.incoming_calls():
                    seen.append(call)
                    await call.ring()
                    return

            tg.start_soon(callee)
            with anyio.fail_after(10):
                async with alice.invite(f"sip:bob@{address(bob)}") as call:
                    async with aclosing(call.events()) as events:
                        async for response in events:
                            if response.status == 180:
                                break
                    with anyio.move_on_after(0.3) as ring:
                        await call.wait_answered()
                    assert ring.cancelled_caught
                    with pytest.raises(CallFailed) as failed:
                        await call.wait_answered()
        assert failed.value.status == 487
        assert bob.endpoint.was_cancelled(seen[0].invite)  # type: ignore[arg-type]

        # Now bob answers and hangs up: alice's wait_ended() wakes up.
        async with anyio.create_task_group() as tg:

            async def answer_and_hang_up() -> None:
                async for call in bob.incoming_calls():
                    await call.answer()
                    await anyio.sleep(0.1)
                    await call.bye()
                    return

            tg.start_soon(answer_and_hang_up)
            with anyio.fail_after(10):
                async with alice.invite(f"sip:bob@{address(bob)}") as call:
                    await call.wait_answered()
                    await call.wait_ended()
            assert call.ended


async def test_hold_info_options_and_message() -> None:
    async with (
        UserAgent("sip:alice@example.com", listen=LEG) as alice,
        UserAgent("sip:bob@example.com", listen=LEG) as bob,
        anyio.create_task_group() as tg,
    ):
        texts: list[bytes] = []

        async def callee() -> None:
            async for call in bob.incoming_calls():
                await call.answer()
                await call.wait_ended()
                return

        async def reader() -> None:
            async for message in bob.messages():
                texts.append(message.body)
                return

        tg.start_soon(callee)
        tg.start_soon(reader)
        with anyio.fail_after(10):
            pong = await alice.options(f"sip:{address(bob)}")
            assert pong.status == 200
            sent = await alice.message(f"sip:bob@{address(bob)}", "hello")
            assert sent.status == 200
            async with alice.invite(f"sip:bob@{address(bob)}") as call:
                await call.wait_answered()
                held = await call.hold()
                assert b"a=recvonly" in held.body or b"a=inactive" in held.body
                resumed = await call.unhold()
                assert b"a=sendrecv" in resumed.body
                info = await call.request("INFO")
                assert info.status == 200
    assert texts == [b"hello"]


async def test_register_with_auth_then_called_through_the_proxy() -> None:
    async with (
        Dispatcher(LEG) as reg_disp,
        Dispatcher(LEG, response_cache=False, do_retransmits=False) as proxy_disp,
    ):
        registrar = Registrar(reg_disp, domains=["example.com"], min_expires=1)
        auth = Authorize(reg_disp, "example.com", {"bob": "pw"})
        reg_disp.set_receiver(ReceiveChain([auth, registrar]))
        proxy = StatelessProxy(proxy_disp, registrar=registrar, domains=["example.com"])
        proxy_disp.set_receiver(proxy)
        registrar_at = f"sip:{reg_disp.legs[0].sent_by()}"
        proxy_at = proxy_disp.legs[0].sent_by()
        async with (
            UserAgent("sip:bob@example.com", listen=LEG, credentials={"bob": "pw"}) as bob,
            UserAgent("sip:alice@example.com", listen=LEG, proxy=proxy_at) as alice,
            anyio.create_task_group() as tg,
        ):
            with anyio.fail_after(10):
                ok = await bob.register(registrar_at, expires=3600)
            assert ok.status == 200
            (binding,) = await registrar.lookup(bob.aor)
            assert binding.contact == str(bob.contact())

            async def callee() -> None:
                async for call in bob.incoming_calls():
                    await call.answer()
                    await call.wait_ended()
                    return

            tg.start_soon(callee)
            with anyio.fail_after(10):
                async with alice.invite("sip:bob@example.com") as call:
                    await call.wait_answered()
        # Leaving the UA removed the binding.
        assert await registrar.lookup(bob.aor) == []
        assert auth.statistics().accepted >= 2


async def test_wrong_password_raises_registration_failed() -> None:
    async with Dispatcher(LEG) as reg_disp:
        registrar = Registrar(reg_disp, domains=["example.com"])
        reg_disp.set_receiver(
            ReceiveChain([Authorize(reg_disp, "example.com", {"bob": "pw"}), registrar])
        )
        async with UserAgent(
            "sip:bob@example.com", listen=LEG, credentials={"bob": "guess"}
        ) as bob:
            with anyio.fail_after(10), pytest.raises(RegistrationFailed) as failed:
                await bob.register(f"sip:{reg_disp.legs[0].sent_by()}")
    assert failed.value.status == 403


@pytest.mark.virtual_time
async def test_registration_is_refreshed_before_it_expires() -> None:
    async with Dispatcher(LEG) as reg_disp:
        registrar = Registrar(reg_disp, min_expires=1, max_expires=40)
        reg_disp.set_receiver(registrar)
        async with UserAgent("sip:bob@example.com", listen=LEG) as bob:
            await bob.register(f"sip:{reg_disp.legs[0].sent_by()}", expires=600)
            start = anyio.current_time()
            # Granted 40 s (max_expires): refreshed at 20 s, 40 s, 60 s ...
            await anyio.sleep(65)
            assert registrar.statistics().accepted == 4
            assert anyio.current_time() - start == pytest.approx(65, abs=1)
            assert await registrar.lookup(bob.aor) != []


@pytest.mark.parametrize("leg", ["tcp:127.0.0.1:0", "udp:[::1]:0", "tcp:[::1]:0"])
async def test_call_over_tcp_and_ipv6(leg: str) -> None:
    async with (
        UserAgent("sip:alice@example.com", listen=[leg]) as alice,
        UserAgent("sip:bob@example.com", listen=[leg]) as bob,
        anyio.create_task_group() as tg,
    ):

        async def callee() -> None:
            async for call in bob.incoming_calls():
                await call.answer()
                await call.wait_ended()
                return

        tg.start_soon(callee)
        transport = leg.split(":", 1)[0]
        with anyio.fail_after(10):
            async with alice.invite(f"sip:bob@{address(bob)};transport={transport}") as call:
                answer = await call.wait_answered()
                info = await call.request("INFO")
        assert answer.status == 200
        assert info.status == 200
        assert f"SIP/2.0/{transport.upper()}" in str(answer.top_via)
