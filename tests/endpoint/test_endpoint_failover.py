"""RFC 3263 section 4.3 in the Endpoint: the next target after a timeout, an error or a 503."""

from __future__ import annotations

from collections.abc import Collection

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.endpoint import Endpoint
from trio_sip.message import URI, Request
from trio_sip.resolver import Target

from ._helpers import BOUND, answer, running_endpoint, serve

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


class FixedResolver:
    """Resolves every URI to the same ordered targets."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets
        self.asked: list[URI] = []

    async def resolve(self, uri: URI, *, transports: Collection[str] | None = None) -> list[Target]:
        self.asked.append(uri)
        return list(self.targets)


async def _unavailable(ep: Endpoint, request: Request) -> None:
    await ep.respond(request, 503)


@pytest.mark.parametrize("first", ["silent", "503"])
@pytest.mark.parametrize("method", ["INVITE", "MESSAGE"])
async def test_next_target_after_timeout_or_503(first: str, method: str) -> None:
    async with (
        running_endpoint() as good,
        running_endpoint() as bad,
        anyio.create_task_group() as tg,
    ):
        seen: list[Request] = []
        tg.start_soon(serve, good, answer, seen)
        if first == "503":
            tg.start_soon(serve, bad, _unavailable)
            first_port = bad.dispatcher.legs[0].port
        else:
            # A UDP socket that never answers: Timer B/F ends that attempt.
            silent = await anyio.create_udp_socket(local_host="127.0.0.1")
            first_port = silent.extra(anyio.abc.SocketAttribute.local_port)
        resolver = FixedResolver(
            [
                Target("udp", "127.0.0.1", first_port),
                Target("udp", "127.0.0.1", good.dispatcher.legs[0].port),
            ]
        )
        async with (
            Dispatcher(["udp:127.0.0.1:0"], resolver=resolver) as disp,
            Endpoint(disp, user="caller") as uac,
        ):
            start = anyio.current_time()
            with anyio.fail_after(BOUND):
                final = await uac.request("sip:bob@example.com", method)
            elapsed = anyio.current_time() - start
        assert final.status == 200
        assert len(seen) == 1
        assert seen[0].uri == URI.parse("sip:bob@example.com")
        if first == "silent":
            assert elapsed == pytest.approx(32.0, abs=0.1)
            await silent.aclose()
        else:
            assert elapsed < 1
        tg.cancel_scope.cancel()


async def test_no_more_targets_gives_the_last_answer() -> None:
    async with running_endpoint() as bad, anyio.create_task_group() as tg:
        tg.start_soon(serve, bad, _unavailable)
        resolver = FixedResolver([Target("udp", "127.0.0.1", bad.dispatcher.legs[0].port)] * 2)
        async with (
            Dispatcher(["udp:127.0.0.1:0"], resolver=resolver) as disp,
            Endpoint(disp) as uac,
        ):
            with anyio.fail_after(BOUND):
                final = await uac.request("sip:bob@example.com", "MESSAGE")
        assert final.status == 503
        assert bad.statistics().requests_received == 2
        tg.cancel_scope.cancel()
