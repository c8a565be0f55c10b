"""trio-sip inside a Trio program: a nursery, trio's own timeouts, ``trio.run``.

Alice sends Bob a MESSAGE (RFC 3428) over loopback; Bob prints it. Run with
``python examples/from_trio.py``.
"""

from __future__ import annotations

import trio

from trio_sip import UserAgent


async def main() -> str:
    async with (
        UserAgent("sip:alice@example.com", listen=["udp:127.0.0.1:0"]) as alice,
        UserAgent("sip:bob@example.com", listen=["udp:127.0.0.1:0"]) as bob,
        trio.open_nursery() as nursery,
    ):
        received: list[str] = []

        async def bob_reads_one() -> None:
            async for message in bob.messages():
                received.append(message.body.decode())
                return

        nursery.start_soon(bob_reads_one)
        with trio.fail_after(10):  # a Trio cancel scope bounds trio-sip's waits
            await alice.message(bob.contact(), "hello from Trio")
    return received[0]


if __name__ == "__main__":
    print(trio.run(main))
