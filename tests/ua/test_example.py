"""The library example proposed for the README runs as written (port aside)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import textwrap

EXAMPLE = textwrap.dedent(
    """
    import anyio
    from trio_sip.ua import UserAgent

    async def main():
        async with UserAgent("sip:alice@127.0.0.1", listen=["udp:127.0.0.1:0"]) as ua:
            print((await ua.options("sip:127.0.0.1:5060")).start_line)

    anyio.run(main)
    """
)


def test_example_pings_the_proxy_of_the_main_job() -> None:
    proxy = subprocess.Popen(
        [sys.executable, "-m", "trio_sip", "proxy", "--registrar", "--listen", "udp:127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proxy.stdout is not None
        line = proxy.stdout.readline().decode()
        assert line.startswith("listening on udp:127.0.0.1:")
        port = line.rsplit(":", 1)[1].strip()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(EXAMPLE.replace("5060", port), {"__name__": "example"})
        assert out.getvalue() == "SIP/2.0 200 OK\n"
    finally:
        proxy.terminate()
        proxy.communicate(timeout=20)
