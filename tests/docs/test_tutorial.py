"""The tutorial runs as written: its proxy command, then its program, on both backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.test_cli import Command

from ._blocks import ROOT, code_blocks, commands

TUTORIAL = ROOT / "docs" / "tutorial.rst"


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_tutorial_softphones_register_call_answer_and_hang_up(backend: str, tmp_path: Path) -> None:
    (proxy_command,) = commands(TUTORIAL, "trio-sip")
    assert proxy_command[:2] == ["trio-sip", "proxy"]
    # The page's port 5060 may be taken here: port 0 picks a free one.
    args = [arg.replace(":5060", ":0") for arg in proxy_command[1:]]
    program = "\n\n".join(code_blocks(TUTORIAL, "python"))
    assert program.count("anyio.run(main)") == 1
    (expected,) = code_blocks(TUTORIAL, "text")
    with Command("--backend", backend, *args) as proxy:
        port = proxy.start().port()
        script = tmp_path / "softphones.py"
        script.write_text(
            program.replace("5060", str(port)).replace(
                "anyio.run(main)", f"anyio.run(main, backend={backend!r})"
            )
        )
        run = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60
        )
        code, out, err = proxy.stop()
    assert run.returncode == 0, run.stderr
    assert run.stdout == expected
    assert code == 0, err
    # Two REGISTERs each (the binding, then its removal on the way out).
    assert "registrar: registers=4 accepted=4" in out
