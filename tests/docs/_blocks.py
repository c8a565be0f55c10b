"""The code blocks of a documentation page, so that tests run them as written."""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Markdown fences (```python ... ```) and reStructuredText directives
# (.. code-block:: python, then an indented body after a blank line).
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_DIRECTIVE = re.compile(
    r"^\.\. code-block:: (\w+)\n(?:[ \t]+:[\w-]+:.*\n)*\n((?:[ \t]+.*\n|[ \t]*\n)+)",
    re.MULTILINE,
)


def code_blocks(path: Path, language: str) -> list[str]:
    """Every block of ``language`` in the page at ``path``, in order, dedented."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return [body for lang, body in _FENCE.findall(text) if lang == language]
    return [
        textwrap.dedent(body).strip("\n") + "\n"
        for lang, body in _DIRECTIVE.findall(text)
        if lang == language
    ]


def commands(path: Path, program: str) -> list[list[str]]:
    """The ``$ program ...`` lines of the page's console blocks, split as a shell would."""
    found = []
    for block in code_blocks(path, "console"):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if line.startswith(f"$ {program} "):
                found.append(shlex.split(line[2:]))
    return found
