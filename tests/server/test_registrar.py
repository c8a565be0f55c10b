"""The registrar over loopback, on both backends and both binding stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from dispatcher._peer import UDPPeer, udp_peer
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import URI, Response
from trio_sip.server import Binding, BindingStore, MemoryStore, Registrar, SQLiteStore, aor_of

from ._support import exchange, final, raw

pytestmark = pytest.mark.anyio


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], BindingStore]:
    if request.param == "memory":
        return MemoryStore
    return lambda: SQLiteStore(str(tmp_path / "bindings.db"))


@asynccontextmanager
async def running(
    store: BindingStore, clock: Clock, **options: object
) -> AsyncIterator[tuple[UDPPeer, Registrar, tuple[str, int]]]:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            registrar = Registrar(disp, store, clock=clock, **options)  # type: ignore[arg-type]
            disp.set_receiver(registrar)
            yield peer, registrar, disp.legs[0].address
        tg.cancel_scope.cancel()


def register(peer: UDPPeer, n: int, *headers: str, call_id: str = "reg-1", to: str = "") -> bytes:
    return raw(
        "REGISTER",
        "sip:example.com",
        peer.address,
        branch=f"z9hG4bKreg{n}",
        call_id=call_id,
        cseq=n,
        to=to or "<sip:alice@example.com>",
        headers=headers,
    )


def contacts(response: Response) -> dict[str, int]:
    return {
        c.uri.host + ":" + str(c.uri.port): int(c.params["expires"] or -1)
        for c in response.contacts
    }


async def test_bindings_with_their_own_expiry_to_tag_and_date(
    make_store: Callable[[], BindingStore],
) -> None:
    clock = Clock()
    async with running(make_store(), clock) as (peer, registrar, dst):
        first = final(
            await exchange(
                peer,
                dst,
                register(peer, 1, "Contact: <sip:a@192.0.2.1:5070>;expires=600", "Expires: 3600"),
            )
        )
        assert first.status == 200
        assert first.to.tag
        assert first.date is not None
        assert contacts(first) == {"192.0.2.1:5070": 600}
        clock.now += 100
        second = final(
            await exchange(
                peer,
                dst,
                register(
                    peer,
                    2,
                    "Contact: <sip:a@192.0.2.2:5080>;q=0.5",
                    "Expires: 1800",
                    call_id="reg-2",
                ),
            )
        )
        assert second.status == 200
        assert contacts(second) == {"192.0.2.1:5070": 500, "192.0.2.2:5080": 1800}
        found = await registrar.lookup(URI.parse("sip:alice@EXAMPLE.com;transport=udp"))
        # Highest q first: no q counts as 1.
        assert [b.contact for b in found] == ["sip:a@192.0.2.1:5070", "sip:a@192.0.2.2:5080"]
        assert found[1].q == 0.5


async def test_query_without_contact_changes_nothing(
    make_store: Callable[[], BindingStore],
) -> None:
    clock = Clock()
    store = make_store()
    async with running(store, clock) as (peer, _registrar, dst):
        await exchange(peer, dst, register(peer, 1, "Contact: <sip:a@192.0.2.1>", "Expires: 300"))
        clock.now += 10
        query = final(await exchange(peer, dst, register(peer, 2)))
        assert query.status == 200
        assert contacts(query) == {"192.0.2.1:None": 290}
        assert await store.count() == 1


async def test_same_call_id_needs_a_higher_cseq(make_store: Callable[[], BindingStore]) -> None:
    async with running(make_store(), Clock()) as (peer, registrar, dst):
        ok = final(await exchange(peer, dst, register(peer, 5, "Contact: <sip:a@192.0.2.1>")))
        assert ok.status == 200
        # Equal and lower CSeq with the same Call-ID: out of order (10.3 step 7).
        for cseq in (5, 4):
            data = register(peer, cseq, "Contact: <sip:a@192.0.2.1>", "Expires: 0")
            data = data.replace(b"branch=z9hG4bKreg", b"branch=z9hG4bKagain")
            assert final(await exchange(peer, dst, data)).status == 500
        assert len(await registrar.lookup(URI.parse("sip:alice@example.com"))) == 1
        # Another Call-ID may change the binding whatever its CSeq.
        other = register(peer, 1, "Contact: <sip:a@192.0.2.1>", "Expires: 0", call_id="reg-other")
        assert final(await exchange(peer, dst, other.replace(b"reg1", b"reg1x"))).status == 200
        assert await registrar.lookup(URI.parse("sip:alice@example.com")) == []


async def test_expires_zero_removes_one_and_star_removes_all(
    make_store: Callable[[], BindingStore],
) -> None:
    async with running(make_store(), Clock()) as (peer, _registrar, dst):
        two = register(peer, 1, "Contact: <sip:a@192.0.2.1>, <sip:a@192.0.2.2>")
        assert len(final(await exchange(peer, dst, two)).contacts) == 2
        one = final(
            await exchange(peer, dst, register(peer, 2, "Contact: <sip:a@192.0.2.1>;expires=0"))
        )
        assert contacts(one) == {"192.0.2.2:None": 3600}
        bad_star = final(await exchange(peer, dst, register(peer, 3, "Contact: *")))
        assert bad_star.status == 400
        star = final(await exchange(peer, dst, register(peer, 4, "Contact: *", "Expires: 0")))
        assert star.status == 200
        assert star.contacts == ()
        assert "contact" not in star.headers


async def test_too_brief_gets_423_with_min_expires_and_long_is_cut(
    make_store: Callable[[], BindingStore],
) -> None:
    async with running(make_store(), Clock(), min_expires=120, max_expires=7200) as (peer, _r, dst):
        brief = final(
            await exchange(
                peer, dst, register(peer, 1, "Contact: <sip:a@192.0.2.1>", "Expires: 30")
            )
        )
        assert brief.status == 423
        assert brief.headers.get("Min-Expires") == "120"
        long = final(
            await exchange(
                peer, dst, register(peer, 2, "Contact: <sip:a@192.0.2.1>", "Expires: 99999")
            )
        )
        assert contacts(long) == {"192.0.2.1:None": 7200}


async def test_foreign_domain_gets_403(make_store: Callable[[], BindingStore]) -> None:
    async with running(make_store(), Clock(), domains=["example.com"]) as (peer, registrar, dst):
        data = register(peer, 1, "Contact: <sip:a@192.0.2.1>", to="<sip:mallory@example.org>")
        assert final(await exchange(peer, dst, data)).status == 403
        assert registrar.statistics().rejected == 1


async def test_instance_id_and_reg_id_are_kept(make_store: Callable[[], BindingStore]) -> None:
    async with running(make_store(), Clock()) as (peer, registrar, dst):
        contact = 'Contact: <sip:a@192.0.2.1>;+sip.instance="<urn:uuid:1234>";reg-id=2'
        ok = final(await exchange(peer, dst, register(peer, 1, contact)))
        assert ok.contacts[0].params["reg-id"] == "2"
        (binding,) = await registrar.lookup(URI.parse("sip:alice@example.com"))
        assert binding.instance_id == '"<urn:uuid:1234>"'
        assert binding.reg_id == 2
        assert binding.source == f"udp:127.0.0.1:{peer.port}"


async def test_sqlite_bindings_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    path = str(tmp_path / "b.db")
    async with running(SQLiteStore(path), clock) as (peer, _r, dst):
        await exchange(peer, dst, register(peer, 1, "Contact: <sip:a@192.0.2.1>"))
    store = SQLiteStore(path)
    (binding,) = await store.get(aor_of(URI.parse("sip:alice@example.com")))
    assert binding.contact == "sip:a@192.0.2.1"
    assert binding.call_id == "reg-1"
    assert binding.cseq == 1
    await store.aclose()


@pytest.mark.virtual_time
async def test_expired_bindings_are_purged_by_the_timer() -> None:
    # Memory store only: a worker thread (SQLite) and an autojumping clock do not mix.
    clock = Clock()
    store = MemoryStore()
    async with running(store, clock, min_expires=1) as (peer, registrar, dst):
        await exchange(peer, dst, register(peer, 1, "Contact: <sip:a@192.0.2.1>", "Expires: 60"))
        await exchange(peer, dst, register(peer, 2, "Contact: <sip:a@192.0.2.2>", "Expires: 600"))
        handle = registrar.start_purging(30.0)
        clock.now += 61
        await anyio.sleep(31)
        assert await store.count() == 1
        assert registrar.statistics().purged == 1
        handle.cancel()


async def test_purge_removes_only_expired_bindings(make_store: Callable[[], BindingStore]) -> None:
    store = make_store()
    old = Binding("sip:a@x", "sip:a@192.0.2.1", 100.0, "c", 1)
    new = Binding("sip:a@x", "sip:a@192.0.2.2", 200.0, "c", 1)
    other = Binding("sip:b@x", "sip:b@192.0.2.3", 50.0, "d", 1)
    await store.replace("sip:a@x", [old, new])
    await store.replace("sip:b@x", [other])
    assert await store.purge(100.0) == 2
    assert await store.get("sip:a@x") == [new]
    assert await store.get("sip:b@x") == []
    await store.replace("sip:a@x", [])
    assert await store.count() == 0
    await store.aclose()


async def test_bad_contact_parameters_and_non_sip_aor_are_refused() -> None:
    store = MemoryStore()
    async with running(store, Clock()) as (peer, _registrar, dst):
        for n, contact in enumerate(
            [
                "Contact: <sip:a@192.0.2.1>;expires=soon",
                "Contact: <sip:a@192.0.2.1>;q=1.5",
                "Contact: <sip:a@192.0.2.1>;reg-id=x",
                "Contact: *, <sip:a@192.0.2.1>",
            ],
            start=1,
        ):
            response = final(await exchange(peer, dst, register(peer, n, contact)))
            assert response.status == 400, contact
        tel = register(peer, 9, "Contact: <sip:a@192.0.2.1>", to="<tel:+15551234>")
        assert final(await exchange(peer, dst, tel)).status == 416
        assert await store.count() == 0
