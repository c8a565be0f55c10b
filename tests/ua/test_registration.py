"""How a UserAgent keeps its registration: one Call-ID, 423, back-off with jitter.

RFC 3261 section 10.2 (the same Call-ID and a CSeq one higher for every
REGISTER to one registrar), section 10.2.8 (423 Interval Too Brief and
Min-Expires), section 20.33 (Retry-After) and RFC 5626 section 4.5 (waits
drawn between half and all of the back-off). Timers run on the virtual clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest

from trio_sip import ua as ua_module
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, Response, make_response
from trio_sip.server import Authorize, ReceiveChain, Registrar
from trio_sip.transport.leg import Address, Leg
from trio_sip.ua import RegistrationFailed, UserAgent

from ._helpers import FixedJitter

pytestmark = pytest.mark.anyio

LEG = ["udp:127.0.0.1:0"]


@dataclass
class Recorder:
    """The first link of a registrar's chain: notes each REGISTER, passes it on."""

    #: Call-ID, CSeq number, Expires, arrival, and whether it had credentials.
    seen: list[tuple[str, int, str, float, bool]] = field(default_factory=list)

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        if isinstance(packet, Request) and packet.method == "REGISTER":
            expires = packet.headers.get("expires") or ""
            credentials = "authorization" in packet.headers
            entry = (packet.call_id, packet.cseq.seq, expires, anyio.current_time(), credentials)
            self.seen.append(entry)
        return False


@pytest.mark.virtual_time
@pytest.mark.parametrize(
    ("nonce_lifetime", "sent", "stale"),
    [
        # The nonce stays fresh: only the first REGISTER is challenged; the
        # refreshes and the removal answer its challenge unasked (22.2).
        (300.0, [True, False, False, False, False], 0),
        # The nonce goes stale before each refresh: each refresh, sent with
        # the old answer, is challenged once more (stale=true) and sent
        # again; the removal, 5 s after the last challenge, answers it
        # unasked.
        (15.0, [True, False, False, False, False, False, False], 2),
    ],
)
async def test_every_register_to_a_registrar_has_one_call_id_and_the_next_cseq(
    nonce_lifetime: float, sent: list[bool], stale: int
) -> None:
    # ``sent``: whether each REGISTER went without credentials. An auth
    # retry is one higher again (section 22.2).
    recorder = Recorder()
    async with Dispatcher(LEG) as reg_disp:
        registrar = Registrar(reg_disp, min_expires=1, max_expires=40)
        auth = Authorize(
            reg_disp,
            "example.com",
            {"bob": "pw"},
            nonce_lifetime=nonce_lifetime,
            clock=anyio.current_time,
        )
        reg_disp.set_receiver(ReceiveChain([recorder, auth, registrar]))
        at = f"sip:{reg_disp.legs[0].sent_by()}"
        async with UserAgent("sip:bob@example.com", listen=LEG, credentials={"bob": "pw"}) as bob:
            with anyio.fail_after(10):
                assert (await bob.register(at, expires=600)).status == 200
            # Granted 40 s: refreshed at 20 s and 40 s.
            await anyio.sleep(45)
            assert await registrar.lookup(bob.aor) != []
        # Leaving the UA unregistered, in the same sequence.
        assert await registrar.lookup(bob.aor) == []
    assert [not has_credentials for *_, has_credentials in recorder.seen] == sent
    call_ids = {call_id for call_id, *_ in recorder.seen}
    numbers = [seq for _, seq, *_ in recorder.seen]
    assert len(call_ids) == 1
    assert numbers == list(range(numbers[0], numbers[0] + len(sent)))
    assert recorder.seen[-1][2] == "0"
    statistics = auth.statistics()
    assert (statistics.challenged, statistics.stale, statistics.accepted) == (1 + stale, stale, 4)


async def test_a_registrar_of_its_own_gets_a_call_id_of_its_own() -> None:
    recorders = [Recorder(), Recorder()]
    async with Dispatcher(LEG) as first, Dispatcher(LEG) as second:
        for disp, recorder in zip((first, second), recorders, strict=True):
            disp.set_receiver(ReceiveChain([recorder, Registrar(disp, min_expires=1)]))
        async with UserAgent("sip:bob@example.com", listen=LEG) as bob:
            with anyio.fail_after(10):
                await bob.register(f"sip:{first.legs[0].sent_by()}", refresh=False)
                await bob.register(f"sip:{second.legs[0].sent_by()}", refresh=False)
                await bob.register(f"sip:{first.legs[0].sent_by()}", refresh=False)
    at_first = [(call_id, seq) for call_id, seq, *_ in recorders[0].seen]
    at_second = [(call_id, seq) for call_id, seq, *_ in recorders[1].seen]
    assert len(at_first) == 2
    assert len(at_second) == 1
    assert at_first[0][0] == at_first[1][0] != at_second[0][0]
    assert at_first[1][1] == at_first[0][1] + 1


