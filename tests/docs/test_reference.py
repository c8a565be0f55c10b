"""The reference documents every public name: each name in the ``__all__`` of
a public module, and each public method and property of a public class, is
an object of the documentation."""

from __future__ import annotations

import importlib
import inspect
import io
from pathlib import Path

from ._blocks import ROOT

PUBLIC = [
    "trio_sip",
    "trio_sip.message",
    "trio_sip.transaction",
    "trio_sip.transport",
    "trio_sip.resolver",
    "trio_sip.dispatcher",
    "trio_sip.endpoint",
    "trio_sip.server",
    "trio_sip.media",
    "trio_sip.ua",
    "trio_sip.testing",
    "trio_sip.pytest_plugin",
    "trio_sip.errors",
]


def public_names() -> dict[str, set[str]]:
    """``module -> names`` of the public API: ``__all__``, and ``Class.member``."""
    found: dict[str, set[str]] = {}
    for module in PUBLIC:
        names = found.setdefault(module, set())
        for name in importlib.import_module(module).__all__:
            if name.startswith("__"):
                continue
            names.add(name)
            obj = getattr(importlib.import_module(module), name)
            if not inspect.isclass(obj):
                continue
            for attr, value in vars(obj).items():
                if not attr.startswith("_") and (
                    inspect.isfunction(value)
                    or isinstance(value, property | classmethod | staticmethod)
                ):
                    names.add(f"{obj.__name__}.{attr}")
    return found


def test_every_public_name_is_in_the_reference(tmp_path: Path) -> None:
    from sphinx.application import Sphinx  # in the test dependency group

    # Reading the sources is enough to know the objects: no HTML is written.
    app = Sphinx(
        str(ROOT / "docs"),
        str(ROOT / "docs"),
        str(tmp_path / "out"),
        str(tmp_path / "doctrees"),
        "dummy",
        status=io.StringIO(),
        warning=io.StringIO(),
    )
    app.build()
    documented: set[str] = set()
    for qualified, *_ in app.env.get_domain("py").get_objects():
        parts = qualified.split(".")
        documented.add(parts[-1])
        documented.add(".".join(parts[-2:]))
    missing = {module: sorted(names - documented) for module, names in public_names().items()}
    assert {module: names for module, names in missing.items() if names} == {}
