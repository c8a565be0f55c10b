"""Peers that vanish: a clear error, nothing leaked, and the process keeps serving.

Four ways a peer goes away (issue 9): a callee that never answers (Timer B),
a registrar that is down (the UserAgent refreshes with back-off), a TCP peer
that closes in the middle of a message, and a TLS peer whose certificate
does not verify. Each test takes the process's open file descriptors and
running tasks before the peer vanishes, checks they are back to that once it
has, and then runs a normal transaction to show that service goes on.

Timer behaviour runs on the virtual clock (``virtual_time``); the stream
tests run on real loopback sockets, bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
import trustme
from tests.dispatcher._peer import request as peer_request
from tests.ua._helpers import FixedJitter

from trio_sip import DeliveryError, DeliveryFailure, TransportError
from trio_sip import ua as ua_module
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, make_response, parse_message
from trio_sip.server import Registrar
from trio_sip.transport import TCPLeg, TLSLeg
from trio_sip.ua import Call, CallFailed, RegistrationFailed, UserAgent

pytestmark = pytest.mark.anyio

LEG = ["udp:127.0.0.1:0"]
#: Seconds (virtual or real) any single wait of these tests may take.
BOUND = 120.0
#: Timer B and Timer F with the default T1 of 0.5 s (RFC 3261 17.1.1.2, 17.1.2.2).
TIMER_B = 64 * 0.5


# ----- leak accounting -----------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What the process holds: open file descriptors and running tasks."""

    fds: int
    tasks: int


def usage() -> Usage:
    """Open fds of this process (Linux /proc) and tasks of the running event loop."""
    return Usage(len(os.listdir("/proc/self/fd")), len(anyio.get_running_tasks()))


async def assert_nothing_leaked(before: Usage) -> None:
    """Wait (bounded) until the process holds no more than ``before``; fail if it does not.

    Connection tasks end and sockets close a few scheduler rounds after the
    peer has gone; a leak is what is still there after that. Fewer is fine:
    a transaction timer running when ``before`` was taken may have ended.
    """
    now = usage()
    with anyio.move_on_after(5):
        while now.fds > before.fds or now.tasks > before.tasks:
            await anyio.sleep(0.01)
            now = usage()
    assert now.fds <= before.fds, f"{now.fds - before.fds} file descriptors leaked"
    assert now.tasks <= before.tasks, f"{now.tasks - before.tasks} tasks leaked"


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (a counter with no event to wait on) until it holds, bounded."""
    with anyio.fail_after(BOUND):
        while not condition():  # noqa: ASYNC110 - statistics have no event to wait on
            await anyio.sleep(0.01)


async def serve_calls(ua: UserAgent) -> None:
    """Answer every call ``ua`` gets, and let each run until the caller hangs up."""
    async with anyio.create_task_group() as tg:
        async for call in ua.incoming_calls():

            async def take(call: Call = call) -> None:
                await call.answer()
                await call.wait_ended()

            tg.start_soon(take)


def address(ua: UserAgent) -> str:
    return ua.dispatcher.legs[0].sent_by()


# ----- a callee that never answers ---------------------------------------------------


@asynccontextmanager
async def silent_udp() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A UDP socket that reads everything and answers nothing: (port, what came)."""
    got: list[bytes] = []
    async with (
        await anyio.create_udp_socket(local_host="127.0.0.1") as sock,
        anyio.create_task_group() as tg,
    ):

        async def read() -> None:
            async for data, _ in sock:
                got.append(data)

        tg.start_soon(read)
        yield sock.extra(anyio.abc.SocketAttribute.local_port), got
        tg.cancel_scope.cancel()


