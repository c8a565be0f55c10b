"""The ``trio-sip`` command.

``trio-sip options URI`` pings a SIP server with OPTIONS and prints the
answer; ``trio-sip parse`` checks a message read from standard input;
``trio-sip demo`` runs a responder and pings it over loopback, to show a
fresh installation working end to end. Global options choose the async
backend (``--backend trio|asyncio``) and log every SIP message (``-v``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from functools import partial

import anyio

from . import __version__
from .dispatcher import Dispatcher
from .errors import DeliveryError, ParseError
from .message import (
    URI,
    Request,
    Response,
    make_response,
    new_call_id,
    new_tag,
    parse_message,
)
from .transport import Leg

log = logging.getLogger("trio_sip.cli")


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
    async with Dispatcher([args.listen], t1=args.t1) as disp:
        try:
            response = await ping(disp, target)
        except DeliveryError as exc:
            print(f"no answer from {target}: {exc}", file=sys.stderr)
            return 2
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``trio-sip`` command."""
    parser = argparse.ArgumentParser(prog="trio-sip", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"trio-sip {__version__}")
    parser.add_argument(
        "--backend", choices=["trio", "asyncio"], default="trio", help="async backend to run on"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parse", help="parse and check a SIP message read from standard input")
    p.set_defaults(run=_parse, is_async=False)
    p = sub.add_parser("options", help="ping a SIP server with OPTIONS and print the answer")
    p.add_argument("uri", help="the server, e.g. sip:127.0.0.1:5060")
    p.add_argument("--listen", default="udp:0.0.0.0:0", help="local leg (default udp:0.0.0.0:0)")
    p.add_argument("--t1", type=float, default=0.5, help="RFC 3261 T1 in seconds")
    p.set_defaults(run=_options, is_async=True)
    p = sub.add_parser("demo", help="run a responder and ping it over loopback")
    p.set_defaults(run=_demo, is_async=True)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``trio-sip`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if args.is_async:
        code = anyio.run(partial(args.run, args), backend=args.backend)
    else:
        code = args.run(args)
    sys.exit(code)
