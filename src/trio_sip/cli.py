"""The ``trio-sip`` command.

``trio-sip proxy`` runs a stateless proxy (with a registrar and location
service under ``--registrar``); ``trio-sip registrar`` runs a registrar alone;
``trio-sip options URI`` pings a SIP server with OPTIONS and prints the
answer; ``trio-sip parse`` checks a message read from standard input;
``trio-sip demo`` runs a responder and pings it over loopback, to show a
fresh installation working end to end. Global options choose the async
backend (``--backend trio|asyncio``), log every SIP message (``-v``) and
write the log as JSON lines (``--log-json``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import math
import os
import signal
import sqlite3
import ssl
import sys
import time
import wave
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Hashable,
    Mapping,
    Sequence,
)
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import anyio

from . import __version__
from .dispatcher import Dispatcher
from .distributor import READY, WorkerPlace, run_distributor
from .errors import DeliveryError, ParseError, SIPError, TransportError
from .media import DEFAULT_CODECS, MediaSession, MediaStatistics, PortRange
from .media.handlers import echo, load_audio, play, record, silence
from .message import (
    URI,
    NameAddr,
    Request,
    Response,
    make_response,
    new_call_id,
    new_tag,
    parse_message,
)
from .message.digest import Algorithm
from .message.sdp import RtpMap
from .server import (
    Authorize,
    BindingStore,
    ReceiveChain,
    Registrar,
    StatelessProxy,
    reply,
)
from .server.redis import RedisURL
from .server.store import open_store
from .transport import Leg, UDPLeg
from .transport.leg import Address, format_address, parse_address, parse_leg_spec
from .transport.shard import InboxUDPLeg, call_id_of_shard
from .ua import Call, CallFailed, UserAgent

log = logging.getLogger("trio_sip.cli")
#: The logger of ``-v``: one record per SIP message sent or received.
trace_log = logging.getLogger("trio_sip.trace")


def _parse(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read()
    try:
        msg = parse_message(data)
        msg.validate()
    except ParseError as exc:
        print(f"invalid ({exc.status_hint}): {exc.reason}", file=sys.stderr)
        return 1
    print(msg.summary())
    for name, value in msg.headers:
        print(f"  {name}: {value}")
    return 0


def options_request(target: URI, leg: Leg) -> Request:
    """An out-of-dialog OPTIONS for ``target`` (RFC 3261 section 11.1)."""
    contact = leg.contact_uri("trio-sip")
    return Request(
        "OPTIONS",
        target,
        [
            ("Max-Forwards", "70"),
            ("From", f"<sip:trio-sip@{leg.sent_by()}>;tag={new_tag()}"),
            ("To", f"<{target}>"),
            ("Call-ID", new_call_id()),
            ("CSeq", "1 OPTIONS"),
            ("Contact", f"<{contact}>"),
            ("Accept", "application/sdp"),
            ("Content-Length", "0"),
        ],
    )


async def ping(disp: Dispatcher, target: URI) -> Response:
    """Send OPTIONS to ``target`` and wait for the final response.

    Raises DeliveryError when the request cannot be delivered or times out
    (Timer F). Bound the wait with ``anyio.fail_after`` for less.
    """
    answered: list[Response] = []
    failed: list[DeliveryError] = []
    done = anyio.Event()

    def receive(packet: Request | Response, leg: Leg, addr: object) -> None:
        if (
            isinstance(packet, Response)
            and packet.status >= 200
            and packet.cseq.method == "OPTIONS"
        ):
            answered.append(packet)
            done.set()

    def delivered(error: DeliveryError | None) -> None:
        if error is not None:
            failed.append(error)
            done.set()

    disp.set_receiver(receive)
    leg = disp.legs[0]
    await disp.deliver(options_request(target, leg), callback=delivered)
    await done.wait()
    if answered:
        return answered[0]
    raise failed[0]


async def _options(args: argparse.Namespace) -> int:
    target = URI.parse(args.uri)
    stop: anyio.CancelScope = getattr(args, "stop", None) or anyio.CancelScope()
    async with _dispatcher(args, [_leg_spec(args, args.listen)], t1=args.t1) as disp:
        with stop:
            try:
                response = await ping(disp, target)
            except DeliveryError as exc:
                print(f"no answer from {target}: {exc}", file=sys.stderr)
                return 2
    if stop.cancel_called:
        return 130  # 128 + SIGINT, as for call
    print(response.start_line)
    for name, value in response.headers:
        print(f"{name}: {value}")
    return 0 if response.status < 300 else 1


class Responder:
    """Answers every request on a Dispatcher: 200 (with 180 first for INVITE)."""

    def __init__(self, disp: Dispatcher) -> None:
        self.disp = disp

    async def receive(self, packet: Request | Response, leg: Leg, addr: object) -> None:
        """Answer ``packet`` if it is a request (never an ACK)."""
        if not isinstance(packet, Request) or packet.method == "ACK":
            return
        tag = new_tag()
        contact = ("Contact", f"<{leg.contact_uri('trio-sip')}>")
        if packet.method == "INVITE":
            await self.disp.deliver(make_response(packet, 180, to_tag=tag))
        allow = ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")
        await self.disp.deliver(make_response(packet, 200, to_tag=tag, headers=[contact, allow]))


async def _demo(args: argparse.Namespace) -> int:
    async with Dispatcher(["udp:127.0.0.1:0"]) as server, Dispatcher(["udp:127.0.0.1:0"]) as client:
        server.set_receiver(Responder(server))
        address = server.legs[0].sent_by()
        print(f"responder listening on udp:{address}")
        with anyio.fail_after(10):
            response = await ping(client, URI.parse(f"sip:demo@{address}"))
        print(f"OPTIONS sip:demo@{address} -> {response.start_line}")
        print(
            f"client: {client.statistics().packets_out} sent, server: "
            f"{server.statistics().packets_in} received"
        )
    return 0


# ----- message tracing (-v) ---------------------------------------------------------------


def _trace(direction: str, packet: Request | Response, where: str) -> None:
    # One record per message: a header line, then the message as it is on the
    # wire, so that a reader can follow a call flow in the log.
    text = bytes(packet).decode("utf-8", "replace").rstrip("\r\n").replace("\r\n", "\n")
    trace_log.info(
        "%s %s\n%s", direction, where, text, extra={"sip": {"direction": direction, "peer": where}}
    )


class TracingDispatcher(Dispatcher):
    """A Dispatcher that logs every SIP message it hands up or sends out.

    Incoming packets are logged before the receiver sees them; outgoing ones
    after they left (so that a request shows the Via the Dispatcher added).
    Retransmissions and cached redeliveries are not logged: they repeat a
    message already shown. Used by the command under ``-v`` only, so that
    without it the per-packet path stays as lean as the plain Dispatcher's.
    """

    def set_receiver(self, receiver: Any) -> None:
        """Set the receiver, wrapped so that each packet is logged first."""
        if receiver is None:
            super().set_receiver(None)
            return
        fn = getattr(receiver, "receive", receiver)

        async def traced(packet: Request | Response, leg: Leg, from_addr: Address) -> object:
            _trace("<<< received", packet, f"from {leg.proto}:{format_address(from_addr)}")
            result = fn(packet, leg, from_addr)
            if isinstance(result, Awaitable):
                return await result
            return result

        super().set_receiver(traced)

    async def deliver(self, packet: Request | Response, **kwargs: Any) -> Hashable:
        """Deliver ``packet`` (see :meth:`Dispatcher.deliver`) and log it."""
        try:
            delivery_id = await super().deliver(packet, **kwargs)
        except DeliveryError as exc:
            trace_log.info("!!! could not send %s: %s", packet.summary(), exc)
            raise
        destination = kwargs.get("dst_addr")
        if isinstance(destination, tuple):
            where = format_address(destination)
        elif destination is not None:
            where = str(destination)
        elif isinstance(packet, Request):
            where = str(packet.uri)
        else:
            where = _via_of(packet)
        _trace(">>> sent", packet, f"to {where}")
        return delivery_id

    def respond_nowait(self, response: Response, leg: Leg | None = None) -> bool:
        """Send ``response`` at once (see :meth:`Dispatcher.respond_nowait`) and log it."""
        sent = super().respond_nowait(response, leg)
        if sent:
            _trace(">>> sent", response, f"to {_via_of(response)}")
        return sent


def _via_of(response: Response) -> str:
    # RFC 3261 section 18.2.2: a response follows its top Via.
    via = response.top_via
    return f"Via {format_address((via.host, via.port or 5060))}"


def _dispatcher(args: argparse.Namespace, legs: Sequence[Any], **options: Any) -> Dispatcher:
    cls = TracingDispatcher if getattr(args, "verbose", False) else Dispatcher
    return cls(legs, **options)


class JSONFormatter(logging.Formatter):
    """One JSON object per log record (``--log-json``), for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line: time, level, logger, message, SIP fields."""
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        sip = getattr(record, "sip", None)
        if isinstance(sip, Mapping):
            data.update(sip)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


# ----- servers: proxy and registrar -------------------------------------------------------


def _leg_spec(args: argparse.Namespace, spec: str) -> str | dict[str, Any]:
    """A --listen value as the Dispatcher takes it; TLS gets --cert/--key/--ca."""
    proto, host, port = parse_leg_spec(spec)
    if proto != "tls":
        return spec
    if not hasattr(args, "cert"):
        # answer, call, register and options take no certificate.
        raise _UsageError(f"--listen {spec}: TLS legs are for proxy and registrar only")
    cert = args.cert
    if cert is None:
        raise _UsageError(f"--listen {spec} needs --cert (and --key unless the cert has it)")
    _check_tls_files(cert, args.key, args.ca)
    return {
        "proto": "tls",
        "host": host,
        "port": port,
        "certfile": cert,
        "keyfile": args.key,
        "cafile": args.ca,
    }


def _check_tls_files(cert: str, key: str | None, ca: str | None) -> None:
    """Load ``--cert``/``--key`` and ``--ca`` as a TLS leg will; a usage error if they fail.

    So that a missing or unusable file is one line, not a traceback.
    """
    files = f"--cert {cert}" + (f" --key {key}" if key else "")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except OSError as exc:  # ssl.SSLError is one
        raise _UsageError(
            f"cannot use {files}: {_tls_file_error(exc, 'certificate and key')}"
        ) from None
    try:
        ssl.create_default_context(cafile=ca)
    except OSError as exc:
        raise _UsageError(
            f"cannot use --ca {ca}: {_tls_file_error(exc, 'CA certificates')}"
        ) from None


def _tls_file_error(exc: OSError, expected: str) -> str:
    # The OpenSSL reason (KEY_VALUES_MISMATCH), when it gives one.
    if isinstance(exc, ssl.SSLError):
        return f"not PEM {expected}" + (f" ({exc.reason})" if exc.reason else "")
    return exc.strerror or str(exc)


def _listen_legs(args: argparse.Namespace, listen: Sequence[str]) -> list[Any]:
    """The legs of ``--listen``; a worker of ``--workers`` gets its inbox's leg instead."""
    if getattr(args, "worker", None) is None:
        return [_leg_spec(args, spec) for spec in listen]
    # The distributor's socket (we send on it) and our inbox (we read it).
    udp, args.inbox = args.worker.sockets()
    return [InboxUDPLeg(udp, args.inbox, on_end=_distributor_gone)]


