"""The pytest plugin shipped to users (trio_sip.pytest_plugin), run by pytester."""

from __future__ import annotations

import pytest
from tests.docs._blocks import ROOT, code_blocks

HOWTO = ROOT / "docs" / "howto" / "testing.rst"

# The inner runs load every installed plugin, as a user's would (looptime's
# own plugin included: the trio-sip plugin takes it out without pytest-asyncio).
QUIET = ("-p", "no:cacheprovider")

BOTH = """
[pytest]
trio_sip_backends = trio asyncio
"""

VIRTUAL_TIME_TEST = """
import time

import anyio
import pytest


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_sleeps_an_hour_in_no_time(anyio_backend):
    real = time.monotonic()
    start = anyio.current_time()
    await anyio.sleep(3600)
    assert anyio.current_time() - start == pytest.approx(3600)
    assert time.monotonic() - real < 5


@pytest.mark.anyio
async def test_real_clock_without_the_marker(anyio_backend):
    real = time.monotonic()
    with anyio.move_on_after(0.05):
        await anyio.sleep(3600)
    assert time.monotonic() - real >= 0.04
"""


def test_every_anyio_test_runs_on_both_backends_and_in_virtual_time(
    pytester: pytest.Pytester,
) -> None:
    # The configuration the how-to shows, as a user's pyproject.toml.
    (config,) = code_blocks(HOWTO, "toml")
    pytester.makepyprojecttoml(config)
    pytester.makepyfile(VIRTUAL_TIME_TEST)
    result = pytester.runpytest(*QUIET, "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*test_sleeps_an_hour_in_no_time[[]trio[]] PASSED*",
            "*test_sleeps_an_hour_in_no_time[[]asyncio[]] PASSED*",
        ]
    )


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_sip_backend_runs_one_backend(pytester: pytest.Pytester, backend: str) -> None:
    pytester.makeini(BOTH)
    pytester.makepyfile(VIRTUAL_TIME_TEST)
    result = pytester.runpytest(*QUIET, "-v", f"--sip-backend={backend}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*test_sleeps_an_hour_in_no_time[[]{backend}[]] PASSED*"])


def test_fake_network_fixture_carries_a_request_through_loss(pytester: pytest.Pytester) -> None:
    pytester.makeini(BOTH)
    pytester.makepyfile(
        """
        import anyio
        import pytest

        from trio_sip import Dispatcher, Request
        from trio_sip.message import make_response, new_call_id, new_tag


        @pytest.mark.anyio
        @pytest.mark.virtual_time
        async def test_options_through_a_lossy_network(fake_network):
            fake_network.loss = 0.5
            async with (
                Dispatcher([fake_network.leg("192.0.2.1:5060")]) as alice,
                Dispatcher([fake_network.leg("192.0.2.2:5060")]) as bob,
            ):
                async def answer(packet, leg, addr):
                    if isinstance(packet, Request):
                        await bob.deliver(make_response(packet, 200, to_tag=new_tag()))

                bob.set_receiver(answer)
                got = anyio.Event()
                alice.set_receiver(lambda packet, leg, addr: got.set())
                options = Request("OPTIONS", "sip:bob@192.0.2.2:5060", [
                    ("Max-Forwards", "70"), ("From", f"<sip:alice@192.0.2.1>;tag={new_tag()}"),
                    ("To", "<sip:bob@192.0.2.2>"), ("Call-ID", new_call_id()),
                    ("CSeq", "1 OPTIONS"),
                ])
                await alice.deliver(options)
                with anyio.fail_after(32):
                    await got.wait()
            assert fake_network.statistics().delivered >= 2
        """
    )
    result = pytester.runpytest(*QUIET, "-v")
    result.assert_outcomes(passed=2)


def test_passive_without_the_ini_option(pytester: pytest.Pytester) -> None:
    # The user's own anyio_backend, on a virtual clock through the helper,
    # as the how-to shows it.
    (conftest,) = code_blocks(HOWTO, "python")
    pytester.makeconftest(conftest)
    pytester.makepyfile(
        """
        import anyio
        import pytest


        @pytest.mark.anyio
        async def test_on_the_users_backend(anyio_backend):
            assert anyio_backend[0] == "trio"
            start = anyio.current_time()
            await anyio.sleep(100)
            assert anyio.current_time() - start == pytest.approx(100)
        """
    )
    result = pytester.runpytest(*QUIET, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_on_the_users_backend PASSED*"])


def test_a_modules_own_anyio_backend_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makeini(BOTH)
    pytester.makepyfile(
        """
        import pytest


        @pytest.fixture
        def anyio_backend():
            return "asyncio"


        @pytest.mark.anyio
        async def test_once_on_asyncio(anyio_backend):
            import asyncio

            asyncio.get_running_loop()
        """
    )
    result = pytester.runpytest(*QUIET, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_once_on_asyncio PASSED*"])


def test_virtual_time_on_asyncio_without_looptime_says_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(BOTH)
    # As if looptime were not installed: importing it fails.
    pytester.makeconftest("import sys\nsys.modules['looptime'] = None\n")
    pytester.makepyfile(VIRTUAL_TIME_TEST)
    result = pytester.runpytest_subprocess(*QUIET, "--sip-backend=asyncio")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*virtual time on asyncio needs looptime*trio-sip[[]testing[]]*"])


def test_unknown_backend_in_the_ini_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_sip_backends = trio curio\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest(*QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*trio_sip_backends: unknown backend(s) [[]'curio'[]]*"])
