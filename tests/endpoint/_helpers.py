"""Endpoints on loopback for the endpoint tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from trio_sip.dispatcher import Dispatcher
from trio_sip.endpoint import Endpoint
from trio_sip.message import Request

#: Seconds (virtual) a test waits for anything before it fails.
BOUND = 120.0


@asynccontextmanager
async def running_endpoint(proto: str = "udp", **kwargs: Any) -> AsyncIterator[Endpoint]:
    """An Endpoint on a Dispatcher with one ``proto`` leg on 127.0.0.1, port 0."""
    async with (
        Dispatcher([f"{proto}:127.0.0.1:0"]) as disp,
        Endpoint(disp, user=kwargs.pop("user", "ep"), **kwargs) as ep,
    ):
        yield ep


def uri_of(ep: Endpoint, user: str = "bob") -> str:
    """A SIP URI that reaches ``ep``'s first leg."""
    leg = ep.dispatcher.legs[0]
    suffix = ";transport=tcp" if leg.proto == "tcp" else ""
    return f"sip:{user}@127.0.0.1:{leg.port}{suffix}"


async def serve(
    ep: Endpoint,
    handler: Callable[[Endpoint, Request], Any],
    seen: list[Request] | None = None,
) -> None:
    """Hand every incoming request of ``ep`` to ``handler`` in its own task."""
    async with anyio.create_task_group() as tg:
        async for request in ep.incoming():
            if seen is not None:
                seen.append(request)
            tg.start_soon(handler, ep, request)


async def answer(ep: Endpoint, request: Request, *, ring: bool = True, status: int = 200) -> None:
    """Answer INVITE with 180 then ``status``, anything else with 200."""
    if request.method == "INVITE" and ring:
        await ep.respond(request, 180)
    await ep.respond(request, status if request.method == "INVITE" else 200)
