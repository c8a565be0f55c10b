"""Parse + serialise throughput of the message layer on a realistic mix.

Run: ``python benchmarks/bench_parser.py``. Prints messages per second for
each message kind and for the whole mix, on one core. The target of issue 2:
at least 40,000 parses per second of a typical INVITE.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from trio_sip.message import parse_message

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
)


def _msg(start: str, headers: list[str], body: bytes = b"") -> bytes:
    head = "\r\n".join([start, *headers, f"Content-Length: {len(body)}", "", ""])
    return head.encode() + body


COMMON = [
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport",
    "Max-Forwards: 70",
    "To: Bob <sip:bob@biloxi.example.com>",
    'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774',
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
]
INVITE = _msg(
    "INVITE sip:bob@biloxi.example.com SIP/2.0",
    [
        *COMMON,
        "CSeq: 314159 INVITE",
        "Contact: <sip:alice@192.0.2.10:5060>",
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY",
        "Supported: replaces, timer",
        "User-Agent: trio-sip-bench",
        "Content-Type: application/sdp",
    ],
    SDP,
)
RESPONSE_HEAD = [
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10",
    "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf",
    'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774',
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
    "CSeq: 314159 INVITE",
]
RINGING = _msg("SIP/2.0 180 Ringing", [*RESPONSE_HEAD, "Contact: <sip:bob@192.0.2.4>"])
OK = _msg(
    "SIP/2.0 200 OK",
    [*RESPONSE_HEAD, "Contact: <sip:bob@192.0.2.4>", "Content-Type: application/sdp"],
    SDP,
)
ACK = _msg("ACK sip:bob@192.0.2.4 SIP/2.0", [*COMMON[:2], *RESPONSE_HEAD[1:4], "CSeq: 314159 ACK"])
BYE = _msg("BYE sip:bob@192.0.2.4 SIP/2.0", [*COMMON[:2], *RESPONSE_HEAD[1:4], "CSeq: 314160 BYE"])
REGISTER = _msg(
    "REGISTER sip:registrar.biloxi.example.com SIP/2.0",
    [
        "Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds7;rport",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@biloxi.example.com>",
        "From: Bob <sip:bob@biloxi.example.com>;tag=456248",
        "Call-ID: 843817637684230@998sdasdh09",
        "CSeq: 1826 REGISTER",
        "Contact: <sip:bob@192.0.2.4>;expires=7200",
        'Authorization: Digest username="bob", realm="biloxi.example.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:biloxi.example.com", '
        'response="245f23415f11432b3434341c022", algorithm=SHA-256, qop=auth, '
        'nc=00000001, cnonce="0a4f113b"',
    ],
)
MIX = {"INVITE": INVITE, "180": RINGING, "200": OK, "ACK": ACK, "BYE": BYE, "REGISTER": REGISTER}


def _rate(fn: Callable[[], object], seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            fn()
        count += 200
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    print(f"{'message':<28}{'msgs/s':>12}")
    for name, data in MIX.items():
        rate = _rate(lambda data=data: parse_message(data), args.seconds)
        print(f"{'parse ' + name:<28}{rate:>12,.0f}")

    def parse_and_touch() -> None:
        msg = parse_message(INVITE)
        msg.top_via  # noqa: B018 - what a proxy reads
        msg.max_forwards  # noqa: B018

    def parse_change_serialise() -> None:
        msg = parse_message(INVITE)
        msg.headers.prepend("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1")
        msg.to_bytes()

    def mix() -> None:
        for data in MIX.values():
            parse_message(data).to_bytes()

    rows = [
        ("parse INVITE + top Via", parse_and_touch, 1),
        ("parse INVITE + Via + bytes", parse_change_serialise, 1),
        ("mix parse + bytes (per msg)", mix, len(MIX)),
    ]
    for name, fn, per in rows:
        print(f"{name:<28}{_rate(fn, args.seconds) * per:>12,.0f}")


if __name__ == "__main__":
    main()
