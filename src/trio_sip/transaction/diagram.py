"""State diagrams for the docs, drawn from the transition tables.

:func:`diagram` renders one machine as reStructuredText: a table of
state, event, next state and what the transaction does, and a plain-text
picture listing each state's ways out. :func:`write_docs` writes all four to
a file that ``docs/transactions.rst`` includes, so the published diagrams
are the tables the code runs, never a copy.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from typing import TypeVar

from .machines import (
    CLIENT_INVITE_TRANSITIONS,
    CLIENT_NON_INVITE_TRANSITIONS,
    SERVER_INVITE_TRANSITIONS,
    SERVER_NON_INVITE_TRANSITIONS,
    TRANSITION_NOTES,
    TRIGGER_NAMES,
    ClientInviteState,
    ClientNonInviteState,
    MachineKind,
    ServerInviteState,
    ServerNonInviteState,
    Trigger,
)

__all__ = ["diagram", "transitions", "states", "write_docs"]

_E = TypeVar("_E", bound=enum.Enum)

_TITLES: dict[MachineKind, str] = {
    MachineKind.CLIENT_INVITE: "INVITE client transaction (RFC 3261 17.1.1, RFC 6026 7.2)",
    MachineKind.CLIENT_NON_INVITE: "Non-INVITE client transaction (RFC 3261 17.1.2)",
    MachineKind.SERVER_INVITE: "INVITE server transaction (RFC 3261 17.2.1, RFC 6026 7.1)",
    MachineKind.SERVER_NON_INVITE: "Non-INVITE server transaction (RFC 3261 17.2.2)",
}


def _plain(table: Mapping[tuple[_E, Trigger], _E]) -> dict[tuple[enum.Enum, Trigger], enum.Enum]:
    plain: dict[tuple[enum.Enum, Trigger], enum.Enum] = {}
    for key, target in table.items():
        plain[key] = target
    return plain


def transitions(kind: MachineKind) -> dict[tuple[enum.Enum, Trigger], enum.Enum]:
    """A copy of the transition table of ``kind``, with states as plain enum members."""
    match kind:
        case MachineKind.CLIENT_INVITE:
            return _plain(CLIENT_INVITE_TRANSITIONS)
        case MachineKind.CLIENT_NON_INVITE:
            return _plain(CLIENT_NON_INVITE_TRANSITIONS)
        case MachineKind.SERVER_INVITE:
            return _plain(SERVER_INVITE_TRANSITIONS)
        case MachineKind.SERVER_NON_INVITE:
            return _plain(SERVER_NON_INVITE_TRANSITIONS)


def states(kind: MachineKind) -> list[enum.Enum]:
    """The states of ``kind`` in definition order (initial first, Terminated last)."""
    enums: dict[MachineKind, type[enum.Enum]] = {
        MachineKind.CLIENT_INVITE: ClientInviteState,
        MachineKind.CLIENT_NON_INVITE: ClientNonInviteState,
        MachineKind.SERVER_INVITE: ServerInviteState,
        MachineKind.SERVER_NON_INVITE: ServerNonInviteState,
    }
    return list(enums[kind])


def _escape(text: str) -> str:
    # Inline markup characters that may occur in the notes ("64*T1").
    for char in ("\\", "*", "`", "|", "_"):
        text = text.replace(char, "\\" + char)
    return text


def _rows(kind: MachineKind) -> list[tuple[str, str, str, str]]:
    table = transitions(kind)
    notes = TRANSITION_NOTES[kind]
    order = {state: i for i, state in enumerate(states(kind))}
    keys = sorted(table, key=lambda k: order[k[0]])  # stable: table order within a state
    return [
        (
            state.value,
            TRIGGER_NAMES[trigger],
            table[(state, trigger)].value,
            notes[(state, trigger)],
        )
        for state, trigger in keys
    ]


def _picture(kind: MachineKind) -> list[str]:
    rows = _rows(kind)
    width = max(len(trigger) for _, trigger, _, _ in rows)
    target_width = max(len(target) for _, _, target, _ in rows)
    lines: list[str] = []
    for state in states(kind):
        lines.append(state.value)
        mine = [row for row in rows if row[0] == state.value]
        if not mine:
            lines.append("  (final: the transaction is destroyed)")
        for _, trigger, target, note in mine:
            arrow = f"--[ {trigger:<{width}} ]-->"
            lines.append(f"  {arrow} {target:<{target_width}}  {note}".rstrip())
        lines.append("")
    return lines[:-1]


def diagram(kind: MachineKind) -> str:
    """``kind``'s state machine as reStructuredText, generated from its table.

    A section title, a list-table (state, event, next state, actions) and a
    literal block with each state and its ways out. Events the table does
    not list are absorbed, or refused when they come from the TU (see
    :mod:`trio_sip.transaction.machines`).
    """
    title = _TITLES[kind]
    out = [title, "-" * len(title), ""]
    out += [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 15 25 15 45",
        "",
        "   * - State",
        "     - Event",
        "     - Next state",
        "     - What the transaction does",
    ]
    for state, trigger, target, note in _rows(kind):
        out += [
            f"   * - {_escape(state)}",
            f"     - {_escape(trigger)}",
            f"     - {_escape(target)}",
            f"     - {_escape(note)}",
        ]
    out += ["", "::", ""]
    out += [f"   {line}" if line else "" for line in _picture(kind)]
    out.append("")
    return "\n".join(out)


def write_docs(path: str | os.PathLike[str]) -> None:
    """Write the diagrams of all four machines to ``path`` (for ``.. include::``).

    The file is only rewritten when its content changes, so Sphinx does not
    rebuild the page for nothing. Parent directories are created.
    """
    text = "\n".join(diagram(kind) for kind in MachineKind)
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
