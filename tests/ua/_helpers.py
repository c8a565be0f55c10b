"""Helpers of the UserAgent tests (also used by tests/reliability)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FixedJitter:
    """Stands in for the UA's random source (``trio_sip.ua._jitter``).

    Every draw lands at ``at`` of its range: 0.0 its low end, 1.0 its high
    end, so that a back-off schedule can be checked exactly.
    """

    at: float

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.at