async def test_call_ids_makes_the_call_id_of_each_registrar_and_of_other_requests() -> None:
    # What a worker behind a shared address needs: its own Call-IDs, so that
    # the answers come back to it (trio_sip.transport.shard.call_id_of_shard).
    made = iter(f"made-{n}@worker" for n in range(1, 100))
    recorders = [Recorder(), Recorder()]
    async with Dispatcher(LEG) as first, Dispatcher(LEG) as second:
        for disp, recorder in zip((first, second), recorders, strict=True):
            disp.set_receiver(ReceiveChain([recorder, Registrar(disp, min_expires=1)]))
        async with (
            UserAgent("sip:bob@example.com", listen=LEG, call_ids=lambda: next(made)) as bob,
            UserAgent("sip:alice@example.com", listen=LEG) as alice,
        ):
            with anyio.fail_after(10):
                await bob.register(f"sip:{first.legs[0].sent_by()}", refresh=False)
                await bob.register(f"sip:{second.legs[0].sent_by()}", refresh=False)
                await bob.register(f"sip:{first.legs[0].sent_by()}", refresh=False)
                pong = await bob.options(f"sip:{alice.dispatcher.legs[0].sent_by()}")
    assert [c for c, *_ in recorders[0].seen] == ["made-1@worker"] * 2
    assert [c for c, *_ in recorders[1].seen] == ["made-2@worker"]
    assert pong.call_id == "made-3@worker"


@pytest.mark.virtual_time
async def test_interval_too_brief_registers_again_with_min_expires_and_keeps_it() -> None:
    recorder = Recorder()
    async with Dispatcher(LEG) as reg_disp:
        registrar = Registrar(reg_disp, min_expires=120, max_expires=3600)
        reg_disp.set_receiver(ReceiveChain([recorder, registrar]))
        async with UserAgent("sip:bob@example.com", listen=LEG) as bob:
            with anyio.fail_after(10):
                ok = await bob.register(f"sip:{reg_disp.legs[0].sent_by()}", expires=60)
            assert ok.status == 200
            start = anyio.current_time()
            # Granted 120 s: the refresh comes 30 s early, and asks for 120 again.
            await anyio.sleep(91)
            assert anyio.current_time() - start == pytest.approx(91, abs=1)
    asked = [expires for _, _, expires, *_ in recorder.seen]
    assert asked[:3] == ["60", "120", "120"]
    assert recorder.seen[2][3] - recorder.seen[1][3] == pytest.approx(90, abs=0.5)


@dataclass
class TooBrief:
    """A registrar that answers every REGISTER 423 with Min-Expires ``least``."""

    disp: Dispatcher
    least: str | None

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        assert isinstance(packet, Request)
        headers = [("Min-Expires", self.least)] if self.least is not None else []
        await self.disp.deliver(make_response(packet, 423, to_tag="x", headers=headers), leg=leg)
        return True


@pytest.mark.parametrize("least", ["30", "60", None, "soon"])
async def test_a_min_expires_that_cannot_help_is_registration_failed(least: str | None) -> None:
    # Not above what was asked, or none that can be read: the 423 is final.
    recorder = Recorder()
    async with Dispatcher(LEG) as disp:
        disp.set_receiver(ReceiveChain([recorder, TooBrief(disp, least)]))
        async with UserAgent("sip:bob@example.com", listen=LEG) as bob:
            with anyio.fail_after(10), pytest.raises(RegistrationFailed) as failed:
                await bob.register(f"sip:{disp.legs[0].sent_by()}", expires=60)
    assert failed.value.status == 423
    assert len(recorder.seen) == 1


@pytest.mark.parametrize("at", [0.0, 0.5, 1.0])
def test_back_off_doubles_to_300_and_draws_each_wait_in_its_upper_half(
    monkeypatch: pytest.MonkeyPatch, at: float
) -> None:
    monkeypatch.setattr(ua_module, "_jitter", FixedJitter(at))
    ceilings = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    waits = [ua_module._retry_delay(failures) for failures in range(1, 13)]
    assert waits == pytest.approx([c * (0.5 + 0.5 * at) for c in ceilings])
    assert ua_module._retry_delay(10**6) == pytest.approx(300 * (0.5 + 0.5 * at))


def test_back_off_waits_out_retry_after_up_to_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ua_module, "_jitter", FixedJitter(1.0))
    assert ua_module._retry_delay(1, 120) == 120
    assert ua_module._retry_delay(10, 120) == 300
    assert ua_module._retry_delay(1, 10**9) == 3600


def test_the_real_back_off_is_spread() -> None:
    waits = {ua_module._retry_delay(9) for _ in range(50)}
    assert all(128 <= wait <= 256 for wait in waits)
    assert len(waits) > 40


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120),
        ("120 (in a meeting)", 120),
        ("18000;duration=3600", 18000),
        (" 5 ", 5),
        ("soon", None),
        ("-1", None),
        ("99999999999", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_rfc_3261_writes_it(value: str | None, seconds: int | None) -> None:
    response = Response(503, headers=[("Retry-After", value)] if value is not None else [])
    assert ua_module._retry_after(response) == seconds