def _distributor_gone() -> None:
    # A worker whose distributor was killed (SIGKILL, a crash) stops as if
    # told to, and prints its statistics.
    os.kill(os.getpid(), signal.SIGTERM)


def _refused_with_workers(args: argparse.Namespace) -> str | None:
    """Why these options cannot be served by ``--workers``; None when they can."""
    if len(args.listen) != 1 or parse_leg_spec(args.listen[0])[0] != "udp":
        # A connection cannot be split by call.
        return "--workers takes one UDP --listen (udp:HOST:PORT)"
    keeps_bindings = args.run is _registrar_command or (args.run is _proxy and args.registrar)
    if keeps_bindings and not (args.store or "").startswith("redis://"):
        # Each worker would keep bindings of its own: a lookup in one would
        # not see the REGISTER that another one took.
        return "--workers with bindings needs a shared --store redis://HOST[:PORT][/DB]"
    return None


def _distribute(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``--workers N``: bind the one UDP socket and serve it with N workers."""
    refused = _refused_with_workers(args)
    if refused is not None:
        raise _UsageError(refused)
    _, host, port = parse_leg_spec(args.listen[0])
    # Bound as any UDP leg is (and sized for bursts); the distributor reads it.
    leg = UDPLeg(host, port)
    leg.bind_nowait()
    try:
        sock = leg.raw_socket
        assert sock is not None  # bound
        worker_argv = [sys.executable, "-m", "trio_sip", *argv]
        listening = f"udp:{format_address(leg.address)}"
        return run_distributor(sock, worker_argv, args.workers, listening=listening)
    finally:
        leg.close()


class _UsageError(Exception):
    """An argument that parses but cannot be used; reported like argparse's."""


def _store_arg(text: str) -> str:
    kind, _, path = text.partition(":")
    if text.startswith("redis://"):
        try:
            RedisURL.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    elif text != "memory" and (kind != "sqlite" or not path):
        raise argparse.ArgumentTypeError(
            f"expected 'memory', 'sqlite:PATH' or 'redis://HOST[:PORT][/DB]', not {text!r}"
        )
    return text


def _open_store(spec: str | None) -> BindingStore:
    """The binding store of ``--store`` (checked by :func:`_store_arg`)."""
    try:
        return open_store(spec)
    except (sqlite3.Error, ValueError) as exc:
        raise _UsageError(f"--store {spec}: {exc}") from None


class _RegistrarOnly:
    """The end of a registrar's chain: OPTIONS gets 200, other methods 405.

    RFC 3261 section 21.4.6: 405 carries Allow, the methods we do handle. A
    CANCEL gets 481: there is never an INVITE here for it to cancel (9.2).
    """

    ALLOW = ("Allow", "REGISTER, OPTIONS")

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        """Answer any request but ACK; drop responses."""
        if not isinstance(packet, Request) or packet.method == "ACK":
            return True
        method = packet.method
        if method == "CANCEL":
            await reply(self.dispatcher, packet, 481, leg)
            return True
        status = 200 if method == "OPTIONS" else 405
        await reply(self.dispatcher, packet, status, leg, headers=[self.ALLOW])
        return True


def _registrar(args: argparse.Namespace, disp: Dispatcher, store: BindingStore) -> Registrar:
    domains = args.domain or None
    registrar = Registrar(
        disp,
        store,
        domains=domains,
        min_expires=getattr(args, "min_expires", 60),
        max_expires=getattr(args, "max_expires", 86400),
    )
    registrar.start_purging(30)
    return registrar


def _authorize(args: argparse.Namespace, disp: Dispatcher) -> Authorize | None:
    if not args.user:
        return None
    realm = args.domain[0] if args.domain else "trio-sip"
    # REGISTER is challenged with 401 (RFC 3261 section 22.2); the proxied
    # calls are not: their in-dialog requests come from peers without accounts.
    algorithms = args.algorithm or [Algorithm.SHA_256, Algorithm.MD5]
    return Authorize(disp, realm, dict(args.user), methods=["REGISTER"], algorithms=algorithms)


def _summary(name: str, stats: object) -> list[str]:
    """``name: field=value ...`` lines; a mapping of nested counters gets a line each."""
    lines: list[str] = []
    parts = []
    for field in dataclasses.fields(stats):  # type: ignore[arg-type]
        value = getattr(stats, field.name)
        if isinstance(value, Mapping):
            nested = [v for v in value.values() if dataclasses.is_dataclass(v)]
            if nested:
                lines.extend(line for k, v in value.items() for line in _summary(f"  {k}", v))
                continue
            value = ",".join(f"{k}={v}" for k, v in value.items()) or "-"
        parts.append(f"{field.name}={value}")
    return [f"{name}: " + " ".join(parts), *lines]


async def _serve(
    args: argparse.Namespace,
    disp: Dispatcher,
    statistics: Callable[[], list[tuple[str, object]]],
    lines: _Lines | None = None,
) -> int:
    """Run until SIGINT/SIGTERM, then print the statistics summary (after ``lines``).

    The signals are watched by :func:`_with_signals` from start to end, so
    that one during the shutdown (BYE, un-REGISTER) cannot interrupt it
    half-way: a second one makes it stop waiting for answers instead.
    """
    if getattr(args, "worker", None) is None:
        for leg in disp.legs:
            print(f"listening on {leg.proto}:{format_address(leg.address)}", flush=True)
    else:
        # A worker of --workers: its distributor says it once all serve.
        args.inbox.send(READY)
    await args.stop_requested.wait()
    if lines is not None:
        lines.flush()
    for name, stats in [("dispatcher", disp.statistics()), *statistics()]:
        write_lines("\n".join(_summary(name, stats)))
    return 0


class _ToRegistrar:
    """Send REGISTER on to the registrar's own Dispatcher, through the proxy.

    The registrar needs the response cache (a retransmitted REGISTER would
    otherwise break section 10.3 step 7's CSeq rule and get 500) and a
    stateless proxy must not have one (it would swallow retransmissions it
    has to forward). So ``proxy --registrar`` runs the registrar on a
    Dispatcher of its own on a loopback port, and a REGISTER gets a Route to
    it (section 16.6 step 6: the proxy forwards along the Route), like a
    registrar behind an outbound proxy.
    """

    def __init__(self, leg: Leg, proxy: StatelessProxy) -> None:
        self.route_value = f"<{leg.contact_uri()};lr>"
        self.proxy = proxy

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        """As a handler of a ReceiveChain: :meth:`route`, then pass on (False)."""
        self.route(packet)
        await anyio.lowlevel.checkpoint()
        return False

    def route(self, packet: Request | Response) -> None:
        """Give a REGISTER for us a Route to the registrar."""
        if not isinstance(packet, Request) or packet.method != "REGISTER":
            return
        headers = packet.headers
        first = headers.first_value("route")
        if first is not None and self.proxy.is_ours(NameAddr.parse(first).uri):
            # A Route to us (a client's outbound proxy setting): ours to take.
            headers.pop_first_value("route")
            first = headers.first_value("route")
        if first is None:
            headers.prepend("Route", self.route_value)


def _internal_leg(legs: Sequence[Leg]) -> str | None:
    """A loopback leg for the registrar that the proxy's legs can reach."""
    for leg in legs:
        if leg.proto in ("udp", "tcp"):
            host = "[::1]" if ":" in leg.host else "127.0.0.1"
            return f"{leg.proto}:{host}:0"
    return None


@contextlib.asynccontextmanager
async def _store_opened(spec: str | None) -> AsyncIterator[BindingStore]:
    """The ``--store``, closed (a Redis pool, an SQLite file) after its users stop."""
    store = _open_store(spec)
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()


async def _proxy(args: argparse.Namespace) -> int:
    if not args.registrar:
        return await _run_proxy(args, None)
    async with _store_opened(args.store) as store:
        return await _run_proxy(args, store)


async def _run_proxy(args: argparse.Namespace, store: BindingStore | None) -> int:
    legs = _listen_legs(args, args.listen)
    # A stateless proxy neither caches responses nor retransmits (RFC 3261
    # section 16.11): the endpoints' transactions do that, end to end.
    async with (
        _dispatcher(
            args, legs, response_cache=False, do_retransmits=False, domain2proxy=dict(args.route)
        ) as disp,
        contextlib.AsyncExitStack() as stack,
    ):
        registrar: Registrar | None = None
        auth: Authorize | None = None
        reg_disp: Dispatcher | None = None
        handlers: list[Any] = []
        internal = _internal_leg(disp.legs) if store is not None else None
        if store is not None and internal is not None:
            reg_disp = await stack.enter_async_context(_dispatcher(args, [internal]))
            registrar = _registrar(args, reg_disp, store)
            auth = _authorize(args, reg_disp)
            chain = [h for h in (auth, registrar) if h is not None]
            reg_disp.set_receiver(ReceiveChain([*chain, _RegistrarOnly(reg_disp)]))
        elif store is not None:
            # Only TLS legs: nothing reaches a loopback registrar, so it
            # answers on the proxy's Dispatcher (without the cache).
            registrar = _registrar(args, disp, store)
            auth = _authorize(args, disp)
            handlers.extend(h for h in (auth, registrar) if h is not None)
        proxy = StatelessProxy(
            disp,
            registrar=registrar,
            domains=args.domain or None,
            record_route=args.record_route,
        )
        to_registrar = _ToRegistrar(reg_disp.legs[0], proxy) if reg_disp is not None else None
        if handlers or getattr(args, "verbose", False):
            # A chain of coroutines; also under -v, whose trace sees what goes
            # through Dispatcher.deliver but not the inline path's sends.
            first = [to_registrar] if to_registrar is not None else []
            disp.set_receiver(ReceiveChain([*first, *handlers, proxy]))
        elif to_registrar is not None:

            def receive(
                packet: Request | Response, leg: Leg, from_addr: Address
            ) -> Awaitable[object] | None:
                # The proxy's inline path (no task switch per packet), with
                # REGISTERs routed to the registrar first.
                to_registrar.route(packet)
                return proxy.receive_nowait(packet, leg, from_addr)

            disp.set_receiver(receive)
        else:
            disp.set_receiver(proxy.receive_nowait)

        def statistics() -> list[tuple[str, object]]:
            found: list[tuple[str, object]] = [("proxy", proxy.statistics())]
            if reg_disp is not None:
                found.append(("registrar dispatcher", reg_disp.statistics()))
            if registrar is not None:
                found.append(("registrar", registrar.statistics()))
            if auth is not None:
                found.append(("authorize", auth.statistics()))
            return found

        return await _serve(args, disp, statistics)


async def _registrar_command(args: argparse.Namespace) -> int:
    async with _store_opened(args.store) as store:
        return await _run_registrar(args, store)


async def _run_registrar(args: argparse.Namespace, store: BindingStore) -> int:
    legs = _listen_legs(args, args.listen)
    # The registrar keeps the response cache: a retransmitted REGISTER is
    # answered from it instead of failing section 10.3 step 7's CSeq check.
    async with _dispatcher(args, legs) as disp:
        registrar = _registrar(args, disp, store)
        auth = _authorize(args, disp)
        handlers: list[Any] = [h for h in (auth, registrar) if h is not None]
        disp.set_receiver(ReceiveChain([*handlers, _RegistrarOnly(disp)]))

        def statistics() -> list[tuple[str, object]]:
            found: list[tuple[str, object]] = [("registrar", registrar.statistics())]
            if auth is not None:
                found.append(("authorize", auth.statistics()))
            return found

        return await _serve(args, disp, statistics)


# ----- user agents: answer, call, register ------------------------------------------------


def _user_agent(args: argparse.Namespace, aor: str, listen: Sequence[str]) -> UserAgent:
    users = dict(args.user) if args.user else None
    disp = _dispatcher(
        args, _listen_legs(args, listen), outgoing_proxy=getattr(args, "proxy", None)
    )
    worker: WorkerPlace | None = getattr(args, "worker", None)
    ua = UserAgent(
        aor,
        credentials=users,
        dispatcher=disp,
        inband_dtmf=getattr(args, "inband_dtmf", False),
        rtp_ports=getattr(args, "rtp_ports", None),
        codecs=getattr(args, "codec", None) or DEFAULT_CODECS,
        # A worker's own requests must be answered to itself, not to the
        # worker another Call-ID would pick.
        call_ids=(
            new_call_id
            if worker is None
            else partial(call_id_of_shard, worker.shard, worker.shards)
        ),
    )
    # A second signal: stop waiting for the answers to BYE and un-REGISTER.
    getattr(args, "abandon", []).append(ua.endpoint.abandon_close)
    return ua


# The counters of the ``rtp:`` line a call prints when it ends.
_RTP_FIELDS = (
    "packets_sent",
    "packets_received",
    "packets_lost",
    "packets_expected",
    "duplicates",
    "malformed",
    "dropped",
    "dtmf_sent",
    "dtmf_received",
)


# The counters as one format string: one C call per line, not one per counter.
_RTP_COUNTERS = " ".join(f"{name}={{stats.{name}}}" for name in _RTP_FIELDS)


def _rtp_line(call: Call, stats: MediaStatistics) -> str:
    """One machine-readable line of a call's RTP statistics (``rtp: key=value ...``)."""
    call_id = call.invite.call_id if call.invite is not None else "-"
    counters = _RTP_COUNTERS.format(stats=stats)
    remote = format_address(stats.remote) if stats.remote is not None else "-"
    return (
        f"rtp: call_id={call_id} local={format_address(stats.local)} remote={remote}"
        f" codec={call.media.codec.encoding_name} {counters}"
        f" jitter_ms={stats.jitter * 1000:.2f}"
    )


def _dtmf_line(digit: str, call: Call) -> str:
    """The line printed for a digit the peer sends: ``dtmf: D call_id=...``.

    The Call-ID tells apart the digits of calls that ``answer`` has at once.
    """
    call_id = call.invite.call_id if call.invite is not None else "-"
    return f"dtmf: {digit} call_id={call_id}"


async def _report_dtmf(call: Call) -> None:
    """Print each DTMF digit the peer sends as it comes."""
    async for digit in call.dtmf():
        write_lines(_dtmf_line(digit, call))


async def _run_media(
    args: argparse.Namespace,
    call: Call,
    talk: Callable[[], Awaitable[None]],
    *,
    always_report: bool,
) -> None:
    """Run ``--media`` and the DTMF report around ``talk``, then print the ``rtp:`` line.

    When ``talk`` returns the media stops; if the peer is still there we wait
    a little for the packets already on their way (an echo of our last
    ones), so that the counts of both sides agree. The line is printed with
    ``always_report`` (``answer``: every call), else only when there was
    media to send (``--media``, ``--dtmf``): a plain ``call`` prints what it
    always did.
    """
    sent_media = args.media is not None or bool(getattr(args, "dtmf", None))
    try:
        async with anyio.create_task_group() as media_tasks:
            media_tasks.start_soon(_report_dtmf, call)
            if args.media is not None:
                media_tasks.start_soon(_guarded, args.media, args.play_loop, call.media)
            await talk()
            media_tasks.cancel_scope.cancel()
        if not call.ended and sent_media:
            with anyio.move_on_after(_DRAIN):
                await call.wait_ended()
    finally:
        # Also when the command is stopping (SIGINT) in the middle of the call.
        if sent_media or always_report:
            write_lines(_rtp_line(call, call.media.statistics()))


# How long a call that sent media waits for its last packets to come back.
_DRAIN = 0.2


async def _answer_call(args: argparse.Namespace, call: Call, counts: dict[str, int]) -> bool:
    """Ring, then answer or reject as told: True once answered. Counts what happened."""
    counts["calls"] += 1
    if args.ring > 0:
        await call.ring()
        await anyio.sleep(args.ring)
    answered = _settle_call(args, call, counts)
    await call.ua.endpoint.wait_sent()
    return answered


def _settle_call(args: argparse.Namespace, call: Call, counts: dict[str, int]) -> bool:
    """Answer or reject as told, without waiting: True once answered."""
    assert call.invite is not None
    if call.ua.endpoint.was_cancelled(call.invite):
        # Section 9.2: the Endpoint answered 487 already.
        counts["cancelled"] += 1
        return False
    if args.code != 200:
        call.reject_nowait(args.code)
        counts["rejected"] += 1
        return False
    call.answer_nowait()
    counts["answered"] += 1
    return True


def _needs_task(args: argparse.Namespace) -> bool:
    """Whether ``answer`` waits in a call (ring, hang up, media) or only answers it."""
    return args.ring > 0 or args.hangup_after is not None or args.media is not None


async def _answer_one(args: argparse.Namespace, call: Call, counts: dict[str, int]) -> None:
    """A call that ``answer`` waits in (:func:`_needs_task`), in a task of its own."""
    try:
        if not await _answer_call(args, call, counts):
            return

        async def talk() -> None:
            if args.hangup_after is not None:
                with anyio.move_on_after(args.hangup_after):
                    await call.wait_ended()
            else:
                await call.wait_ended()

        await _run_media(args, call, talk, always_report=True)
        # After --hangup-after (a call still up when the command stops gets
        # its BYE from the Endpoint as it closes).
        await call.bye()
    except SIPError as exc:
        counts["failed"] += 1
        log.warning("call failed: %s", exc)


#: The most one write to a pipe keeps whole against other writers (POSIX
#: PIPE_BUF: 4096 on Linux, 512 at the least).
ATOMIC_WRITE = 4096


def write_lines(text: str) -> None:
    """Write ``text`` and a newline to standard output, in whole lines.

    Each write is whole lines of at most :data:`ATOMIC_WRITE` bytes (a longer
    line alone), so that processes sharing standard output (the workers of
    ``answer --workers``) never cut into each other's lines. ``print`` may
    write a line and its newline separately (unbuffered output,
    ``PYTHONUNBUFFERED``), and another process's line then lands between.
    """
    out = sys.stdout
    binary = getattr(out, "buffer", None)
    if binary is None:  # a text-only stream (a test's StringIO): one write
        out.write(text + "\n")
        out.flush()
        return
    out.flush()  # what print() left in the text layer goes first
    data = (text + "\n").encode(out.encoding or "utf-8", "replace")
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + ATOMIC_WRITE) + 1
        if end <= start:  # one line longer than that: alone, whole
            end = data.index(b"\n", start) + 1
        binary.write(data[start:end])
        binary.flush()
        start = end


