"""The Endpoint against real peers: SIPp's uas and uac, and a Net::SIP UAS.

Real time and real programs on loopback: each call is a full INVITE, ACK,
BYE flow, with the Endpoint's transaction machines doing every
retransmission and the dialog doing the ACK and BYE.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.endpoint import DialogState, Endpoint
from trio_sip.message import Request

from .peers import SCENARIOS, Address, NetSipUas, SippServer, Transport, run_sipp

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
SDP_HEADERS = [("Content-Type", "application/sdp")]

TRANSPORTS = pytest.mark.parametrize(
    "transport", [Transport.UDP, Transport.TCP], ids=["udp", "tcp"]
)


def _proto(transport: Transport) -> str:
    return "tcp" if transport is Transport.TCP else "udp"


def _uri(address: Address, transport: Transport, user: str = "service") -> str:
    suffix = ";transport=tcp" if transport is Transport.TCP else ""
    return f"sip:{user}@{address}{suffix}"


async def _call_and_hang_up(ep: Endpoint, uri: str) -> None:
    with anyio.fail_after(20):
        call = await ep.new_request("INVITE", uri, headers=SDP_HEADERS, body=SDP)
        final = await call.wait_final()
        assert final.status == 200, final.summary()
        dialog = call.dialogs[0]
        assert dialog.state is DialogState.CONFIRMED
        await anyio.sleep(0.5)
        bye = await ep.request(dialog, "BYE")
    assert bye.status == 200, bye.summary()
    assert ep.dialogs == ()


@TRANSPORTS
async def test_endpoint_uac_calls_sipp_uas(sipp: str, transport: Transport) -> None:
    # SIPp is stopped first (innermost), our connection closed after: over
    # TCP a SIPp that sees the connection close while a finished call sits
    # in its 4 s timewait counts that call failed, depending on which of
    # the two it notices first.
    async with (
        Dispatcher([f"{_proto(transport)}:127.0.0.1:0"]) as disp,
        Endpoint(disp, user="caller") as ep,
        SippServer("uas", transport=transport, program=sipp) as uas,
    ):
        for _ in range(3):
            await _call_and_hang_up(ep, _uri(uas.address, transport))
    assert uas.result is not None
    assert uas.result.failed == 0, uas.result.describe()
    # The built-in uas waits 4 s after each BYE: finished calls count as
    # successful or, still in that wait when SIPp is stopped, current.
    assert uas.result.successful + uas.result.current == 3, uas.result.describe()


@TRANSPORTS
async def test_sipp_uac_calls_endpoint_uas(sipp: str, transport: Transport) -> None:
    calls = 10
    invites = 0

    async def answer(ep: Endpoint, request: Request) -> None:
        nonlocal invites
        if request.method == "INVITE":
            invites += 1
            await ep.respond(request, 180)
            await ep.respond(request, 200, headers=SDP_HEADERS, body=SDP)
        else:
            await ep.respond(request, 200)

    async def serve(ep: Endpoint) -> None:
        async with anyio.create_task_group() as tg:
            async for request in ep.incoming():
                tg.start_soon(answer, ep, request)

    async with (
        Dispatcher([f"{_proto(transport)}:127.0.0.1:0"]) as disp,
        Endpoint(disp, user="callee") as ep,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, ep)
        leg = disp.legs[0]
        result = await run_sipp(
            SCENARIOS / "uac_txn.xml",
            Address("127.0.0.1", leg.port),
            transport=transport,
            calls=calls,
            rate=10,
            global_timeout=30,
            program=sipp,
        )
        # Every BYE was answered by the Endpoint, which ended the dialog.
        with anyio.fail_after(5):
            for dialog in ep.dialogs:
                await ep.wait_dialog_ended(dialog)
        pending = ep.statistics().pending_2xx
        tg.cancel_scope.cancel()
    assert result.ok, result.describe()
    assert result.successful == calls
    assert invites == calls
    assert pending == 0  # every 2xx was acknowledged


async def test_endpoint_uac_calls_netsip_uas(netsip: str) -> None:
    # UDP only: over TCP, Net::SIP's 200 carries a Contact without
    # ;transport=tcp, which RFC 3263 sends over UDP, where it does not listen.
    async with (
        NetSipUas(transport=Transport.UDP, program=netsip) as uas,
        Dispatcher(["udp:127.0.0.1:0"]) as disp,
        Endpoint(disp, user="caller") as ep,
    ):
        for _ in range(3):
            await _call_and_hang_up(ep, _uri(uas.address, Transport.UDP, "netsip-uas"))


# A Net::SIP caller: INVITE, wait for the 200 (Net::SIP sends the ACK), BYE.
# Prints what happened; exits 0 only when the BYE got its final response.
NETSIP_UAC = r"""
use strict;
use warnings;
use Net::SIP qw(:all);
my ($proto, $addr, $to) = @ARGV;
$SIG{ALRM} = sub { print "TIMEOUT\n"; exit(3) };
alarm(30);
my $ua = Simple->new(
    from => 'sip:netsip-uac@localhost',
    leg  => { proto => $proto, addr => $addr, port => 0 },
);
my $call = $ua->invite($to, init_media => undef)
    or do { print "INVITE FAILED: ", $ua->error, "\n"; exit(1) };
print "ESTABLISHED\n";
my $done;
$call->bye(cb_final => \$done);
$ua->loop(10, \$done);
print $done ? "BYE DONE\n" : "BYE TIMEOUT\n";
exit($done ? 0 : 2);
"""


@TRANSPORTS
async def test_netsip_uac_calls_endpoint_uas(
    netsip: str, transport: Transport, tmp_path: Path
) -> None:
    script = tmp_path / "netsip_uac.pl"
    script.write_text(NETSIP_UAC)
    invites: list[Request] = []

    async def serve(ep: Endpoint) -> None:
        async for request in ep.incoming():
            if request.method == "INVITE":
                invites.append(request)
                await ep.respond(request, 200, headers=SDP_HEADERS, body=SDP)
            else:
                await ep.respond(request, 200)

    async with (
        Dispatcher([f"{_proto(transport)}:127.0.0.1:0"]) as disp,
        Endpoint(disp, user="callee") as ep,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, ep)
        target = _uri(Address("127.0.0.1", disp.legs[0].port), transport, "callee")
        with anyio.fail_after(40):
            result = await anyio.run_process(
                [netsip, str(script), _proto(transport), "127.0.0.1", target], check=False
            )
        dialogs = ep.dialogs
        pending = ep.statistics().pending_2xx
        tg.cancel_scope.cancel()
    output = result.stdout.decode() + result.stderr.decode()[-2000:]
    assert result.returncode == 0, output
    assert "BYE DONE" in output
    assert len(invites) == 1
    assert dialogs == ()  # the BYE ended it
    assert pending == 0  # Net::SIP's ACK arrived
