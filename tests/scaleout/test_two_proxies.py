"""Several ``trio-sip proxy --registrar`` processes sharing one Redis, driven by SIPp.

- a UAS registered through proxy A is called through proxy B, and still
  through B once A has stopped;
- a restarted Redis without persistence has lost the bindings: calls get
  404 until the UA registers again (through either proxy), which works on
  the proxies' pooled connections without restarting them; with an
  append-only file the bindings come back by themselves;
- stateless means any instance carries any request: an INVITE through A
  and its BYE through B;
- ``proxy --workers 2`` is two such proxies behind one address: a worker
  that did not take the REGISTER finds its binding in Redis; and
  ``registrar --workers 2`` answers each REGISTER with every binding of
  the AOR, whichever worker took the others.
"""

from __future__ import annotations

import contextlib
import re
from functools import partial
from pathlib import Path

import anyio
import pytest

from cli_process import Running, trio_sip
from interop.peers import Address, SippServer, run_sipp
from trio_sip.transport.shard import call_id_of_shard
from trio_sip.ua import UserAgent

from ._redis import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

SCENARIOS = Path(__file__).parent / "scenarios"
INTEROP_SCENARIOS = Path(__file__).parents[1] / "interop" / "scenarios"


def proxy(backend: str, redis: RedisServer) -> contextlib.AbstractAsyncContextManager[Running]:
    """``trio-sip proxy --registrar`` on a UDP port of its own, bindings in ``redis``."""
    return trio_sip(
        "--backend", backend, "proxy", "--registrar", "--store", redis.url,
        "--listen", "udp:127.0.0.1:0",
    )  # fmt: skip


def address(running: Running) -> Address:
    return Address("127.0.0.1", running.port())


def counter(out: str, name: str) -> int:
    found = re.search(rf"\b{name}=(\d+)", out)
    assert found is not None, out
    return int(found.group(1))


async def register(sipp: str, through: Running, uas: SippServer) -> None:
    """Register ``sip:bob@127.0.0.1`` at ``uas`` through a proxy (AOR: the port is dropped)."""
    result = await run_sipp(
        SCENARIOS / "register.xml",
        address(through),
        global_timeout=10,
        extra_args=["-s", "bob", "-key", "contact", str(uas.address)],
        program=sipp,
    )
    assert result.ok, result.describe()


async def call(sipp: str, through: Running, calls: int = 3) -> int:
    """Call ``sip:bob@127.0.0.1:<port of the proxy>``; return how many calls succeeded."""
    result = await run_sipp(
        "uac",
        address(through),
        calls=calls,
        rate=20,
        global_timeout=15,
        timeout_error=False,
        extra_args=["-s", "bob"],
        program=sipp,
    )
    return result.successful


async def test_registered_through_one_proxy_called_through_another(
    sipp: str, redis_server: RedisServer, anyio_backend_name: str
) -> None:
    async with SippServer("uas", program=sipp) as uas, proxy(anyio_backend_name, redis_server) as b:
        async with proxy(anyio_backend_name, redis_server) as a:
            await register(sipp, a, uas)
            assert await call(sipp, b) == 3
        # A has stopped (its statistics say it took the REGISTER): B routes alone.
        assert a.returncode == 0, a.err
        assert "registrar: registers=1 accepted=1" in a.out
        assert await call(sipp, b) == 3
    assert b.returncode == 0, b.err
    assert "registrar: registers=0" in b.out
    assert counter(b.out, "requests_forwarded") >= 6 * 3  # INVITE, ACK, BYE per call


async def test_redis_restart_without_persistence_needs_a_new_register(
    sipp: str, redis_server: RedisServer, anyio_backend_name: str
) -> None:
    async with (
        SippServer("uas", program=sipp) as uas,
        proxy(anyio_backend_name, redis_server) as a,
        proxy(anyio_backend_name, redis_server) as b,
    ):
        await register(sipp, a, uas)
        assert await call(sipp, b, calls=1) == 1
        await anyio.to_thread.run_sync(redis_server.restart)
        # The bindings are gone with the old Redis: the call gets 404.
        assert await call(sipp, b, calls=1) == 0
        # The UA's next REGISTER (its refresh) restores routing, through
        # either proxy, each of which found the new Redis by itself.
        await register(sipp, b, uas)
        assert await call(sipp, a, calls=2) == 2
    assert a.returncode == b.returncode == 0, a.err + b.err
    assert counter(b.out, "answered") == 1  # the 404 of the call after the restart


async def test_redis_restart_with_an_append_only_file_keeps_bindings(
    sipp: str, persistent_redis_server: RedisServer, anyio_backend_name: str
) -> None:
    redis = persistent_redis_server
    async with (
        SippServer("uas", program=sipp) as uas,
        proxy(anyio_backend_name, redis) as a,
        proxy(anyio_backend_name, redis) as b,
    ):
        await register(sipp, a, uas)
        await anyio.to_thread.run_sync(redis.restart)
        assert await call(sipp, b, calls=2) == 2
    assert a.returncode == b.returncode == 0, a.err + b.err


