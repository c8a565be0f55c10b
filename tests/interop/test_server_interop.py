"""SIPp against the registrar, Authorize and the stateless proxy.

- SIPp's uac calls SIPp's uas through the proxy over UDP, over TCP, and with
  UDP on the caller's side and TCP on the callee's;
- SIPp registers with digest authentication (its ``[authentication]``
  keyword): the right password gets 200, a wrong one 403;
- a SIPp UAS registered at our registrar is called through the proxy by its
  address-of-record.
"""

from __future__ import annotations

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.message import URI
from trio_sip.message.digest import Algorithm
from trio_sip.server import Authorize, ReceiveChain, Registrar, StatelessProxy

from .peers import SCENARIOS, Address, NetSipUas, SippServer, Transport, free_port, run_sipp

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

PROXY_LEGS = ("udp:127.0.0.1:0", "tcp:127.0.0.1:0")


def leg_port(disp: Dispatcher, transport: Transport) -> int:
    (leg,) = disp.get_legs(proto=transport.value)
    return leg.port


@pytest.mark.parametrize(
    ("caller", "callee"),
    [
        (Transport.UDP, Transport.UDP),
        (Transport.TCP, Transport.TCP),
        (Transport.UDP, Transport.TCP),
    ],
    ids=["udp", "tcp", "udp-to-tcp"],
)
async def test_sipp_calls_through_the_proxy(
    sipp: str, caller: Transport, callee: Transport
) -> None:
    calls = 20
    async with SippServer("uas", transport=callee, program=sipp) as uas:
        # The uac's Request-URI names the uas; the proxy gets every packet (-rsa)
        # and sends it on over the callee's transport.
        next_hop = f"sip:{uas.address};transport={callee.value}"
        async with Dispatcher(
            PROXY_LEGS,
            response_cache=False,
            do_retransmits=False,
            domain2proxy={"127.0.0.1": next_hop},
        ) as disp:
            proxy = StatelessProxy(disp, record_route=True)
            disp.set_receiver(proxy)
            result = await run_sipp(
                "uac",
                uas.address,
                transport=caller,
                calls=calls,
                rate=20,
                global_timeout=30,
                extra_args=["-rsa", f"127.0.0.1:{leg_port(disp, caller)}"],
                program=sipp,
            )
            stats = proxy.statistics()
    assert result.ok, result.describe()
    assert result.successful == calls
    # INVITE, ACK, BYE per call at least; 100/180/200 and 200 back.
    assert stats.requests_forwarded >= 3 * calls
    assert stats.responses_forwarded >= 3 * calls
    assert stats.answered == 0


@pytest.mark.parametrize(
    ("password", "scenario"),
    [("secret", "register_auth.xml"), ("guess", "register_refused.xml")],
    ids=["right-password", "wrong-password"],
)
async def test_sipp_register_with_digest(sipp: str, password: str, scenario: str) -> None:
    async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
        registrar = Registrar(disp)
        # SIPp 3.6 answers MD5 only, and the first challenge it finds.
        auth = Authorize(
            disp, "example.com", {"alice": "secret"}, algorithms=[Algorithm.MD5, Algorithm.SHA_256]
        )
        disp.set_receiver(ReceiveChain([auth, registrar]))
        port = disp.legs[0].port
        result = await run_sipp(
            SCENARIOS / scenario,
            Address("127.0.0.1", port),
            calls=1,
            global_timeout=10,
            extra_args=[
                "-s",
                "alice",
                "-au",
                "alice",
                "-ap",
                password,
                "-key",
                "contact",
                "127.0.0.1:5999",
            ],
            program=sipp,
        )
        bindings = await registrar.lookup(registrar_uri(port))
    assert result.ok, result.describe()
    assert auth.statistics().challenged == 1
    if password == "secret":
        assert [b.contact for b in bindings] == ["sip:alice@127.0.0.1:5999"]
    else:
        assert bindings == []
        assert auth.statistics().refused == 1


def registrar_uri(port: int) -> URI:
    return URI.parse(f"sip:alice@127.0.0.1:{port}")


