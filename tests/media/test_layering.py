"""The sans-IO media modules import nothing that does I/O (design.md, layers)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

SANS_IO = ["rtp", "g711", "dtmf", "offer_answer"]
FORBIDDEN = {"anyio", "trio", "asyncio", "socket", "selectors"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            # A relative import stays inside trio_sip: keep where it goes.
            names.add(f".{node.module or ''}")
    return names


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_module_imports_no_io(module: str) -> None:
    spec = importlib.util.find_spec(f"trio_sip.media.{module}")
    assert spec is not None
    assert spec.origin is not None
    imports = _imports(Path(spec.origin))
    assert not imports & FORBIDDEN
    # Within the package, only other sans-IO modules and the sans-IO layers below.
    relative = {name for name in imports if name.startswith(".")}
    allowed = {".errors", ".message.sdp", *(f".{m}" for m in SANS_IO)}
    assert relative <= allowed