@pytest.mark.virtual_time
async def test_callee_that_never_answers_fails_at_timer_b_and_leaves_nothing() -> None:
    async with (
        UserAgent("sip:alice@example.com", listen=LEG) as alice,
        UserAgent("sip:bob@example.com", listen=LEG) as bob,
        silent_udp() as (port, got),
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve_calls, bob)
        await anyio.lowlevel.checkpoint()
        before = usage()
        start = anyio.current_time()
        with anyio.fail_after(BOUND):
            async with alice.invite(f"sip:carol@127.0.0.1:{port}") as call:
                with pytest.raises(CallFailed) as failed:
                    await call.wait_answered()
        # RFC 3261 17.1.1.2: Timer B ends the transaction, the TU sees 408.
        assert failed.value.status == 408
        assert anyio.current_time() - start == pytest.approx(TIMER_B)
        # Timer A: sent at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s, then given up.
        invites = [parse_message(data) for data in got]
        assert len(invites) == 7
        assert len({m.top_via.branch for m in invites}) == 1
        # The transaction is gone and nothing of the call is left behind.
        endpoint = alice.endpoint.statistics()
        assert (endpoint.client_transactions, endpoint.dialogs) == (0, 0)
        assert alice.dispatcher.statistics().deliveries_pending == 0
        await assert_nothing_leaked(before)
        # The process keeps serving: a normal call now goes through.
        with anyio.fail_after(BOUND):
            async with alice.invite(f"sip:bob@{address(bob)}") as ok:
                assert (await ok.wait_answered()).status == 200
        tg.cancel_scope.cancel()


# ----- a registrar that is down ------------------------------------------------------


@dataclass
class FlakyRegistrar:
    """A raw UDP registrar that answers only the REGISTERs numbered in ``answer``.

    Numbering counts transactions (a retransmission has its first's number),
    from 1; ``started`` holds when each one first arrived, ``sequence`` its
    Call-ID and CSeq number. Those numbered in ``busy`` get 503 with that
    Retry-After instead.
    """

    answer: set[int]
    granted: int
    busy: dict[int, int] = field(default_factory=dict)
    started: list[float] = field(default_factory=list)
    sequence: list[tuple[str, int]] = field(default_factory=list)
    branches: dict[str, int] = field(default_factory=dict)
    arrived: anyio.Event = field(default_factory=anyio.Event)

    async def run(self, sock: anyio.abc.UDPSocket) -> None:
        async for data, (host, port) in sock:
            request = parse_message(data)
            assert isinstance(request, Request)
            assert request.method == "REGISTER"
            branch = request.top_via.branch or ""
            number = self.branches.get(branch)
            if number is None:
                number = self.branches[branch] = len(self.started) + 1
                self.started.append(anyio.current_time())
                self.sequence.append((request.call_id, request.cseq.seq))
                self.arrived.set()
            if number in self.busy:
                retry_after = [("Retry-After", str(self.busy[number]))]
                busy = make_response(request, 503, to_tag="reg", headers=retry_after)
                await sock.sendto(bytes(busy), host, port)
            elif number in self.answer:
                ok = make_response(
                    request, 200, to_tag="reg", headers=[("Expires", str(self.granted))]
                )
                await sock.sendto(bytes(ok), host, port)

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(20 * BOUND):
            while len(self.started) < count:
                self.arrived = anyio.Event()
                await self.arrived.wait()


@asynccontextmanager
async def registering_at(registrar: FlakyRegistrar) -> AsyncIterator[tuple[UserAgent, str]]:
    """Bob's UserAgent, and the address of ``registrar`` running meanwhile."""
    async with (
        await anyio.create_udp_socket(local_host="127.0.0.1") as sock,
        anyio.create_task_group() as tg,
        UserAgent("sip:bob@example.com", listen=LEG) as bob,
    ):
        tg.start_soon(registrar.run, sock)
        yield bob, f"sip:127.0.0.1:{sock.extra(anyio.abc.SocketAttribute.local_port)}"
        tg.cancel_scope.cancel()