async def test_registered_sipp_uas_is_reached_by_its_aor(sipp: str) -> None:
    calls = 5
    # The registrar has its own Dispatcher, with the response cache that
    # answers retransmitted REGISTERs; the proxy shares its bindings.
    async with (
        SippServer("uas", transport=Transport.TCP, program=sipp) as uas,
        Dispatcher(["udp:127.0.0.1:0"]) as reg_disp,
        Dispatcher(PROXY_LEGS, response_cache=False, do_retransmits=False) as proxy_disp,
    ):
        registrar = Registrar(reg_disp)
        reg_disp.set_receiver(
            ReceiveChain(
                [
                    Authorize(reg_disp, "example.com", {"bob": "pw"}, algorithms=[Algorithm.MD5]),
                    registrar,
                ]
            )
        )
        proxy = StatelessProxy(proxy_disp, registrar=registrar)
        proxy_disp.set_receiver(proxy)
        registered = await run_sipp(
            SCENARIOS / "register_auth.xml",
            Address("127.0.0.1", reg_disp.legs[0].port),
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
                f"{uas.address};transport=tcp",
            ],
            program=sipp,
        )
        assert registered.ok, registered.describe()
        proxy_udp = leg_port(proxy_disp, Transport.UDP)
        # The uac calls sip:bob@127.0.0.1:<proxy>: the AOR bob registered.
        result = await run_sipp(
            "uac",
            Address("127.0.0.1", proxy_udp),
            calls=calls,
            rate=10,
            global_timeout=20,
            extra_args=["-s", "bob"],
            program=sipp,
        )
        stats = proxy.statistics()
    assert result.ok, result.describe()
    assert result.successful == calls
    assert stats.answered == 0


async def run_netsip_ua(perl: str, *args: str) -> list[str]:
    port = free_port("127.0.0.1", "udp")
    argv = [perl, str(SCENARIOS / "netsip_ua.pl"), "--addr", "127.0.0.1", "--port", str(port)]
    with anyio.fail_after(30):
        done = await anyio.run_process([*argv, "--timeout", "15", *args], check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode().splitlines()


async def test_netsip_registers_with_auth_and_calls_through_the_proxy(netsip: str) -> None:
    async with (
        NetSipUas() as uas,
        Dispatcher(["udp:127.0.0.1:0"]) as reg_disp,
        Dispatcher(["udp:127.0.0.1:0"], response_cache=False, do_retransmits=False) as proxy_disp,
    ):
        registrar = Registrar(reg_disp, domains=["example.com"])
        auth = Authorize(reg_disp, "example.com", {"bob": "pw"})
        reg_disp.set_receiver(ReceiveChain([auth, registrar]))
        proxy = StatelessProxy(proxy_disp, registrar=registrar, domains=["example.com"])
        proxy_disp.set_receiver(proxy)
        registrar_at = f"127.0.0.1:{reg_disp.legs[0].port}"
        proxy_at = f"127.0.0.1:{proxy_disp.legs[0].port}"
        # Net::SIP registers the UAS's contact for bob, answering the 401.
        lines = await run_netsip_ua(
            netsip,
            "--from", "sip:bob@example.com",
            "--registrar", registrar_at,
            "--user", "bob", "--password", "pw",
            "--contact", f"sip:bob@{uas.address}",
        )  # fmt: skip
        assert lines[0].startswith("REGISTER OK"), lines
        assert auth.statistics().challenged == 1
        # Alice calls bob's AOR through the proxy; bob's UAS answers; BYE.
        lines = await run_netsip_ua(
            netsip, "--from", "sip:alice@example.com", "--proxy", proxy_at,
            "--call", "sip:bob@example.com",
        )  # fmt: skip
        assert lines == ["CALL OK", "BYE DONE"]
        forwarded = proxy.statistics().requests_forwarded
        assert forwarded >= 3  # INVITE, ACK, BYE
        # An unknown user: 404 from the proxy, and its ACK stops there.
        lines = await run_netsip_ua(
            netsip, "--from", "sip:alice@example.com", "--proxy", proxy_at,
            "--call", "sip:nobody@example.com",
        )  # fmt: skip
        assert lines == ["CALL FAIL 404"]
        stats = proxy.statistics()
    assert stats.answered == 1
    assert stats.requests_forwarded == forwarded