class _Lines:
    """Report lines for stdout, written out by one task at most ``delay`` seconds later.

    ``answer`` prints a line for every call, and at a thousand calls a second
    one write to the pipe per line took a tenth of its CPU. The lines are
    kept here, in order, and written together: the first one after a write
    wakes :meth:`run`, which writes them ``delay`` later (our own buffer:
    with ``PYTHONUNBUFFERED``, common in containers, ``sys.stdout`` has none).
    Outside :meth:`run` (before it starts, once it stopped) a line is written
    at once, and :meth:`flush` writes what waits, before a summary.
    """

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self._lines: list[str] = []
        self._running = False
        self._wakeup: anyio.Event | None = None

    def print(self, line: str) -> None:
        """Write ``line`` (and a newline) within ``delay``."""
        if not self._running:
            write_lines(line)
            return
        self._lines.append(line)
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()

    def flush(self) -> None:
        """Write the lines that wait, now."""
        if self._lines:
            text = "\n".join(self._lines)
            self._lines.clear()
            write_lines(text)

    async def run(self) -> NoReturn:
        """Write what :meth:`print` gathered, ``delay`` after its first line; forever."""
        self._running = True
        try:
            while True:
                self._wakeup = wakeup = anyio.Event()
                await wakeup.wait()
                await anyio.sleep(self.delay)
                self.flush()
        finally:
            self._running = False
            self._wakeup = None
            self.flush()