@pytest.mark.virtual_time
@pytest.mark.parametrize("draw", [1.0, 0.0])
async def test_registrar_down_first_register_fails_then_refresh_backs_off_and_recovers(
    monkeypatch: pytest.MonkeyPatch, draw: float
) -> None:
    # Transactions: 1 unanswered (register() raises), 2 answered (bound,
    # refresh in 30 s), 3-13 unanswered (back-off 1, 2, 4 ... 256, 300,
    # 300 s, each wait drawn between half of that and all of it: here at
    # ``draw`` of that range), 14 answered (back-off reset), 15 unanswered,
    # 16 answered.
    monkeypatch.setattr(ua_module, "_jitter", FixedJitter(draw))
    registrar = FlakyRegistrar(answer={2, 14, 16}, granted=60)
    async with registering_at(registrar) as (bob, at):
        before = usage()
        start = anyio.current_time()
        with anyio.fail_after(BOUND), pytest.raises(RegistrationFailed) as failed:
            await bob.register(at, expires=60)
        # A registrar that does not answer: a clear 408 after Timer F, and
        # register() leaves no refresh behind.
        assert failed.value.status == 408
        assert anyio.current_time() - start == pytest.approx(TIMER_B)
        await assert_nothing_leaked(before)

        with anyio.fail_after(BOUND):
            assert (await bob.register(at, expires=60)).status == 200
        await registrar.wait_for(16)
        started = registrar.started[1:]
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(started)]
        # Refresh halfway through the 60 s granted (at most 30 s early); after
        # each failure (Timer F, 32 s) wait 1, 2, 4 ... seconds, capped at 300.
        ceilings = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
        backoff = [round(c * (0.5 + 0.5 * draw), 3) for c in ceilings]
        assert gaps == [30.0, *(TIMER_B + b for b in backoff), 30.0, TIMER_B + backoff[0]]
        # One Call-ID for them all, and the CSeq one higher each time
        # (RFC 3261 section 10.2), the first register() that failed included.
        assert len({call_id for call_id, _ in registrar.sequence}) == 1
        first = registrar.sequence[0][1]
        assert [seq for _, seq in registrar.sequence] == list(range(first, first + 16))
        bob_stats = bob.endpoint.statistics()
        assert bob_stats.client_transactions <= 1


@pytest.mark.virtual_time
async def test_a_busy_registrar_is_left_alone_for_its_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Transactions: 1 answered (refresh in 30 s); 2 gets 503 with
    # Retry-After 120, which is waited out instead of the 1 s back-off; 3
    # gets 503 with Retry-After 5, more than the 2 s back-off; 4 answered
    # (refresh in 30 s again), 5 answered.
    monkeypatch.setattr(ua_module, "_jitter", FixedJitter(1.0))
    registrar = FlakyRegistrar(answer={1, 4, 5}, granted=60, busy={2: 120, 3: 5})
    async with registering_at(registrar) as (bob, at):
        with anyio.fail_after(BOUND):
            assert (await bob.register(at, expires=60)).status == 200
        await registrar.wait_for(5)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(registrar.started)]
    assert gaps == [30.0, 120.0, 5.0, 30.0]


@pytest.mark.virtual_time
@pytest.mark.parametrize(
    "proto",
    [
        "udp",
        # Over TCP a registrar that is down refuses the connection: the
        # refresh's first send fails, and the Endpoint must survive that.
        "tcp",
    ],
)
async def test_registrar_restarted_on_its_port_gets_the_binding_back(proto: str) -> None:
    leg = [f"{proto}:127.0.0.1:0"]
    async with (
        UserAgent("sip:bob@example.com", listen=leg) as bob,
        UserAgent("sip:alice@example.com", listen=leg) as alice,
    ):
        async with Dispatcher(leg) as reg_disp:
            first = Registrar(reg_disp, min_expires=1, clock=anyio.current_time)
            reg_disp.set_receiver(first)
            port = reg_disp.legs[0].port
            with anyio.fail_after(BOUND):
                await bob.register(f"sip:127.0.0.1:{port};transport={proto}", expires=60)
            assert await first.lookup(bob.aor) != []
        # The registrar is gone (its port closed). The refresh at 30 s fails:
        # over UDP it goes unanswered, and the registrar comes back, empty,
        # on the same port while that REGISTER is still being retransmitted
        # (Timer E); over TCP the connection is refused, and the back-off
        # (1, 2, 4, 8 s) reaches the registrar once it is back.
        await anyio.sleep(40)
        async with Dispatcher([f"{proto}:127.0.0.1:{port}"]) as reg_disp:
            second = Registrar(reg_disp, min_expires=1, clock=anyio.current_time)
            reg_disp.set_receiver(second)
            await wait_until(lambda: second.statistics().accepted > 0)
            (binding,) = await second.lookup(bob.aor)
            assert binding.contact == str(bob.contact())
            # Other traffic of the UA went on meanwhile.
            with anyio.fail_after(BOUND):
                await bob.message(f"sip:alice@{address(alice)};transport={proto}", "still here")