async def test_invite_through_one_proxy_and_bye_through_another(
    sipp: str, redis_server: RedisServer, anyio_backend_name: str
) -> None:
    calls = 3
    async with (
        proxy(anyio_backend_name, redis_server) as a,
        proxy(anyio_backend_name, redis_server) as b,
        # The UAS is trio-sip's: it answers the BYE along its Via (RFC 3261
        # section 18.2.2), through B. SIPp's uas answers every message of a
        # call to where the INVITE came from, which here is A.
        trio_sip(
            "--backend", anyio_backend_name, "answer", "--listen", "udp:127.0.0.1:0",
            "--aor", "sip:bob@127.0.0.1", "--registrar", f"127.0.0.1:{a.port()}",
        ) as uas,
    ):  # fmt: skip
        result = await run_sipp(
            SCENARIOS / "uac_bye_elsewhere.xml",
            address(a),
            calls=calls,
            rate=10,
            global_timeout=15,
            extra_args=["-s", "bob", "-key", "other_port", str(b.port())],
            program=sipp,
        )
    assert result.ok, result.describe()
    assert result.successful == calls
    assert uas.returncode == 0, uas.err
    assert "answered=3" in uas.out
    # A carried the REGISTERs (the UAS's, and its removal when it stopped)
    # and each INVITE and ACK, B each BYE and its 200, and nothing else: B
    # never saw the dialogs being set up.
    assert counter(a.out, "requests_forwarded") == 2 + 2 * calls
    assert counter(b.out, "requests_forwarded") == calls
    assert counter(b.out, "responses_forwarded") == calls


async def test_workers_behind_one_address_share_their_bindings(
    sipp: str, redis_server: RedisServer, anyio_backend_name: str
) -> None:
    calls = 20
    async with (
        SippServer("uas", program=sipp) as uas,
        trio_sip(
            "--backend", anyio_backend_name, "proxy", "--registrar", "--store", redis_server.url,
            "--user", "bob:pw", "--algorithm", "MD5",
            "--listen", "udp:127.0.0.1:0", "--workers", "2",
        ) as workers,
    ):  # fmt: skip
        # Challenged, then answered: the retry keeps its Call-ID, so the
        # worker that made the nonce checks it.
        registered = await run_sipp(
            INTEROP_SCENARIOS / "register_auth.xml",
            address(workers),
            global_timeout=10,
            extra_args=[
                "-s", "bob", "-au", "bob", "-ap", "pw", "-key", "contact", str(uas.address),
            ],
            program=sipp,
        )  # fmt: skip
        assert registered.ok, registered.describe()
        # SIPp's Call-IDs count up: twenty calls land on both workers.
        assert await call(sipp, workers, calls=calls) == calls
    assert workers.returncode == 0, workers.err
    # One worker took the REGISTER and its retry (their Call-ID picked it)...
    registers = re.findall(r"^registrar: registers=(\d+) accepted=(\d+)", workers.out, re.M)
    assert sorted(registers) == [("0", "0"), ("1", "1")], workers.out
    digests = re.findall(r"^authorize: challenged=(\d+) accepted=(\d+)", workers.out, re.M)
    assert sorted(digests) == [("0", "0"), ("1", "1")], workers.out
    # ...and both routed calls to the binding, INVITE, ACK and BYE each.
    forwarded = [int(n) for n in re.findall(r"requests_forwarded=(\d+)", workers.out)]
    assert len(forwarded) == 2, workers.out
    assert min(forwarded) > 0, forwarded
    assert sum(forwarded) >= 3 * calls + 1  # and the REGISTER, routed to the registrar


async def test_a_registrar_of_workers_answers_with_every_binding(
    redis_server: RedisServer, anyio_backend_name: str
) -> None:
    async with trio_sip(
        "--backend", anyio_backend_name, "registrar", "--store", redis_server.url,
        "--listen", "udp:127.0.0.1:0", "--workers", "2",
    ) as workers:  # fmt: skip
        registered: list[str] = []
        for shard in (0, 1, 0, 1):
            # A REGISTER whose Call-ID picks ``shard``: each worker takes two.
            contact = f"sip:bob@127.0.0.1:{5100 + len(registered)}"
            async with UserAgent(
                "sip:bob@example.com",
                listen=["udp:127.0.0.1:0"],
                call_ids=partial(call_id_of_shard, shard, 2),
            ) as ua:
                with anyio.fail_after(10):
                    ok = await ua.register(
                        f"sip:127.0.0.1:{workers.port()}", contact=contact, refresh=False
                    )
            registered.append(contact)
            # Whichever worker took it, the 200 lists every binding so far.
            assert sorted(str(c.uri) for c in ok.contacts) == sorted(registered)
    assert workers.returncode == 0, workers.err
    registers = re.findall(r"^registrar: registers=(\d+)", workers.out, re.MULTILINE)
    assert registers == ["2", "2"], workers.out
