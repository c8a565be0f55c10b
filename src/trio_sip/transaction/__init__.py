"""The sans-IO transaction layer (RFC 3261 section 17, RFC 6026)."""

from .timers import RetransmitKind, Timer, TimerConfig, proceeding_interval, retransmit_intervals

__all__ = ["RetransmitKind", "Timer", "TimerConfig", "proceeding_interval", "retransmit_intervals"]