def _answer_at_once(
    args: argparse.Namespace, call: Call, counts: dict[str, int], lines: _Lines
) -> None:
    """A call with nothing to wait for: the UA's call handler, run as the INVITE arrives.

    Answered (or refused) there and then, and reported from callbacks: a
    digit is printed as it arrives, the ``rtp:`` line when the call ends
    (BYE either way, or the command stopping), both through ``lines``. A
    call costs ``answer`` no task and no task switch.
    """
    counts["calls"] += 1
    try:
        if not _settle_call(args, call, counts):
            return
    except SIPError as exc:
        counts["failed"] += 1
        log.warning("call failed: %s", exc)
        return
    call.media.on_dtmf(lambda digit: lines.print(_dtmf_line(digit, call)))
    call.on_ended(lambda: lines.print(_rtp_line(call, call.media.statistics())))


async def _guarded(spec: str, loop: bool, media: MediaSession) -> None:
    """Run the ``--media`` handler; a file that fails (disk full ...) ends it, not the command."""
    try:
        await _media_handler(spec, loop)(media)
    except (OSError, ValueError, EOFError, wave.Error) as exc:
        log.warning("--media %s failed: %s", spec, exc)


def _media_handler(spec: str, loop: bool) -> Callable[[MediaSession], Coroutine[Any, Any, object]]:
    """What ``--media`` runs on an answered call's RTP session."""
    kind, _, path = spec.partition(":")
    if kind == "play":
        return partial(play, source=path, loop=loop)
    if kind == "record":
        return partial(record, path=path)
    if kind == "silence":
        return silence
    return echo


