"""The CLI page documents every command of ``trio-sip`` and every option."""

from __future__ import annotations

import argparse

from trio_sip.cli import build_parser

from ._blocks import ROOT

PAGE = ROOT / "docs" / "cli.rst"


def undocumented() -> list[str]:
    """``command --option`` (or ``command``) for each one the page does not name."""
    text = PAGE.read_text(encoding="utf-8")
    missing: list[str] = []
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if f"trio-sip {name}" not in text:
                    missing.append(name)
                missing += [
                    f"{name} {option}"
                    for sub_action in sub._actions
                    for option in sub_action.option_strings
                    if option.startswith("--") and option != "--help" and option not in text
                ]
        else:
            missing += [
                option
                for option in action.option_strings
                if option.startswith("--") and option != "--help" and option not in text
            ]
    return missing


def test_every_command_and_option_is_documented() -> None:
    assert undocumented() == []
