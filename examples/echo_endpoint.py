"""A custom endpoint on the Dispatcher: answer every MESSAGE with its own text.

Run it with ``python examples/echo_endpoint.py`` (trio) or
``python examples/echo_endpoint.py asyncio``: it starts the endpoint on a
loopback port, sends it one MESSAGE from a second Dispatcher and prints the
answer.
"""

from __future__ import annotations

import sys

import anyio

from trio_sip import Dispatcher, Leg, Request, Response
from trio_sip.message import make_response, new_call_id, new_tag


class EchoEndpoint:
    """Answers MESSAGE with 200 carrying the same body; other requests with 405."""

    def __init__(self, disp: Dispatcher) -> None:
        self.disp = disp

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: object) -> None:
        if not isinstance(packet, Request) or packet.method == "ACK":
            return  # responses and ACKs need no answer
        if packet.method != "MESSAGE":
            await self.disp.deliver(make_response(packet, 405, headers=[("Allow", "MESSAGE")]))
            return
        headers = [("Content-Type", packet.headers.get("content-type") or "text/plain")]
        answer = make_response(packet, 200, to_tag=new_tag(), headers=headers, body=packet.body)
        # The Dispatcher finds the way back from the Via; a retransmitted
        # MESSAGE is answered again from its response cache.
        await self.disp.deliver(answer)


def message(target: str, text: str) -> Request:
    """A MESSAGE request (RFC 3428) without Via: the Dispatcher's leg adds it."""
    request = Request(
        "MESSAGE",
        target,
        [
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@example.com>;tag={new_tag()}"),
            ("To", f"<{target}>"),
            ("Call-ID", new_call_id()),
            ("CSeq", "1 MESSAGE"),
            ("Content-Type", "text/plain"),
        ],
    )
    request.body = text.encode()
    return request


async def main() -> str:
    async with (
        Dispatcher(["udp:127.0.0.1:0"]) as server,
        Dispatcher(["udp:127.0.0.1:0"]) as client,
    ):
        server.set_receiver(EchoEndpoint(server))
        answers: list[Response] = []
        answered = anyio.Event()

        def receive(packet: Request | Response, leg: Leg, from_addr: object) -> None:
            if isinstance(packet, Response):
                answers.append(packet)
                answered.set()

        client.set_receiver(receive)
        target = f"sip:echo@127.0.0.1:{server.legs[0].port}"
        await client.deliver(message(target, "hello, SIP"))
        with anyio.fail_after(5):
            await answered.wait()
        return f"{answers[0].status} {answers[0].body.decode()}"


if __name__ == "__main__":
    print(anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "trio"))