# ----- a TCP peer that closes mid-message ------------------------------------------------

OPTIONS = (
    b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:9;rport;branch=z9hG4bK%s\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: %d\r\n\r\n%s"
)


def _options(name: bytes, body: bytes = b"", claimed: int | None = None) -> bytes:
    length = len(body) if claimed is None else claimed
    return OPTIONS % (name, name, length, body)


HALVES = {
    # Half of the header block.
    "headers": _options(b"half")[:60],
    # Every header, and 10 of the 100 body bytes Content-Length promises.
    "body": _options(b"short", b"0123456789", claimed=100),
}


async def _read_response(stream: anyio.abc.ByteStream, bound: float = 10) -> bytes:
    data = b""
    with anyio.fail_after(bound):
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
    return data


@pytest.mark.parametrize("close", ["fin", "reset"])
@pytest.mark.parametrize("part", sorted(HALVES))
async def test_tcp_peer_closing_mid_message_leaks_nothing(part: str, close: str) -> None:
    leg = TCPLeg("127.0.0.1", 0)
    async with (
        UserAgent("sip:bob@example.com", dispatcher=Dispatcher([leg])) as bob,
        UserAgent("sip:alice@example.com", listen=["tcp:127.0.0.1:0"]) as alice,
        # A well-behaved client whose connection stays open throughout.
        await anyio.connect_tcp("127.0.0.1", leg.port) as steady,
    ):
        await steady.send(_options(b"first"))
        assert b"SIP/2.0 200 " in await _read_response(steady)
        before = usage()
        received = bob.endpoint.statistics().requests_received

        vanishing = await anyio.connect_tcp("127.0.0.1", leg.port)
        await vanishing.send(HALVES[part])
        await wait_until(lambda: leg.statistics().extra["open_connections"] == 2)
        if close == "reset":
            raw = vanishing.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await vanishing.aclose()

        # The half message is dropped with its connection, which is closed.
        await wait_until(lambda: leg.statistics().extra["open_connections"] == 1)
        await assert_nothing_leaked(before)
        assert bob.endpoint.statistics().requests_received == received
        assert bob.dispatcher.statistics().receiver_errors == 0
        # The other connection is still served, and new ones are accepted.
        await steady.send(_options(b"second"))
        assert b"SIP/2.0 200 " in await _read_response(steady)
        with anyio.fail_after(10):
            await alice.message(f"sip:bob@{leg.sent_by()};transport=tcp", "after the half")


@pytest.mark.virtual_time
async def test_tcp_peer_that_stops_reading_is_dropped_after_the_send_timeout() -> None:
    # A peer whose host vanished without a FIN or RST looks like this: the
    # connection stays open and our writes stall once its window is full.
    leg = TCPLeg("127.0.0.1", 0, send_timeout=5.0)
    async with (
        UserAgent("sip:bob@example.com", dispatcher=Dispatcher([leg])),
        UserAgent("sip:alice@example.com", listen=["tcp:127.0.0.1:0"]) as alice,
    ):
        bob_at = f"sip:bob@{leg.sent_by()};transport=tcp"
        with anyio.fail_after(BOUND):
            # Alice's connection to bob is open before the count.
            await alice.message(bob_at, "hello")
        before = usage()
        with socket.socket() as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", leg.port))
            peer = stalled.getsockname()
            await wait_until(lambda: leg.connection_to(peer))
            chunk = b"x" * 65536

            async def fill() -> None:
                for _ in range(10_000):  # kernel buffers hold a few MB at most
                    await leg.send(chunk, peer)

            with anyio.fail_after(BOUND), pytest.raises(TransportError) as stuck:
                await fill()
            assert str(stuck.value).startswith("timeout: ")
            # The stalled connection is closed; the others are not held up.
            assert not leg.connection_to(peer)
            with anyio.fail_after(BOUND):
                await alice.message(bob_at, "not stuck")
        await assert_nothing_leaked(before)


