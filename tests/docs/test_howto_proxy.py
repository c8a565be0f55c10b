"""The proxy how-to's command runs as written: TLS and TCP registrations with
digest authentication, kept in the SQLite store across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from tests.test_cli import Command

from trio_sip import UserAgent
from trio_sip.server.store import SQLiteStore

from ._blocks import ROOT, code_blocks, commands

HOWTO = ROOT / "docs" / "howto" / "proxy.rst"


def write_certificates(base: Path, names: list[str]) -> dict[str, Path]:
    """A test CA and a certificate for ``names`` and 127.0.0.1, as PEM files."""
    ca = trustme.CA()
    cert = ca.issue_cert(*names, "127.0.0.1")
    files = {"ca": base / "ca.pem", "chain": base / "chain.pem", "key": base / "key.pem"}
    ca.cert_pem.write_to_path(files["ca"])
    cert.private_key_pem.write_to_path(files["key"])
    with files["chain"].open("wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    return files


def localise(args: list[str], tmp: Path, certs: dict[str, Path]) -> list[str]:
    """The page's arguments on loopback, free ports and files under ``tmp``."""
    out = []
    for arg in args:
        arg = arg.replace("0.0.0.0:5060", "127.0.0.1:0").replace("0.0.0.0:5061", "127.0.0.1:0")
        if arg.startswith("/etc/trio-sip/"):
            arg = str(certs["key" if arg.endswith("-key.pem") else "chain"])
        arg = arg.replace("/var/lib/trio-sip/", f"{tmp}/")
        out.append(arg)
    return out


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_proxy_howto_tls_tcp_auth_and_sqlite_across_a_restart(backend: str, tmp_path: Path) -> None:
    (command,) = commands(HOWTO, "trio-sip")
    certs = write_certificates(tmp_path, ["example.com", "sip.example.com"])
    args = localise(command[1:], tmp_path, certs)
    assert {a.split(":", 1)[0] for a in args if a.startswith(("udp:", "tcp:", "tls:"))} == {
        "udp",
        "tcp",
        "tls",
    }
    users = dict(args[i + 1].split(":", 1) for i, a in enumerate(args) if a == "--user")
    store_path = next(a for a in args if a.startswith("sqlite:")).partition(":")[2]
    (client_code,) = code_blocks(HOWTO, "python")
    namespace: dict[str, Any] = {"__name__": "howto"}
    exec(client_code.replace('"0.0.0.0"', '"127.0.0.1"'), namespace)
    register_over_tls = namespace["register_over_tls"]
    proxies = [Command("--backend", backend, *args)]
    got: dict[str, str] = {}

    def restart() -> None:
        code, out, err = proxies[-1].stop()
        assert code == 0, err
        assert "authorize: challenged=2 accepted=2" in out
        assert "registrar: registers=2 accepted=2" in out
        proxies.append(Command("--backend", backend, *args))
        proxies[-1].start(legs=3)

    async def scenario() -> None:
        first = proxies[0]
        with anyio.fail_after(60):
            tls_proxy = f"sips:example.com:{first.port('tls')};maddr=127.0.0.1"
            got["alice"] = await register_over_tls(str(certs["ca"]), tls_proxy)
            async with UserAgent(
                "sip:bob@example.com",
                listen=["tcp:127.0.0.1:0"],
                proxy=f"sip:127.0.0.1:{first.port('tcp')};transport=tcp",
                credentials={"bob": users["bob"]},
            ) as bob:
                ok = await bob.register(refresh=False)
                got["bob"] = str(ok.contacts[0].uri)
                await anyio.to_thread.run_sync(restart)
                # The new process finds Bob in the store: a MESSAGE reaches him.
                async with UserAgent(
                    "sip:carol@example.org",
                    listen=["udp:127.0.0.1:0"],
                    proxy=f"127.0.0.1:{proxies[-1].port('udp')}",
                ) as carol:
                    await carol.message("sip:bob@example.com", "still there?")
                message = await bob.messages().receive()
                assert message.body == b"still there?"

    async def stored() -> dict[str, list[str]]:
        store = SQLiteStore(store_path)
        try:
            return {
                aor: [b.contact for b in await store.get(aor)]
                for aor in ("sips:alice@example.com", "sip:bob@example.com")
            }
        finally:
            await store.aclose()

    try:
        proxies[0].start(legs=3)
        anyio.run(scenario, backend=backend)
        code, _, err = proxies[-1].stop()
        assert code == 0, err
    finally:
        for proxy in proxies:
            proxy.__exit__()
    assert got["alice"].startswith("sips:alice@127.0.0.1:")
    assert got["bob"].endswith(";transport=tcp")
    assert anyio.run(stored) == {
        "sips:alice@example.com": [got["alice"]],
        "sip:bob@example.com": [got["bob"]],
    }