def _media_arg(text: str) -> str:
    kind, _, path = text.partition(":")
    if kind == "play" and path:
        # Read once here, so that a missing or unusable file is a usage error
        # rather than a failure in the first call.
        try:
            load_audio(path)
        except (OSError, ValueError, EOFError, wave.Error) as exc:
            why = str(exc) or "not a WAV (8 kHz, 16-bit, mono) nor raw .pcmu/.pcma audio"
            raise argparse.ArgumentTypeError(f"cannot play {path}: {why}") from None
        return text
    if kind == "record" and path:
        parent = Path(path).parent
        if not parent.is_dir():
            raise argparse.ArgumentTypeError(f"cannot record to {path}: no directory {parent}")
        return text
    if text in ("echo", "silence"):
        return text
    raise argparse.ArgumentTypeError(
        f"expected echo, silence, play:FILE or record:FILE, not {text!r}"
    )


def _rtp_ports_arg(text: str) -> PortRange:
    low, dash, high = text.partition("-")
    try:
        return PortRange(int(low), int(high))
    except ValueError as exc:
        detail = exc if dash and low.isdigit() and high.isdigit() else "expected LOW-HIGH"
        raise argparse.ArgumentTypeError(f"bad port range {text!r}: {detail}") from None


# The codecs --codec knows: the G.711 laws that the media handlers encode.
_CODECS = {rtpmap.encoding_name: rtpmap for rtpmap in DEFAULT_CODECS}


