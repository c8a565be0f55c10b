"""DTMF in SIP INFO between two UserAgents: sent with send_dtmf(info=True),
received with the digits of RTP, an unreadable body refused with 400."""

from __future__ import annotations

import anyio
import pytest

from trio_sip.ua import Call, CallFailed, UserAgent

pytestmark = pytest.mark.anyio

LEG = ["udp:127.0.0.1:0"]


def address(ua: UserAgent) -> str:
    return ua.dispatcher.legs[0].sent_by()


async def test_digits_in_sip_info_reach_the_peers_dtmf() -> None:
    got: list[str] = []
    callee_call: list[Call] = []
    all_digits = anyio.Event()
    async with (
        UserAgent("sip:alice@example.com", listen=LEG) as alice,
        UserAgent("sip:bob@example.com", listen=LEG) as bob,
        anyio.create_task_group() as tg,
    ):

        async def callee() -> None:
            async for call in bob.incoming_calls():
                callee_call.append(call)
                await call.answer()
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
                await call.wait_answered()
                await call.send_dtmf("1#b*", info=True)
                await all_digits.wait()
                # Anything but one digit in a DTMF body: 400, and no digit.
                for body in (b"Signal=X\r\n", b"Duration=100\r\n"):
                    with pytest.raises(CallFailed) as refused:
                        await call.request(
                            "INFO",
                            headers=[("Content-Type", "application/dtmf-relay")],
                            body=body,
                        )
                    assert refused.value.status == 400
                # Another INFO body is none of the UA's business: 200.
                other = await call.request(
                    "INFO", headers=[("Content-Type", "application/json")], body=b"{}"
                )
                assert other.status == 200
                with pytest.raises(ValueError, match="not a DTMF digit"):
                    await call.send_dtmf("12x", info=True)
                with pytest.raises(ValueError, match="not both"):
                    await call.send_dtmf("1", info=True, inband=True)
        assert got == ["1", "#", "B", "*"]
        # Not RTP: the media statistics count none of them, on either side.
        assert call.media.statistics().dtmf_sent == 0
        assert callee_call[0].media.statistics().dtmf_received == 0
