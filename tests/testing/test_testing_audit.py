"""trio_sip.testing and the pytest plugin, as a user's test suite meets them."""

from __future__ import annotations

import anyio
import pytest
from tests.dispatcher._peer import request

from trio_sip import Dispatcher, Request, Response, TransportError
from trio_sip.message import make_response
from trio_sip.testing import FakeNetwork
from trio_sip.transport import Leg

QUIET = ("-p", "no:cacheprovider")

BOTH = """
[pytest]
trio_sip_backends = trio asyncio
"""


# ----- the plugin leaves a backend the user chose alone ----------------------------------


def test_a_rootdir_conftests_anyio_backend_is_left_alone(pytester: pytest.Pytester) -> None:
    # The conftest.py next to the configuration, where a small project keeps
    # its fixtures: its anyio_backend decides, once, as the reference says.
    pytester.makeini(BOTH)
    pytester.makeconftest(
        """
        import pytest


        @pytest.fixture
        def anyio_backend():
            return "asyncio"
        """
    )
    pytester.makepyfile(
        """
        import pytest


        @pytest.mark.anyio
        async def test_once_on_asyncio(anyio_backend):
            import asyncio

            asyncio.get_running_loop()
        """
    )
    result = pytester.runpytest(*QUIET, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_once_on_asyncio PASSED*"])


def test_a_test_that_names_its_backends_keeps_them(pytester: pytest.Pytester) -> None:
    # anyio's documented way to pick the backends of one test.
    pytester.makeini(BOTH)
    pytester.makepyfile(
        """
        import pytest


        @pytest.mark.anyio
        @pytest.mark.parametrize("anyio_backend", ["asyncio"])
        async def test_on_asyncio(anyio_backend):
            import asyncio

            asyncio.get_running_loop()


        @pytest.mark.anyio
        @pytest.mark.parametrize(("anyio_backend", "n"), [("trio", 1), ("trio", 2)])
        async def test_on_trio(anyio_backend, n):
            import trio

            trio.lowlevel.current_task()
        """
    )
    result = pytester.runpytest(*QUIET, "-v")
    result.assert_outcomes(passed=3)


# ----- memory legs close and send as UDP legs do -----------------------------------------


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_closing_a_leg_ends_its_serve_as_on_udp() -> None:
    async with FakeNetwork() as net:
        alice, bob = net.leg("192.0.2.1:5060"), net.leg("192.0.2.2:5060")
        await alice.bind()
        await bob.bind()
        got: list[object] = []
        ended = anyio.Event()

        async def serve() -> None:
            await bob.serve(lambda data, leg, src: got.append(data))
            ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            await alice.send(b"hello", bob.address)
            await anyio.sleep(1)
            await bob.aclose()
            with anyio.fail_after(1):
                await ended.wait()
        await alice.aclose()
    assert got == [b"hello"]


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_a_datagram_too_large_for_udp_is_refused() -> None:
    async with FakeNetwork() as net:
        leg = net.leg("192.0.2.1:5060")
        await leg.bind()
        with pytest.raises(TransportError, match="do not fit a datagram"):
            await leg.send(b"x" * 65536, ("192.0.2.2", 5060))
        await leg.send(b"x" * 65535, ("192.0.2.2", 5060))
        await leg.aclose()
    assert net.statistics().sent == 1


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_respond_nowait_sends_at_once_as_on_udp() -> None:
    async with (
        FakeNetwork() as net,
        Dispatcher([net.leg("192.0.2.1:5060")], do_retransmits=False) as alice,
        Dispatcher([net.leg("192.0.2.2:5060")]) as bob,
    ):
        sent_at_once: list[bool] = []

        def answer(packet: Request | Response, leg: Leg, addr: object) -> None:
            if isinstance(packet, Request):
                response = make_response(packet, 200, to_tag="t")
                sent_at_once.append(bob.respond_nowait(response, leg))

        bob.set_receiver(answer)
        answered = anyio.Event()
        alice.set_receiver(lambda packet, leg, addr: answered.set())
        await alice.deliver(request("MESSAGE", "sip:bob@192.0.2.2:5060"))
        with anyio.fail_after(1):
            await answered.wait()
    assert sent_at_once == [True]


# ----- misuse fails at once, with what to do ---------------------------------------------


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_a_network_that_is_not_running_refuses_legs() -> None:
    # Without the carrier nothing would arrive, and the test would only
    # fail at its timeout.
    net = FakeNetwork()
    with pytest.raises(RuntimeError, match=r"not running: use 'async with FakeNetwork"):
        async with Dispatcher([net.leg("192.0.2.1:5060")]):
            pass
    async with net:
        pass
    with pytest.raises(RuntimeError, match="not running"):
        await net.leg("192.0.2.1:5060").bind()


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_a_network_entered_twice_says_so() -> None:
    net = FakeNetwork()
    async with net:
        with pytest.raises(RuntimeError, match="already running"):
            async with net:
                pass
