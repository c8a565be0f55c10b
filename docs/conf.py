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


# ----- cross-references to re-exported names ----------------------------------------------
# Public names are documented where they are defined or first re-exported
# (trio_sip.ua.UserAgent, trio_sip.server.Registrar ...) but written in the
# pages and docstrings as users import them (trio_sip.UserAgent). A reference
# Sphinx cannot find is resolved to the documented name of the same object.

import importlib  # noqa: E402
import inspect  # noqa: E402
from typing import Any  # noqa: E402

from docutils import nodes  # noqa: E402
from sphinx.application import Sphinx  # noqa: E402
from sphinx.environment import BuildEnvironment  # noqa: E402


def _locate(name: str) -> Any:
    """The object ``name`` designates (``package.module.Class.attr``), or None."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = inspect.getattr_static(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _identity(obj: Any) -> int | None:
    """A key for objects that keep their identity: modules, classes, functions, properties."""
    if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj):
        return id(obj)
    if isinstance(obj, property | classmethod | staticmethod):
        return id(obj)
    return None


def _documented_names(env: BuildEnvironment) -> dict[int, str]:
    cache: dict[int, str] | None = getattr(env, "_trio_sip_documented", None)
    if cache is None:
        cache = {}
        for name, *_ in env.get_domain("py").get_objects():
            if name.startswith("trio_sip"):
                key = _identity(_locate(name))
                if key is not None:
                    cache.setdefault(key, name)
        env._trio_sip_documented = cache  # type: ignore[attr-defined]
    return cache


def _resolve_reexport(
    app: Sphinx, env: BuildEnvironment, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("trio_sip"):
        return None
    key = _identity(_locate(target))
    documented = _documented_names(env).get(key) if key is not None else None
    if documented is None or documented == target:
        return None
    resolved: nodes.Element | None = env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], documented, node, contnode
    )
    return resolved


def setup(app: Sphinx) -> None:
    """Resolve references to re-exported names."""
    app.connect("missing-reference", _resolve_reexport)
