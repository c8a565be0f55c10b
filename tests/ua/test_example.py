"""The README's Python examples run as written (the port aside)."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python_blocks() -> list[str]:
    """Every ```python block of the README, in order."""
    text = README.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


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
            blocks = readme_python_blocks()
            assert blocks, "the README has no Python example"
            for block in blocks:
                exec(block.replace("5060", port), {"__name__": "example"})
        assert out.getvalue() == "SIP/2.0 200 OK\n"
    finally:
        proxy.terminate()
        proxy.communicate(timeout=20)
