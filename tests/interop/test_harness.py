"""The interop harness itself, proved with real peers only (no trio-sip code).

If these fail, an interop test failing elsewhere says nothing about trio-sip.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import anyio
import pytest

from .peers import (
    SCENARIOS,
    Address,
    KamailioProxy,
    NetSipProxy,
    NetSipUas,
    PeerError,
    SippExit,
    SippServer,
    Transport,
    free_port,
    require_program,
    run_sipp,
)

CALLS = 20

# --------------------------------------------------------------------------
# Discovery and ports: no peer needed
# --------------------------------------------------------------------------


@pytest.fixture
def user_machine(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment where peers are optional; tests add CI variables to it."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TRIO_SIP_REQUIRE_PEERS", raising=False)
    return monkeypatch


@pytest.mark.parametrize("ci", [None, "", "false", "0", "FALSE"])
def test_missing_program_is_a_skip_on_a_user_machine(
    user_machine: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is not None:
        user_machine.setenv("CI", ci)
    with pytest.raises(
        pytest.skip.Exception,
        match=r"^no-such-sip-peer not found: install Debian package no-such-package$",
    ):
        require_program("no-such-sip-peer", "no-such-package")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CI", "true"), ("CI", "1"), ("CI", "yes"), ("TRIO_SIP_REQUIRE_PEERS", "1")],
)
def test_missing_program_is_a_failure_when_peers_are_required(
    user_machine: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    user_machine.setenv(variable, value)
    with pytest.raises(pytest.fail.Exception, match="no-such-sip-peer not found"):
        require_program("no-such-sip-peer", "no-such-package")


def test_present_program_is_found(user_machine: pytest.MonkeyPatch) -> None:
    user_machine.setenv("CI", "true")
    # Python itself is always on PATH where the tests run.
    assert os.path.basename(require_program("python3", "python3")).startswith("python3")


@pytest.mark.parametrize("kind", ["udp", "tcp", "both"])
def test_free_port_can_be_bound(kind: str) -> None:
    port = free_port("127.0.0.1", kind)  # type: ignore[arg-type]
    kinds = {"udp": [socket.SOCK_DGRAM], "tcp": [socket.SOCK_STREAM]}.get(
        kind, [socket.SOCK_DGRAM, socket.SOCK_STREAM]
    )
    for sock_type in kinds:
        with socket.socket(socket.AF_INET, sock_type) as sock:
            sock.bind(("127.0.0.1", port))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::", "localhost"])
def test_peers_stay_on_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        free_port(host)
    with pytest.raises(ValueError, match="loopback"):
        Address(host, 5060)


def test_address_text() -> None:
    assert str(Address("127.0.0.1", 5060)) == "127.0.0.1:5060"
    assert str(Address("::1", 5060)) == "[::1]:5060"


# --------------------------------------------------------------------------
# SIPp against SIPp
# --------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.anyio
@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
async def test_sipp_uac_to_sipp_uas(sipp: str, transport: Transport) -> None:
    async with SippServer("uas", transport=transport) as uas:
        result = await run_sipp("uac", uas.address, transport=transport, calls=CALLS, rate=200)
    assert result.ok, result.describe()
    assert result.outcome is SippExit.ALL_SUCCEEDED
    assert result.successful == CALLS
    assert uas.result is not None
    assert uas.result.created == CALLS, uas.result.describe()
    if transport is Transport.UDP:
        # Stopped by SIGTERM: the server's last calls may still have been in
        # the uas scenario's final timewait, counted as running, not yet
        # successful. (Over TCP the uac's exit closes the connection under
        # one of them, which SIPp counts as failed: the uac is the judge.)
        assert uas.result.failed == 0, uas.result.describe()
        assert uas.result.successful + uas.result.current == CALLS, uas.result.describe()


@pytest.mark.interop
@pytest.mark.anyio
async def test_sipp_over_ipv6(sipp: str, ipv6_loopback: str) -> None:
    async with SippServer("uas", host=ipv6_loopback) as uas:
        result = await run_sipp("uac", uas.address, calls=5)
    assert result.ok, result.describe()


@pytest.mark.interop
@pytest.mark.anyio
async def test_closed_port_gives_failed_calls_not_a_hang(sipp: str) -> None:
    closed = Address("127.0.0.1", free_port("127.0.0.1", "udp"))
    started = time.monotonic()
    result = await run_sipp("uac", closed, calls=3, recv_timeout=0.3, global_timeout=5)
    assert time.monotonic() - started < 4
    assert not result.ok
    assert result.outcome is SippExit.SOME_FAILED, result.describe()
    assert (result.created, result.successful, result.failed) == (3, 0, 3)
    assert "receive timeout" in result.errors_tail
    assert "Failed call" in result.screen_tail


@pytest.mark.interop
@pytest.mark.anyio
async def test_global_timeout_is_reported(sipp: str) -> None:
    closed = Address("127.0.0.1", free_port("127.0.0.1", "udp"))
    # No receive timeout: the INVITEs would be retransmitted for 32 s, but the
    # global timeout ends the run after one second.
    result = await run_sipp("uac", closed, calls=2, global_timeout=1)
    assert result.timed_out
    assert result.outcome is SippExit.FATAL
    assert result.current == 2
    assert result.elapsed < 3
    assert not result.ok
    assert "after the global timeout" in result.describe()


@pytest.mark.interop
@pytest.mark.anyio
async def test_sipp_server_is_reaped_on_cancellation(sipp: str) -> None:
    with anyio.move_on_after(0.2) as scope:
        async with SippServer("uas") as uas:
            pid = uas.pid
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    # Stopped by SIGTERM, and its statistics read back: 0 or 97 depending on
    # whether calls were running.
    assert uas.result is not None
    assert uas.result.outcome in (SippExit.ALL_SUCCEEDED, SippExit.INTERNAL_COMMAND)
    assert uas.result.stats
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.interop
@pytest.mark.anyio
async def test_graceful_stop_of_an_idle_server_is_immediate(sipp: str) -> None:
    started = time.monotonic()
    async with SippServer("uas", graceful_stop=True):
        pass
    assert time.monotonic() - started < 2


@pytest.mark.interop
@pytest.mark.anyio
async def test_server_that_does_not_stop_is_killed(sipp: str) -> None:
    # SIGUSR1 lets the call finish its 4-second timewait: longer than the
    # 0.3 s the harness grants before it kills the process group.
    async with SippServer("uas", graceful_stop=True, stop_timeout=0.3) as uas:
        assert (await run_sipp("uac", uas.address)).ok
        pid = uas.pid
    assert uas.result is not None
    assert uas.result.exit_code == -signal.SIGKILL
    assert uas.result.outcome is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.interop
@pytest.mark.anyio
async def test_port_in_use_is_an_error(sipp: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        with pytest.raises(PeerError, match="already in use"):
            async with SippServer("uas", port=port):
                pytest.fail("the server cannot have started on a port in use")


@pytest.mark.interop
@pytest.mark.anyio
async def test_peer_that_exits_at_start_is_an_error(sipp: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<scenario><recv request=")
    with pytest.raises(PeerError, match=r"(?s)exited with \d+ before it was ready.*broken\.xml"):
        async with SippServer(broken):
            pytest.fail("SIPp cannot run a broken scenario")


@pytest.mark.interop
@pytest.mark.anyio
async def test_background_mode_is_refused(sipp: str) -> None:
    with pytest.raises(ValueError, match="-bg"):
        await run_sipp("uac", Address("127.0.0.1", 9), extra_args=["-bg"])


# --------------------------------------------------------------------------
# SIPp against Net::SIP and through proxies
# --------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.anyio
@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
async def test_sipp_uac_to_netsip_uas(sipp: str, netsip: str, transport: Transport) -> None:
    async with NetSipUas(transport=transport, program=netsip) as uas:
        result = await run_sipp("uac", uas.address, transport=transport, calls=CALLS, rate=200)
    assert result.ok, result.describe() + "\n" + uas.logs()
    # The logs outlive the peer's temporary directory, for failure reports.
    assert f"READY {transport.value} 127.0.0.1 {uas.address.port}" in uas.logs()


@pytest.mark.interop
@pytest.mark.anyio
async def test_sipp_xml_scenario_options_to_netsip_uas(sipp: str, netsip: str) -> None:
    async with NetSipUas(program=netsip) as uas:
        result = await run_sipp(SCENARIOS / "options_uac.xml", uas.address, calls=5)
    assert result.ok, result.describe()
    assert "-sf" in result.command


@pytest.mark.interop
@pytest.mark.anyio
@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
async def test_sipp_through_netsip_stateless_proxy(
    sipp: str, netsip: str, transport: Transport
) -> None:
    async with (
        SippServer("uas", transport=transport) as uas,
        NetSipProxy(next_hop=uas.address, transport=transport, program=netsip) as proxy,
    ):
        result = await run_sipp("uac", proxy.address, transport=transport, calls=CALLS, rate=200)
    assert result.ok, result.describe() + "\n" + proxy.logs()


@pytest.mark.interop
@pytest.mark.anyio
@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
async def test_sipp_through_kamailio_stateless_proxy(
    sipp: str, kamailio: str, transport: Transport
) -> None:
    async with (
        SippServer("uas", transport=transport) as uas,
        KamailioProxy(next_hop=uas.address, program=kamailio) as proxy,
    ):
        result = await run_sipp("uac", proxy.address, transport=transport, calls=CALLS, rate=200)
    assert result.ok, result.describe() + "\n" + proxy.logs()
    assert uas.result is not None
    assert uas.result.successful + uas.result.current == CALLS, uas.result.describe()


@pytest.mark.interop
@pytest.mark.anyio
async def test_sipp_through_kamailio_over_ipv6(
    sipp: str, kamailio: str, ipv6_loopback: str
) -> None:
    async with (
        SippServer("uas", host=ipv6_loopback) as uas,
        KamailioProxy(next_hop=uas.address, host=ipv6_loopback, program=kamailio) as proxy,
    ):
        result = await run_sipp("uac", proxy.address, calls=5)
    assert result.ok, result.describe() + "\n" + proxy.logs()
