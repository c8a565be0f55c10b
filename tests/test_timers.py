from __future__ import annotations

import itertools

import pytest

from trio_sip.transaction import RetransmitKind, Timer, TimerConfig, retransmit_intervals


def _send_times(kind: RetransmitKind, cfg: TimerConfig) -> list[float]:
    times, now = [0.0], 0.0
    for wait in retransmit_intervals(kind, cfg):
        now += wait
        if now >= cfg.duration(kind.timeout_timer):
            return times
        times.append(now)
    raise AssertionError("unreachable")


def test_invite_request_doubles_without_cap() -> None:
    times = _send_times(RetransmitKind.INVITE_REQUEST, TimerConfig())
    assert times == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]


def test_non_invite_request_caps_at_t2() -> None:
    times = _send_times(RetransmitKind.NON_INVITE_REQUEST, TimerConfig())
    assert times == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


@pytest.mark.parametrize(
    "kind", [RetransmitKind.INVITE_FINAL_RESPONSE, RetransmitKind.INVITE_2XX_RESPONSE]
)
def test_responses_cap_at_t2(kind: RetransmitKind) -> None:
    waits = list(itertools.islice(retransmit_intervals(kind, TimerConfig(t1=0.1, t2=1.0)), 6))
    assert waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_durations_follow_table_4() -> None:
    cfg = TimerConfig(t1=0.5, t2=4.0, t4=5.0)
    assert cfg.duration(Timer.B) == 32.0
    assert cfg.duration(Timer.F) == 32.0
    assert cfg.duration(Timer.H) == 32.0
    assert cfg.duration(Timer.D) == 32.0
    assert cfg.duration(Timer.D, reliable=True) == 0.0
    assert cfg.duration(Timer.I) == 5.0
    assert cfg.duration(Timer.I, reliable=True) == 0.0
    assert cfg.duration(Timer.K) == 5.0
    assert cfg.duration(Timer.J) == 32.0
    assert cfg.duration(Timer.J, reliable=True) == 0.0
    assert cfg.duration(Timer.L) == cfg.duration(Timer.M) == 32.0
    assert cfg.duration(Timer.C) >= 180.0
    assert TimerConfig(t1=2.0).duration(Timer.D) == 128.0
