"""trio-sip inside an asyncio program: a TaskGroup, ``asyncio.timeout``, ``asyncio.run``.

The same exchange as ``from_trio.py``, written the asyncio way: trio-sip's
waits are cancelled by asyncio's own cancellation. Run with
``python examples/from_asyncio.py``.
"""

from __future__ import annotations

import asyncio

from trio_sip import UserAgent


async def main() -> str:
    async with (
        UserAgent("sip:alice@example.com", listen=["udp:127.0.0.1:0"]) as alice,
        UserAgent("sip:bob@example.com", listen=["udp:127.0.0.1:0"]) as bob,
    ):
        async with asyncio.timeout(10), asyncio.TaskGroup() as tasks:

            async def bob_reads_one() -> str:
                async for message in bob.messages():
                    return message.body.decode()
                raise RuntimeError("Bob's UserAgent closed before a message came")

            reader = tasks.create_task(bob_reads_one())
            await alice.message(bob.contact(), "hello from asyncio")
        return reader.result()


if __name__ == "__main__":
    print(asyncio.run(main()))
