"""The CSeq header field value (RFC 3261 section 20.16)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

from ..errors import ParseError

__all__ = ["CSeq"]

# CSeq = "CSeq" HCOLON 1*DIGIT LWS Method
_CSEQ_RE: Final = re.compile(r"[ \t]*([0-9]{1,10})[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*")

#: The sequence number must be less than 2**31 (section 8.1.1.5).
MAX_CSEQ: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class CSeq:
    """Sequence number and method of a request (echoed in its responses)."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse ``"4711 INVITE"``.

        The same few texts ("1 INVITE", "1 ACK", "2 BYE" ...) come in call
        after call: the most recent thousand share their (immutable) result.
        """
        if cls is CSeq:
            return _parse_cseq_memo(text)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> CSeq:
        m = _CSEQ_RE.fullmatch(text)
        if m is None:
            raise ParseError(f"bad CSeq: {text!r}")
        seq = int(m.group(1))
        if seq > MAX_CSEQ:
            raise ParseError(f"CSeq number out of range: {text!r}")
        return cls(seq, m.group(2))

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@functools.lru_cache(maxsize=1024)
def _parse_cseq_memo(text: str) -> CSeq:
    return CSeq._parse(text)
