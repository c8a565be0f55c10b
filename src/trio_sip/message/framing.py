"""Incremental framing of SIP messages on a byte stream (RFC 3261 section 18.3).

Sans-IO: feed the bytes read from a TCP or TLS connection, get back complete
messages. Keep-alives (RFC 5626 section 4.4.1) are recognised: a double CRLF
"ping" is reported so that the transport can answer with a single CRLF "pong".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParseError
from .model import Request, Response
from .parse import DEFAULT_LIMITS, ParseLimits, parse_head

__all__ = ["StreamFramer", "KeepAlivePing", "KeepAlivePong"]


@dataclass(frozen=True, slots=True)
class KeepAlivePing:
    """The peer sent CRLFCRLF: answer with a single CRLF (RFC 5626 section 4.4.1)."""


@dataclass(frozen=True, slots=True)
class KeepAlivePong:
    """The peer answered our ping with a single CRLF."""


class StreamFramer:
    """Cut a byte stream into SIP messages by Content-Length.

    A message without Content-Length on a stream cannot be framed; that is a
    :class:`ParseError` after which the connection should be closed, since the
    stream position is lost. So is a message over the size limit.
    """

    __slots__ = ("_buffer", "_limits")

    def __init__(self, limits: ParseLimits = DEFAULT_LIMITS) -> None:
        self._buffer = bytearray()
        self._limits = limits

    @property
    def buffered(self) -> int:
        """How many bytes wait for the rest of their message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Request | Response | KeepAlivePing | KeepAlivePong]:
        """Add ``data``; return every event now complete, in order."""
        buf = self._buffer
        buf += data
        events: list[Request | Response | KeepAlivePing | KeepAlivePong] = []
        limits = self._limits
        while buf:
            # Keep-alive CRLFs between messages.
            if buf[0] in (13, 10):
                if buf.startswith(b"\r\n\r\n"):
                    del buf[:4]
                    events.append(KeepAlivePing())
                    continue
                if buf == b"\r\n" or buf == b"\r\n\r" or buf == b"\r":
                    break  # could still become a ping; wait
                if buf.startswith(b"\r\n"):
                    del buf[:2]
                    events.append(KeepAlivePong())
                    continue
                del buf[:1]  # a stray LF or CR
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > limits.max_message_size:
                    raise ParseError("header section over the size limit", status_hint=413)
                break
            head = bytes(buf[:end]).decode("utf-8", "surrogateescape")
            msg = parse_head(head, limits)
            length = msg.content_length
            if length is None:
                raise ParseError("stream message without Content-Length")
            total = end + 4 + length
            if total > limits.max_message_size:
                raise ParseError("message over the size limit", status_hint=413)
            if len(buf) < total:
                break
            msg._body = bytes(buf[end + 4 : total])
            msg._set_raw(bytes(buf[:total]))
            del buf[:total]
            events.append(msg)
        return events