def _codec_arg(text: str) -> RtpMap:
    rtpmap = _CODECS.get(text.upper())
    if rtpmap is None:
        raise argparse.ArgumentTypeError(f"expected {' or '.join(_CODECS)}, not {text!r}")
    return rtpmap


def _dtmf_arg(text: str) -> str:
    digits = text.upper()
    if digits and all(d in "0123456789*#ABCD" for d in digits):
        return digits
    raise argparse.ArgumentTypeError(f"DTMF digits are 0-9 * # A-D, not {text!r}")


def _media_arguments(p: argparse.ArgumentParser, play: str) -> None:
    """The options of ``answer`` and ``call`` for the audio of a call."""
    p.add_argument(
        "--media",
        type=_media_arg,
        metavar="echo|silence|play:FILE|record:FILE",
        help=f"what to do with the audio of an answered call (default: nothing); play {play}",
    )
    p.add_argument(
        "--inband-dtmf",
        action="store_true",
        help="also detect DTMF tones in the received audio (PCMU/PCMA, Goertzel)",
    )
    p.add_argument(
        "--rtp-ports",
        type=_rtp_ports_arg,
        metavar="LOW-HIGH",
        help="take the RTP/RTCP port pairs from this range (default: any free ones)",
    )
    p.add_argument(
        "--codec",
        action="append",
        type=_codec_arg,
        metavar="PCMU|PCMA",
        help="a codec to offer and accept, in order of preference (default: PCMU, PCMA)",
    )


async def _answer(args: argparse.Namespace) -> int:
    aor = args.aor or "sip:answer@invalid"
    code = 1
    async with _user_agent(args, aor, args.listen) as ua, anyio.create_task_group() as tg:
        counts = {"calls": 0, "answered": 0, "rejected": 0, "cancelled": 0, "failed": 0}

        async def serve() -> None:
            async for call in ua.incoming_calls():
                tg.start_soon(_answer_one, args, call, counts)

        # Ready before the registration makes us reachable.
        lines: _Lines | None = None
        if _needs_task(args):
            tg.start_soon(serve)
        else:
            lines = _Lines()
            tg.start_soon(lines.run)
            ua.set_call_handler(partial(_answer_at_once, args, counts=counts, lines=lines))
        # Of several workers behind one address, the first registers it.
        if args.registrar is not None and (args.worker is None or args.worker.shard == 0):
            try:
                await ua.register(f"sip:{args.registrar}", expires=args.expires)
            except CallFailed as exc:
                print(f"trio-sip: REGISTER failed: {exc}", file=sys.stderr)
                # The tasks above serve forever: the task group would wait for them.
                tg.cancel_scope.cancel()
                return code
        code = await _serve(
            args,
            ua.dispatcher,
            lambda: [
                ("endpoint", ua.endpoint.statistics()),
                ("calls", _Counts(**counts)),
            ],
            lines,
        )
        tg.cancel_scope.cancel()
    return code


@dataclasses.dataclass(frozen=True, slots=True)
class _Counts:
    """What ``trio-sip answer`` did with the calls it got."""

    calls: int
    answered: int
    rejected: int
    cancelled: int
    failed: int


async def _call(args: argparse.Namespace) -> int:
    aor = args.from_ or "sip:trio-sip@invalid"
    stop: anyio.CancelScope = getattr(args, "stop", None) or anyio.CancelScope()
    async with _user_agent(args, aor, [args.listen]) as ua:
        with stop:
            async with ua.invite(args.uri) as call:
                with anyio.move_on_after(args.ring_timeout) as ring:
                    try:
                        response = await call.wait_answered()
                    except CallFailed as exc:
                        print(f"call failed: {exc}", file=sys.stderr)
                        return 1
                if ring.cancelled_caught:
                    reason = f"no answer in {args.ring_timeout:g} s (cancelled)"
                    print(f"call failed: {reason}", file=sys.stderr)
                    return 1
                print(response.start_line, flush=True)

                async def talk() -> None:
                    # The talk time counts from the answer; the digits are
                    # sent in full even when they take longer.
                    deadline = anyio.current_time() + args.duration
                    if args.dtmf:
                        mode = args.dtmf_mode
                        await call.send_dtmf(
                            args.dtmf, inband=mode == "inband", info=mode == "info"
                        )
                    with anyio.move_on_after(deadline - anyio.current_time()):
                        await call.wait_ended()

                await _run_media(args, call, talk, always_report=False)
                if call.ended:
                    print("the other side hung up", flush=True)
            print("call ended", flush=True)
    # 128 + SIGINT, as a shell reports an interrupted command.
    return 130 if stop.cancel_called else 0


