"""The rate ladder of ``benchmarks/run.py``: how a system's figure is found.

The steps here are played by a model system, clean up to a set rate and
over it beyond, so the climb and its refinement are checked without SIPp.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from interop.peers import SippExit, SippResult

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def _load_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmarks_run", RUN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


run = _load_run()


class ModelSystem:
    """Every call succeeds up to ``limit`` calls/s; above it a step takes twice its time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rates: list[int] = []

    async def step(self, rate: int, calls: int, nominal: float) -> SippResult:
        self.rates.append(rate)
        return SippResult(
            command=("sipp",),
            exit_code=SippExit.ALL_SUCCEEDED.value,
            calls_requested=calls,
            created=calls,
            successful=calls,
            failed=0,
            current=0,
            retransmissions=0,
            timed_out=False,
            elapsed=nominal if rate <= self.limit else 2 * nominal,
            stats={},
            errors_tail="",
            screen_tail="",
        )


def _steps(*rates_and_clean: tuple[int, bool]) -> list[object]:
    return [run.Step(rate, rate * 3, 3.0, rate * 3, 0, clean) for rate, clean in rates_and_clean]


def test_the_probe_halves_the_gap_above_the_highest_clean_rate() -> None:
    assert run.next_probe(_steps((700, True), (1000, True), (1200, False))) == 1100
    # A clean rate above an unclean one (noise, with --patience 2) moves the floor.
    steps = _steps((400, True), (500, False), (700, True), (1000, False))
    assert run.next_probe(steps) == 850
    assert run.next_probe(_steps((300, True), (400, False))) == 350


def test_nothing_to_probe_without_a_gap() -> None:
    assert run.next_probe([]) is None
    assert run.next_probe(_steps((100, False), (150, False))) is None
    # The top of the ladder was clean: the figure is a lower bound, said as such.
    assert run.next_probe(_steps((100, True), (150, True))) is None
    # Within 5% of each other: close enough.
    assert run.next_probe(_steps((1000, True), (1050, False))) is None
    assert run.next_probe(_steps((1000, True), (1100, False)), resolution=0.1) is None


@pytest.mark.parametrize(
    ("rate", "rounded"), [(1.0, 10), (254.0, 250), (255.0, 260), (1024.0, 1000), (3475.0, 3500)]
)
def test_probes_are_round_rates(rate: float, rounded: int) -> None:
    assert run.round_rate(rate) == rounded


@pytest.mark.anyio
async def test_the_climb_narrows_in_on_the_limit() -> None:
    system = ModelSystem(limit=1130)
    steps = await run.climb("model", (700, 1000, 1200, 1400), 3.0, 1, system.step, refine=3)
    # The ladder stops at its first unclean rung, then 1100 (clean) and
    # 1150 (not): 1100 and 1150 are within 5%, so it ends there.
    assert system.rates == [700, 1000, 1200, 1100, 1150]
    result = run.LadderResult("model", steps)
    assert result.best == 1100


@pytest.mark.anyio
async def test_refine_bounds_the_extra_steps() -> None:
    system = ModelSystem(limit=1130)
    steps = await run.climb("model", (100, 2000), 3.0, 1, system.step, refine=2)
    assert system.rates == [100, 2000, 1050, 1500]
    assert run.LadderResult("model", steps).best == 1050
    bare = ModelSystem(limit=1130)
    steps = await run.climb("model", (700, 1000, 1200), 3.0, 1, bare.step)
    assert bare.rates == [700, 1000, 1200]
    assert run.LadderResult("model", steps).best == 1000


def _round(system: str, best: int | None, error: str | None = None) -> object:
    steps = _steps((100, True), (best, True), (best + 100, False)) if best else _steps((100, False))
    return run.LadderResult(system, [] if error else steps, error=error)


def test_a_figure_is_the_median_of_its_rounds() -> None:
    figure = run.Figure(
        "model", (_round("model", 2250), _round("model", 1950), _round("model", 2000))
    )
    assert figure.best == 2000
    assert figure.error is None
    assert figure.note == "rounds 2,250 / 1,950 / 2,000"
    # Of an even number, the lower middle one: a rate some round reached.
    assert run.Figure("model", (_round("model", 700), _round("model", 400))).best == 400
    assert run.Figure("model", (_round("model", 700),)).best == 700
    assert run.Figure("model", (_round("model", 700),)).note is None


def test_a_round_without_a_clean_step_counts_as_the_lowest() -> None:
    rounds = (_round("model", None), _round("model", 500), _round("model", 700))
    assert run.Figure("model", rounds).best == 500
    rounds = (_round("model", None), _round("model", None), _round("model", 700))
    figure = run.Figure("model", rounds)
    assert figure.best is None
    assert figure.note == "rounds < ladder / < ladder / 700"


def test_a_figure_says_why_its_rounds_failed() -> None:
    rounds = (_round("model", None, error="perl not found"),) * 2
    figure = run.Figure("model", rounds)
    assert figure.best is None
    assert figure.error == "perl not found"
    more = (_round("model", 300), _round("model", 400), _round("model", 500))
    figure = run.Figure("model", (*rounds, *more))
    assert (figure.best, figure.error) == (300, None)


@pytest.mark.anyio
async def test_rounds_take_turns() -> None:
    order: list[str] = []
    limits = {"a": [1000, 1200, 1100], "b": [400, 700, 500]}

    async def measure(name: str) -> object:
        order.append(name)
        system = ModelSystem(limits[name].pop(0))
        steps = await run.climb(name, (300, 400, 500, 700, 1000, 1200, 1400), 3.0, 1, system.step)
        return run.LadderResult(name, steps)

    figures = await run.rounds(3, ["a", "b"], {"a": "A", "b": "B"}, measure)
    assert order == ["a", "b", "a", "b", "a", "b"]
    assert [(f.system, f.best) for f in figures] == [("a", 1000), ("b", 500)]
    assert [r.best for r in figures[1].rounds] == [400, 700, 500]
