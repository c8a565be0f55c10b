"""SIPp against the ``trio-sip`` command, run as a subprocess on the test's backend.

- SIPp's uac calls SIPp's uas through ``trio-sip proxy``;
- SIPp registers with digest authentication at ``trio-sip proxy --registrar
  --user``, and a second uac then reaches the registered uas by its
  address-of-record through the same proxy;
- the command stops on SIGINT and its statistics summary counts the work.
"""

from __future__ import annotations

import pytest

from cli_process import trio_sip

from .peers import SCENARIOS, Address, SippServer, run_sipp

pytestmark = [pytest.mark.anyio, pytest.mark.interop]


async def test_sipp_calls_through_the_proxy_command(sipp: str, anyio_backend_name: str) -> None:
    calls = 10
    async with (
        SippServer("uas", program=sipp) as uas,
        trio_sip(
            "--backend", anyio_backend_name, "proxy", "--record-route",
            "--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0",
            legs=2,
        ) as proxy,
    ):  # fmt: skip
        result = await run_sipp(
            "uac",
            uas.address,
            calls=calls,
            rate=20,
            global_timeout=30,
            extra_args=["-rsa", f"127.0.0.1:{proxy.port('udp')}"],
            program=sipp,
        )
    assert result.ok, result.describe()
    assert result.successful == calls
    assert proxy.returncode == 0, proxy.err
    forwarded = int(proxy.out.split("requests_forwarded=")[1].split()[0])
    assert forwarded >= 3 * calls  # INVITE, ACK, BYE per call


async def test_sipp_registers_with_auth_and_is_called_by_its_aor(
    sipp: str, anyio_backend_name: str
) -> None:
    calls = 3
    async with (
        SippServer("uas", program=sipp) as uas,
        trio_sip(
            "--backend", anyio_backend_name, "proxy", "--registrar", "--user", "bob:pw",
            "--algorithm", "MD5",
            "--listen", "udp:127.0.0.1:0",
        ) as server,
    ):  # fmt: skip
        port = server.port()
        registered = await run_sipp(
            SCENARIOS / "register_auth.xml",
            Address("127.0.0.1", port),
            calls=1,
            global_timeout=10,
            extra_args=[
                "-s",
                "bob",
                "-au",
                "bob",
                "-ap",
                "pw",
                "-key",
                "contact",
                str(uas.address),
            ],
            program=sipp,
        )
        assert registered.ok, registered.describe()
        wrong = await run_sipp(
            SCENARIOS / "register_refused.xml",
            Address("127.0.0.1", port),
            calls=1,
            global_timeout=10,
            extra_args=["-s", "bob", "-au", "bob", "-ap", "guess", "-key", "contact", "x"],
            program=sipp,
        )
        assert wrong.ok, wrong.describe()
        # sip:bob@127.0.0.1:<proxy> is the AOR bob registered: the proxy
        # finds the uas in the location service.
        result = await run_sipp(
            "uac",
            Address("127.0.0.1", port),
            calls=calls,
            rate=10,
            global_timeout=20,
            extra_args=["-s", "bob"],
            program=sipp,
        )
    assert result.ok, result.describe()
    assert result.successful == calls
    assert server.returncode == 0, server.err
    assert "registrar: registers=1 accepted=1" in server.out  # the refused one stops at auth
    assert "authorize: challenged=2 accepted=1 refused=1" in server.out