async def _register(args: argparse.Namespace) -> int:
    stop: anyio.CancelScope = getattr(args, "stop", None) or anyio.CancelScope()
    async with _user_agent(args, args.aor, [args.listen]) as ua:
        with stop:
            try:
                response = await ua.register(
                    f"sip:{args.registrar}",
                    expires=args.expires,
                    contact=args.contact,
                    refresh=False,
                )
            except CallFailed as exc:
                print(f"REGISTER failed: {exc}", file=sys.stderr)
                return 1
        if stop.cancel_called:
            return 130  # 128 + SIGINT, as for call
        print(response.start_line)
        for contact in response.headers.values("contact"):
            print(f"Contact: {contact}")
    return 0


# ----- argument parsing -------------------------------------------------------------------


def _listen_arg(text: str) -> str:
    try:
        parse_leg_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _user_arg(text: str) -> tuple[str, str]:
    user, colon, password = text.partition(":")
    if not colon or not user:
        raise argparse.ArgumentTypeError(f"expected USER:PASS, not {text!r}")
    return user, password


def _route_arg(text: str) -> tuple[str, str]:
    domain, equals, hop = text.partition("=")
    if not equals or not domain or not hop:
        raise argparse.ArgumentTypeError(f"expected DOMAIN=HOST[:PORT], not {text!r}")
    try:
        parse_address(hop)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad next hop in {text!r}: {exc}") from None
    return domain.lower(), hop


def _algorithm_arg(text: str) -> Algorithm:
    algorithm = Algorithm.parse(text)
    if algorithm is None:
        choices = ", ".join(a.value for a in Algorithm)
        raise argparse.ArgumentTypeError(f"expected one of {choices}, not {text!r}")
    return algorithm


def _uri_arg(text: str) -> str:
    try:
        URI.parse(text)
    except ParseError as exc:
        raise argparse.ArgumentTypeError(f"bad SIP URI {text!r}: {exc.reason}") from None
    return text


def _hostport_arg(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected HOST[:PORT], not {text!r}: {exc}") from None
    return text


def _status_arg(text: str) -> int:
    if not text.isdigit() or not 200 <= int(text) <= 699:
        raise argparse.ArgumentTypeError(f"expected a final status 200-699, not {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, not {text!r}")
    return value


def _seconds_arg(text: str) -> float:
    # float() takes "nan" and negative numbers, which no wait can use ("inf"
    # is a wait until stopped).
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, not {text!r}")
    return value


def _t1_arg(text: str) -> float:
    value = _seconds_arg(text)
    if not 0 < value < math.inf:
        # Every timer is a multiple of T1: 0 gives up at once, inf never.
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, not {text!r}")
    return value


def _workers_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help=f"{verb} in N processes (a core each) behind the one UDP --listen, by Call-ID",
    )
    # Set by the distributor of --workers for the processes it starts.
    p.add_argument("--worker", type=WorkerPlace.parse, help=argparse.SUPPRESS)


