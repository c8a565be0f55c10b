"""The generated state diagrams (transaction.diagram) for docs/transactions.rst."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trio_sip.transaction import TRANSITION_NOTES, TRIGGER_NAMES, MachineKind, diagram, write_docs
from trio_sip.transaction.diagram import states, transitions


@pytest.mark.parametrize("kind", list(MachineKind))
def test_diagram_has_a_row_per_table_entry(kind: MachineKind) -> None:
    text = diagram(kind)
    table = transitions(kind)
    assert text.count("   * - ") == len(table) + 1  # plus the header row
    for (state, trigger), target in table.items():
        row = f"   * - {state.value}\n     - {TRIGGER_NAMES[trigger]}\n     - {target.value}\n"
        assert row in text
    for state in states(kind):
        assert f"\n   {state.value}\n" in text  # the state list


@pytest.mark.parametrize("kind", list(MachineKind))
def test_picture_lists_each_way_out(kind: MachineKind) -> None:
    text = diagram(kind)
    picture = text.split("\n::\n", 1)[1]
    for (_, trigger), target in transitions(kind).items():
        assert f"{TRIGGER_NAMES[trigger]}" in picture
        assert f"]--> {target.value}" in picture
    assert "Terminated\n     (final: the transaction is destroyed)" in picture
    for note in TRANSITION_NOTES[kind].values():
        assert note in picture


@pytest.mark.parametrize("kind", list(MachineKind))
def test_diagram_is_valid_restructuredtext(kind: MachineKind) -> None:
    docutils_core = pytest.importorskip("docutils.core")
    messages: list[str] = []

    class Collect:
        def write(self, text: str) -> None:
            messages.append(text)

    docutils_core.publish_doctree(
        diagram(kind),
        settings_overrides={"warning_stream": Collect(), "report_level": 1},
    )
    assert messages == []


def test_write_docs_writes_once(tmp_path: Path) -> None:
    target = tmp_path / "_generated" / "transactions.inc"
    write_docs(target)
    text = target.read_text(encoding="utf-8")
    for kind in MachineKind:
        assert diagram(kind) in text
    os.utime(target, (1, 1))
    write_docs(str(target))
    assert target.stat().st_mtime == 1  # unchanged content is not rewritten
    target.write_text("stale", encoding="utf-8")
    write_docs(target)
    assert target.read_text(encoding="utf-8") == text


def test_docs_page_includes_the_generated_file() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "transactions.rst"
    assert ".. include:: _generated/transactions.inc" in page.read_text(encoding="utf-8")
