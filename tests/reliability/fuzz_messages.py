"""Coverage-guided fuzzing of the message layer with atheris (libFuzzer).

Run by ``test_fuzz_atheris.py`` as a subprocess (libFuzzer ends the process
when it is done), or by hand for longer::

    python tests/reliability/fuzz_messages.py tests/reliability/fuzz_seeds -max_total_time=600

Every input goes through what a Dispatcher does with bytes from the network:
the datagram parser, the stream framer (whole, and in two pieces at a place
the input chooses), the typed views a receiver reads and ``validate``; a
message that parses must serialise and parse again to the same message. The
only exception allowed out of the message layer is ParseError; anything else
is a crash, which libFuzzer reports with the input that caused it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from trio_sip.errors import ParseError
    from trio_sip.message import Request, StreamFramer, parse_message
    from trio_sip.message.model import Message

# What a receiver reads of a message (each may raise ParseError, lazily).
_VIEWS = (
    "top_via",
    "via",
    "call_id",
    "cseq",
    "from_",
    "to",
    "contacts",
    "routes",
    "record_routes",
    "max_forwards",
    "content_length",
    "expires",
    "date",
    "content_type",
)


def _read_views(msg: Message) -> None:
    for name in _VIEWS:
        try:
            getattr(msg, name)
        except ParseError:
            pass
    try:
        msg.validate()
    except ParseError:
        pass
    if isinstance(msg, Request):
        try:
            msg.uri  # noqa: B018 (the view is what is tested)
        except ParseError:
            pass


def _round_trip(msg: Message) -> None:
    # A changed message is serialised from its model, not sent as received.
    msg.headers.add("X-Fuzz", "1")
    data = bytes(msg)
    again = parse_message(data)
    before = [(n, v) for n, v in msg.headers if n.lower() not in ("content-length", "l")]
    after = [(n, v) for n, v in again.headers if n.lower() not in ("content-length", "l")]
    if (again.start_line, after, again.body) != (msg.start_line, before, msg.body):
        raise AssertionError(f"serialising changed the message: {data[:300]!r}")


def test_one_input(data: bytes) -> None:
    """One fuzz input: never anything but ParseError out of the message layer."""
    try:
        msg = parse_message(data)
    except ParseError:
        pass
    else:
        _round_trip(msg)
        _read_views(msg)
    cut = data[0] % (len(data) + 1) if data else 0
    framer = StreamFramer()
    try:
        events = framer.feed(data[:cut]) + framer.feed(data[cut:])
    except ParseError:
        return
    for event in events:
        if isinstance(event, Message):
            _read_views(event)


def main() -> None:
    """libFuzzer's command line: corpus directories and -flags."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