def _server_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--listen",
        action="append",
        required=True,
        type=_listen_arg,
        metavar="SPEC",
        help="leg to listen on: udp:HOST:PORT, tcp:HOST:PORT, tls:HOST:PORT ([v6] in brackets)",
    )
    p.add_argument("--domain", action="append", default=[], metavar="D", help="a domain we serve")
    p.add_argument(
        "--user",
        action="append",
        default=[],
        type=_user_arg,
        metavar="USER:PASS",
        help="an account: REGISTER then needs digest authentication",
    )
    p.add_argument(
        "--store",
        type=_store_arg,
        metavar="SPEC",
        help="bindings store: memory (default), sqlite:PATH, or redis://HOST[:PORT][/DB]"
        " shared by several proxies",
    )
    p.add_argument(
        "--algorithm",
        action="append",
        default=[],
        type=_algorithm_arg,
        metavar="ALG",
        help="digest algorithm to offer, in order (default: SHA-256 then MD5; clients such"
        " as SIPp answer only the first challenge and need MD5 first)",
    )
    p.add_argument("--cert", help="TLS certificate (PEM) for tls legs")
    p.add_argument("--key", help="TLS private key (PEM)")
    p.add_argument("--ca", help="TLS CA bundle (PEM) to verify peers")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``trio-sip`` command."""
    parser = _Parser(prog="trio-sip", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"trio-sip {__version__}")
    parser.add_argument(
        "--backend", choices=["trio", "asyncio"], default="trio", help="async backend to run on"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every SIP message sent and received"
    )
    parser.add_argument("--log-json", action="store_true", help="log as JSON lines")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parse", help="parse and check a SIP message read from standard input")
    p.set_defaults(run=_parse, is_async=False)
    p = sub.add_parser("options", help="ping a SIP server with OPTIONS and print the answer")
    p.add_argument("uri", type=_uri_arg, help="the server, e.g. sip:127.0.0.1:5060")
    p.add_argument(
        "--listen", default="udp:0.0.0.0:0", type=_listen_arg, help="local leg (udp:0.0.0.0:0)"
    )
    p.add_argument("--t1", type=_t1_arg, default=0.5, help="RFC 3261 T1 in seconds")
    # A signal ends the wait for the answer (exit status 130), as for call.
    p.set_defaults(run=_options, is_async=True, interruptible=True)
    p = sub.add_parser("demo", help="run a responder and ping it over loopback")
    p.set_defaults(run=_demo, is_async=True)
    p = sub.add_parser("proxy", help="run a stateless proxy (with --registrar: and a registrar)")
    _server_arguments(p)
    p.add_argument("--registrar", action="store_true", help="also be registrar and location")
    p.add_argument(
        "--route",
        action="append",
        default=[],
        type=_route_arg,
        metavar="DOMAIN=HOST[:PORT]",
        help="send requests for DOMAIN to HOST ('*' for any other)",
    )
    p.add_argument("--record-route", action="store_true", help="stay in the path of dialogs")
    _workers_arguments(p, "forward")
    p.set_defaults(run=_proxy, is_async=True, serves=True)
    p = sub.add_parser("answer", help="answer every call (a UAS for tests and load)")
    p.add_argument("--listen", action="append", required=True, type=_listen_arg, metavar="SPEC")
    p.add_argument(
        "--ring", type=_seconds_arg, default=0.0, metavar="SECONDS", help="ring this long"
    )
    p.add_argument("--hangup-after", type=_seconds_arg, metavar="SECONDS", help="then BYE")
    p.add_argument("--code", type=_status_arg, default=200, help="answer with CODE (200)")
    _media_arguments(p, "loops")
    p.set_defaults(play_loop=True)
    p.add_argument("--aor", metavar="URI", help="our address-of-record (sip:bob@example.com)")
    p.add_argument("--registrar", metavar="HOST[:PORT]", type=_hostport_arg, help="register")
    p.add_argument("--expires", type=_positive_int, default=600, metavar="N")
    p.add_argument(
        "--user",
        action="append",
        default=[],
        type=_user_arg,
        metavar="USER:PASS",
        help="credentials for the registrar's challenge",
    )
    _workers_arguments(p, "answer")
    p.set_defaults(run=_answer, is_async=True, serves=True)
    p = sub.add_parser("call", help="place one call; exit 0 when answered and hung up")
    p.add_argument("uri", type=_uri_arg, help="who to call, e.g. sip:bob@example.com")
    p.add_argument("--from", dest="from_", type=_uri_arg, metavar="URI", help="our AOR")
    p.add_argument("--proxy", type=_hostport_arg, metavar="HOST:PORT", help="outgoing proxy")
    p.add_argument("--user", action="append", default=[], type=_user_arg, metavar="USER:PASS")
    p.add_argument(
        "--duration", type=_seconds_arg, default=0.0, metavar="SECONDS", help="talk time"
    )
    p.add_argument("--ring-timeout", type=_seconds_arg, default=30.0, metavar="SECONDS")
    p.add_argument("--listen", default="udp:0.0.0.0:0", type=_listen_arg, metavar="SPEC")
    _media_arguments(p, "plays the file once")
    p.add_argument(
        "--dtmf",
        type=_dtmf_arg,
        metavar="DIGITS",
        help="send these DTMF digits once answered (0-9 * # A-D)",
    )
    p.add_argument(
        "--dtmf-mode",
        choices=["rfc4733", "inband", "info"],
        default="rfc4733",
        help="DTMF as RFC 4733 events (default), as tones in the audio, or in SIP INFO",
    )
    p.set_defaults(run=_call, is_async=True, interruptible=True, play_loop=False)
    p = sub.add_parser("register", help="register an AOR once and print the bindings")
    p.add_argument("aor", type=_uri_arg, help="the address-of-record, e.g. sip:bob@example.com")
    p.add_argument("--registrar", required=True, type=_hostport_arg, metavar="HOST[:PORT]")
    p.add_argument("--contact", type=_uri_arg, metavar="URI", help="bind this (default: us)")
    p.add_argument("--expires", type=_positive_int, default=600, metavar="N")
    p.add_argument("--user", action="append", default=[], type=_user_arg, metavar="USER:PASS")
    p.add_argument("--listen", default="udp:0.0.0.0:0", type=_listen_arg, metavar="SPEC")
    p.set_defaults(run=_register, is_async=True, interruptible=True)
    p = sub.add_parser("registrar", help="run a registrar")
    _server_arguments(p)
    p.add_argument("--min-expires", type=_positive_int, default=60, metavar="N")
    p.add_argument("--max-expires", type=_positive_int, default=86400, metavar="N")
    _workers_arguments(p, "register")
    p.set_defaults(run=_registrar_command, is_async=True, serves=True)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if args.log_json:
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    if not root.handlers:  # an embedding program (or pytest) keeps its own
        root.addHandler(handler)
    root.setLevel(logging.INFO if args.verbose else logging.WARNING)


async def _with_signals(args: argparse.Namespace) -> int:
    """Run a long-running command with SIGINT/SIGTERM caught from start to end.

    The first signal sets ``args.stop_requested``, which :func:`_serve`
    waits for; a second one cuts the stop short (:func:`_watch_signals`).
    """
    stop_requested = args.stop_requested = anyio.Event()
    return await _run_watched(args, lambda name: stop_requested.set())


async def _interruptible(args: argparse.Namespace) -> int:
    """Run a one-shot command that SIGINT/SIGTERM stops cleanly.

    A signal cancels ``args.stop``, the scope the command puts around its
    work only: the UserAgent's own tasks (its legs' receive loops) stay
    outside it, so the call's BYE or CANCEL still gets its answer. A second
    signal stops that wait (:func:`_watch_signals`).
    """
    args.stop = anyio.CancelScope()

    def stop(name: str) -> None:
        print(f"interrupted by {name}", file=sys.stderr)
        args.stop.cancel()

    return await _run_watched(args, stop)


async def _run_watched(args: argparse.Namespace, first: Callable[[str], None]) -> int:
    # The command, with a task that watches for signals from start to end.
    args.abandon = []
    failure: Exception | None = None
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, signals, first, args.abandon)
            try:
                code: int = await args.run(args)
            except Exception as exc:
                # Raised as it is (a usage error, a port in use), not in the
                # exception group the task group would wrap it in.
                failure = exc
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return code


async def _watch_signals(
    signals: AsyncIterator[int], first: Callable[[str], None], abandon: list[Callable[[], None]]
) -> None:
    """Call ``first`` with the signal's name on the first SIGINT/SIGTERM, and
    each of ``abandon`` on the next.

    Stopping in order takes a while when peers are gone: a BYE or an
    un-REGISTER waits up to 64*T1 (32 s) for its answer. A second Ctrl-C
    means "now": the commands register their Endpoint's
    :meth:`~trio_sip.Endpoint.abandon_close` in ``abandon``.
    """
    stopping = False
    async for signum in signals:
        name = signal.Signals(signum).name
        if not stopping:
            stopping = True
            log.info("stopping on %s", name)
            first(name)
        else:
            print(f"trio-sip: {name} again: not waiting for answers", file=sys.stderr)
            for hurry in abandon:
                hurry()


def _tune_gc_for_serving() -> None:
    """Garbage-collector settings for a command that serves until stopped.

    What a SIP server allocates mostly dies young (a message, its parsed
    views) or lives as long as a transaction (64*T1), and is freed by
    reference counting either way. With the default first threshold (700
    objects) the collector runs every few calls, moves each live
    transaction into the oldest generation, and full collections then walk
    all of them again and again: a tenth of ``answer``'s CPU under load.
    A higher first threshold lets the young die between collections (the
    cycles event loops make are still found there); freezing takes what
    start-up made (modules, classes, functions) out of every collection.
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``trio-sip`` command."""
    parser = build_parser()
    if argv is None:
        argv = sys.argv[1:]
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        if getattr(args, "workers", 1) > 1 and args.worker is None:
            code = _distribute(args, argv)
        elif args.is_async:
            if getattr(args, "serves", False):
                _tune_gc_for_serving()
                run = _with_signals
            elif getattr(args, "interruptible", False):
                run = _interruptible
            else:
                run = args.run
            code = anyio.run(partial(run, args), backend=args.backend)
        else:
            code = args.run(args)
    except _UsageError as exc:
        parser.error(str(exc))
    except TransportError as exc:
        # The usual case: the port is in use ("cannot bind udp ...: Address
        # already in use"), said in one line, not a traceback.
        print(f"trio-sip: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
