"""The message layer under atheris (coverage-guided fuzzing, libFuzzer).

The hypothesis tests beside this one mutate messages at random; atheris
follows the parser's branches to reach the inputs random mutation misses.
The harness is ``fuzz_messages.py``: only ParseError may come out of parsing,
framing and reading a message, and a parsed message serialises and parses
back to itself. Bounded in runs and in time; a crash fails the test with the
input that caused it.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from interop.peers import peers_required

HERE = Path(__file__).parent
RUNS = 10_000
TIME_LIMIT = 90  # seconds of fuzzing at the most, whatever the machine


def _require_atheris() -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        if peers_required() and sys.platform == "linux" and platform.machine() == "x86_64":
            pytest.fail("atheris is missing: it is in the test dependency group")
        pytest.skip("atheris does not install on this platform")


def test_atheris_finds_no_crash_in_the_message_layer(tmp_path: Path) -> None:
    _require_atheris()
    corpus = tmp_path / "corpus"
    shutil.copytree(HERE / "fuzz_seeds", corpus)
    artifacts = tmp_path / "crashes"
    artifacts.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz_messages.py"),
            str(corpus),
            f"-runs={RUNS}",
            f"-max_total_time={TIME_LIMIT}",
            "-seed=1",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
        ],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT * 2 + 60,
        check=False,
    )
    report = done.stderr[-3000:]
    assert done.returncode == 0, report
    assert not any(artifacts.iterdir()), report
    runs = re.search(r"Done (\d+) runs", done.stderr)
    assert runs is not None, report
    # It really fuzzed: the whole count, or as many as the time limit allowed.
    assert int(runs.group(1)) >= 1000, report
