"""The README's Python examples run as written (the port aside)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

from tests.docs._blocks import ROOT, code_blocks

README = ROOT / "README.md"


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
            blocks = code_blocks(README, "python")
            assert blocks, "the README has no Python example"
            for block in blocks:
                exec(block.replace("5060", port), {"__name__": "example"})
        assert out.getvalue() == "SIP/2.0 200 OK\n"
    finally:
        proxy.terminate()
        proxy.communicate(timeout=20)
