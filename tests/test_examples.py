"""The examples the docs include really run, on both backends."""

from __future__ import annotations

import pytest
from examples.echo_endpoint import main as echo_main


@pytest.mark.anyio
async def test_echo_endpoint_example() -> None:
    assert await echo_main() == "200 hello, SIP"
