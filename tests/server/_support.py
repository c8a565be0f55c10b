"""Helpers for the server tests: raw requests from a UDP peer, one exchange at a time."""

from __future__ import annotations

from dispatcher._peer import UDPPeer
from trio_sip.message import Message, Response


def raw(
    method: str,
    uri: str,
    peer: tuple[str, int],
    *,
    branch: str,
    call_id: str = "call-1",
    cseq: int = 1,
    from_: str = "<sip:alice@example.com>;tag=a1",
    to: str = "<sip:alice@example.com>",
    headers: tuple[str, ...] = (),
    max_forwards: int | None = 70,
) -> bytes:
    """A request as a UA on ``peer`` sends it (CRLF line ends, no body)."""
    host, port = peer
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport",
        *([f"Max-Forwards: {max_forwards}"] if max_forwards is not None else []),
        f"From: {from_}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        *headers,
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def exchange(peer: UDPPeer, dst: tuple[str, int], data: bytes) -> Message:
    """Send ``data`` and return the next packet that arrives at ``peer``."""
    before = len(peer.arrivals)
    await peer.send(data, dst)
    arrivals = await peer.wait_for(before + 1)
    return arrivals[before].message


def final(message: Message) -> Response:
    """``message`` as a Response (fails the test otherwise)."""
    assert isinstance(message, Response), message
    return message