async def test_response_without_rport_goes_back_on_the_open_connection() -> None:
    leg = TCPLeg("127.0.0.1", 0)
    async with (
        UserAgent("sip:bob@example.com", dispatcher=Dispatcher([leg])),
        await anyio.connect_tcp("127.0.0.1", leg.port) as client,
    ):
        # RFC 3261 18.2.2: over TCP the response MUST use the connection the
        # request came on while it is open, whatever port the Via names.
        await client.send(_options(b"norport").replace(b";rport", b""))
        assert b"SIP/2.0 200 " in await _read_response(client, bound=2)


# ----- a TLS peer with a bad certificate ----------------------------------------------


@dataclass(frozen=True)
class Pem:
    """One certificate chain and its key, as files."""

    chain: Path
    key: Path


def _write(cert: trustme.LeafCert, base: Path, name: str) -> Pem:
    chain, key = base / f"{name}-chain.pem", base / f"{name}-key.pem"
    cert.private_key_pem.write_to_path(key)
    with chain.open("wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    return Pem(chain, key)


@dataclass(frozen=True)
class Certificates:
    """A CA we trust, a good server certificate, and two bad ones."""

    ca: Path
    good: Pem
    #: issued by a CA nobody trusts (what a self-signed certificate looks like to us)
    untrusted: Pem
    #: issued by our CA, but for another host than the one we ask for
    wrong_host: Pem


HOST = "sip.example.test"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    base = tmp_path_factory.mktemp("vanish-tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(base / "ca.pem")
    return Certificates(
        ca=base / "ca.pem",
        good=_write(ca.issue_cert(HOST, "127.0.0.1"), base, "good"),
        untrusted=_write(trustme.CA().issue_cert(HOST, "127.0.0.1"), base, "untrusted"),
        wrong_host=_write(ca.issue_cert("other.example.test"), base, "wrong"),
    )


def _tls_server(pem: Pem, **kwargs: object) -> TLSLeg:
    return TLSLeg("127.0.0.1", 0, certfile=str(pem.chain), keyfile=str(pem.key), **kwargs)  # type: ignore[arg-type]


def _sips(leg: TLSLeg) -> str:
    # The host is the name the certificate must carry (RFC 5922 section 7);
    # maddr says where it is.
    return f"sips:bob@{HOST}:{leg.port};maddr=127.0.0.1"


@pytest.mark.parametrize("bad", ["untrusted", "wrong_host"])
async def test_tls_server_with_bad_certificate_is_a_clear_error(
    certificates: Certificates, bad: str
) -> None:
    good_leg = _tls_server(certificates.good)
    bad_leg = _tls_server(getattr(certificates, bad))
    client_leg = TLSLeg("127.0.0.1", 0, cafile=str(certificates.ca))
    async with (
        UserAgent("sip:bob@example.com", dispatcher=Dispatcher([good_leg])),
        UserAgent("sip:mallory@example.com", dispatcher=Dispatcher([bad_leg])) as mallory,
        UserAgent("sip:alice@example.com", dispatcher=Dispatcher([client_leg])) as alice,
    ):
        before = usage()
        # The leg itself: a TransportError that says TLS and why.
        with anyio.fail_after(10), pytest.raises(TransportError) as raised:
            await client_leg.send(b"\r\n\r\n", ("127.0.0.1", bad_leg.port), tls_hostname=HOST)
        assert str(raised.value).startswith("tls failure: ")
        assert "certificate verify failed" in str(raised.value)
        # The Dispatcher: a DeliveryError with the TLS reason.
        request = peer_request("OPTIONS", _sips(bad_leg))
        with anyio.fail_after(10), pytest.raises(DeliveryError) as delivery:
            await alice.dispatcher.deliver(request)
        assert delivery.value.reason is DeliveryFailure.TLS_FAILURE
        assert mallory.endpoint.statistics().requests_received == 0
        assert alice.endpoint.statistics().client_transactions == 0
        assert bad_leg.statistics().extra["open_connections"] == 0
        assert client_leg.statistics().extra["open_connections"] == 0
        await assert_nothing_leaked(before)
        # The same Dispatcher goes on serving: the good server is reached.
        with anyio.fail_after(10):
            await alice.message(_sips(good_leg), "hello")


@pytest.mark.virtual_time
@pytest.mark.parametrize("client", ["untrusted", "plaintext", "silent"])
async def test_tls_client_with_bad_certificate_is_refused_and_the_leg_keeps_serving(
    certificates: Certificates, client: str
) -> None:
    server_leg = _tls_server(
        certificates.good, cafile=str(certificates.ca), require_client_cert=True
    )
    async with UserAgent("sip:bob@example.com", dispatcher=Dispatcher([server_leg])) as bob:
        before = usage()
        if client == "untrusted":
            # A client whose certificate comes from a CA the server does not trust.
            rogue_leg = TLSLeg(
                "127.0.0.1",
                0,
                cafile=str(certificates.ca),
                certfile=str(certificates.untrusted.chain),
                keyfile=str(certificates.untrusted.key),
            )
            async with UserAgent(
                "sip:mallory@example.com", dispatcher=Dispatcher([rogue_leg])
            ) as m:
                with anyio.fail_after(BOUND):
                    # TLS 1.3: the client is through its handshake before the
                    # server refuses its certificate; its MESSAGE then goes
                    # unanswered (a response could come on another
                    # connection, RFC 3261 18.2.2) until Timer F: 408.
                    with pytest.raises(CallFailed) as failed:
                        await m.message(_sips(server_leg), "let me in")
                assert failed.value.status in (408, 503)
        elif client == "plaintext":
            # Not TLS at all: a SIP request in clear text to the TLS port.
            async with await anyio.connect_tcp("127.0.0.1", server_leg.port) as plain:
                await plain.send(_options(b"plain"))
                with (
                    anyio.fail_after(10),
                    pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)),
                ):
                    await plain.receive()
        else:
            # Connects and never says hello: the handshake is bounded by the
            # leg's connect_timeout, then the connection is closed.
            async with await anyio.connect_tcp("127.0.0.1", server_leg.port) as silent:
                start = anyio.current_time()
                with (
                    anyio.fail_after(BOUND),
                    pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)),
                ):
                    await silent.receive()
                waited = anyio.current_time() - start
            assert waited == pytest.approx(server_leg.connect_timeout, abs=0.1)
        assert bob.endpoint.statistics().requests_received == 0
        await assert_nothing_leaked(before)
        good_leg = TLSLeg(
            "127.0.0.1",
            0,
            cafile=str(certificates.ca),
            certfile=str(certificates.good.chain),
            keyfile=str(certificates.good.key),
        )
        async with UserAgent("sip:alice@example.com", dispatcher=Dispatcher([good_leg])) as alice:
            with anyio.fail_after(10):
                await alice.message(_sips(server_leg), "hello")
        assert bob.endpoint.statistics().requests_received == 1


@pytest.mark.parametrize("peer", ["tcp-closed", "tls-untrusted"])
async def test_request_whose_first_send_fails_ends_at_once_with_503(
    certificates: Certificates, peer: str
) -> None:
    tls_leg = TLSLeg("127.0.0.1", 0, cafile=str(certificates.ca))
    async with (
        UserAgent(
            "sip:mallory@example.com", dispatcher=Dispatcher([_tls_server(certificates.untrusted)])
        ) as mallory,
        UserAgent(
            "sip:alice@example.com", dispatcher=Dispatcher(["tcp:127.0.0.1:0", tls_leg])
        ) as alice,
    ):
        if peer == "tcp-closed":
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                target = f"sip:bob@127.0.0.1:{probe.getsockname()[1]};transport=tcp"
        else:
            target = _sips(mallory.dispatcher.legs[0])  # type: ignore[arg-type]
        # RFC 3261 8.1.3.1: a transport error is a 503 for the TU, at once
        # (not Timer F), and the UserAgent goes on.
        with anyio.fail_after(10), pytest.raises(CallFailed) as failed:
            await alice.message(target, "anyone?")
        assert failed.value.status == 503
        assert alice.endpoint.statistics().client_transactions == 0
