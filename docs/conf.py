"""Sphinx configuration of the trio-sip documentation."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

# The transaction state tables are the truth: the diagrams are drawn from them
# at every build, never copied by hand.
from trio_sip.transaction import write_docs  # noqa: E402

write_docs(Path(__file__).parent / "_generated" / "transactions.inc")

project = "trio-sip"
author = "trio-sip developers"
copyright = "2026, trio-sip developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
