"""The ``trio-sip`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .errors import ParseError
from .message import parse_message


def _parse(args: argparse.Namespace) -> int:
    data = sys.stdin.buffer.read()
    try:
        msg = parse_message(data)
        msg.validate()
    except ParseError as exc:
        print(f"invalid ({exc.status_hint}): {exc.reason}", file=sys.stderr)
        return 1
    print(msg.summary())
    for name, value in msg.headers:
        print(f"  {name}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``trio-sip`` command."""
    parser = argparse.ArgumentParser(prog="trio-sip", description=__doc__)
    parser.add_argument("--version", action="version", version=f"trio-sip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parse", help="parse and check a SIP message read from standard input")
    p.set_defaults(run=_parse)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``trio-sip`` command."""
    args = build_parser().parse_args(argv)
    sys.exit(args.run(args))
