"""The conformance table names, for each specification, test modules that exist and hold tests."""

from __future__ import annotations

import re

from ._blocks import ROOT

PAGE = ROOT / "docs" / "conformance.rst"


def table_rows() -> list[list[str]]:
    """The list-table's rows (header included), each a list of cell texts."""
    rows: list[list[str]] = []
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("   * - "):
            rows.append([line[7:]])
        elif (line.startswith("     - ") or line == "     -") and rows:
            rows[-1].append(line[7:])
        elif line.startswith("       ") and rows:
            rows[-1][-1] += " " + line.strip()
        elif line.strip() and not line.startswith(" ") and rows:
            break  # the table is over
    return rows


def test_every_implemented_row_names_existing_tests() -> None:
    header, *rows = table_rows()
    assert header == ["Specification", "Implemented", "Not implemented", "Tested in"]
    assert len(rows) >= 10
    for row in rows:
        assert len(row) == 4, row
        spec, implemented, _, tested = row
        assert implemented, spec
        paths = re.findall(r"``(tests/[\w/]+\.py)``", tested)
        assert paths, f"{spec}: no tests named"
        for path in paths:
            source = (ROOT / path).read_text(encoding="utf-8")
            assert re.search(r"^(async )?def test_", source, re.MULTILINE), f"{path} has no test"
