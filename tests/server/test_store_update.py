"""BindingStore.update on the memory and SQLite stores: atomic, all or nothing.

(The Redis store has the same tests and more in tests/scaleout.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from trio_sip.server import Binding, BindingStore, MemoryStore, SQLiteStore
from trio_sip.server.store import open_store

pytestmark = pytest.mark.anyio

AOR = "sip:alice@example.com"


def binding(contact: str, expires_at: float = 2000.0) -> Binding:
    return Binding(AOR, contact, expires_at, "c1", 1)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BindingStore]:
    opened = open_store("memory" if request.param == "memory" else f"sqlite:{tmp_path / 'b.db'}")
    yield opened
    await opened.aclose()


def test_open_store_kinds(tmp_path: Path) -> None:
    assert isinstance(open_store(None), MemoryStore)
    sqlite = open_store(f"sqlite:{tmp_path / 'x.db'}")
    assert isinstance(sqlite, SQLiteStore)
    for bad in ("sqlite:", "redis:x", "mem"):
        with pytest.raises(ValueError, match="sqlite:PATH"):
            open_store(bad)


async def test_update_returns_and_stores_the_new_set(store: BindingStore) -> None:
    await store.replace(AOR, [binding("sip:a@x")])
    new = await store.update(AOR, lambda current: [*current, binding("sip:b@x")])
    assert [b.contact for b in new] == ["sip:a@x", "sip:b@x"]
    assert await store.get(AOR) == new
    assert await store.update(AOR, lambda current: []) == []
    assert await store.count() == 0


async def test_an_exception_in_the_update_writes_nothing(store: BindingStore) -> None:
    await store.replace(AOR, [binding("sip:a@x")])

    def refuse(current: list[Binding]) -> list[Binding]:
        raise LookupError("no")

    with pytest.raises(LookupError):
        await store.update(AOR, refuse)
    assert [b.contact for b in await store.get(AOR)] == ["sip:a@x"]


async def test_concurrent_updates_lose_nothing(store: BindingStore) -> None:
    async def add(n: int) -> None:
        await store.update(AOR, lambda current: [*current, binding(f"sip:{n}@x")])

    async with anyio.create_task_group() as tg:
        for n in range(30):
            tg.start_soon(add, n)
    assert len(await store.get(AOR)) == 30


async def test_two_sqlite_stores_on_one_file_lose_nothing(tmp_path: Path) -> None:
    # Two processes sharing one file, as two connections here: BEGIN
    # IMMEDIATE makes each read-modify-write one transaction.
    path = str(tmp_path / "shared.db")
    first, second = SQLiteStore(path), SQLiteStore(path)

    async def add(store: SQLiteStore, n: int) -> None:
        await store.update(AOR, lambda current: [*current, binding(f"sip:{n}@x")])

    try:
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(add, first if n % 2 else second, n)
        assert len(await first.get(AOR)) == 20
    finally:
        await first.aclose()
        await second.aclose()
