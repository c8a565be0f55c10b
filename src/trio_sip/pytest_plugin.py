"""A pytest plugin for testing SIP applications on Trio and asyncio, in virtual time.

Installed with trio-sip (entry point ``pytest11``), it is passive until used:

* the ``fake_network`` fixture: a running :class:`~trio_sip.testing.FakeNetwork`
  (seeded, so a test's losses repeat), for an async test;
* the ``virtual_time`` marker: the test runs on a clock that jumps to the next
  deadline whenever every task waits -- Trio's
  ``trio.testing.MockClock(autojump_threshold=0)``, and for asyncio an event
  loop of looptime (``pip install 'trio-sip[testing]'``);
* the ``trio_sip_backends`` ini option (``trio_sip_backends = trio asyncio``):
  every anyio test then runs once per backend named, with the
  ``virtual_time`` marker honoured; ``--sip-backend`` picks one of them for a
  run. Without the option, ``anyio_backend`` is anyio's (or yours): call
  :func:`virtual_clock_options` in your own ``anyio_backend`` fixture.

Nothing optional is imported before a test asks for it.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .testing import FakeNetwork

__all__ = ["BACKENDS", "MARKER", "virtual_clock_options"]

#: The anyio backends trio-sip runs on.
BACKENDS = ("trio", "asyncio")
#: The marker that puts a test on a virtual clock.
MARKER = "virtual_time"


def virtual_clock_options(backend: str) -> dict[str, Any]:
    """The anyio backend options that run ``backend`` on an autojumping virtual clock.

    For ``"trio"`` a ``MockClock(autojump_threshold=0)`` as ``clock``; for
    ``"asyncio"`` a looptime event loop as ``loop_factory``, which jumps as
    soon as nothing is runnable and no I/O is ready (``noop_cycles=0``: the
    same rule as the MockClock). Raises :class:`ModuleNotFoundError` naming
    the extra to install when looptime is missing.
    """
    if backend == "trio":
        # Trio itself, not anyio: anyio has no virtual clock, and Trio's
        # MockClock is the backend option that gives one (test support only).
        import trio.testing

        return {"clock": trio.testing.MockClock(autojump_threshold=0)}
    if backend == "asyncio":
        try:
            import looptime
        except ImportError:
            raise ModuleNotFoundError(
                "virtual time on asyncio needs looptime: pip install 'trio-sip[testing]'",
                name="looptime",
            ) from None

        def loop_factory() -> Any:
            return looptime.new_event_loop(start=0.0, noop_cycles=0)

        return {"loop_factory": loop_factory}
    raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")


def _backend(request: pytest.FixtureRequest, name: str) -> tuple[str, dict[str, Any]]:
    """``name`` with the virtual clock when the test is marked ``virtual_time``."""
    if request.node.get_closest_marker(MARKER) is None:
        return name, {}
    try:
        return name, virtual_clock_options(name)
    except ModuleNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ini option that turns on the backend parametrisation, and its run-time choice."""
    parser.addini(
        "trio_sip_backends",
        type="args",
        default=[],
        help="run every anyio test on each of these backends (trio asyncio)",
    )
    parser.addoption(
        "--sip-backend",
        dest="trio_sip_backend",
        choices=[*BACKENDS, "all"],
        default="all",
        help="with trio_sip_backends: run the async tests on this backend only (default: all)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker; provide ``anyio_backend`` when ``trio_sip_backends`` is set."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}: run on a virtual clock that jumps to the next deadline when every task waits",
    )
    _unregister_broken_looptime_plugin(config)
    names: list[str] = config.getini("trio_sip_backends")
    if not names:
        return
    unknown = set(names) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"trio_sip_backends: unknown backend(s) {sorted(unknown)}")
    chosen = config.getoption("trio_sip_backend")
    if chosen != "all":
        names = [name for name in names if name == chosen]
    # Registered now, after anyio's own plugin, so this anyio_backend wins
    # over anyio's default; a conftest's fixture still wins over this one.
    config.pluginmanager.register(_Backends(names), "trio_sip_backends")


def _unregister_broken_looptime_plugin(config: pytest.Config) -> None:
    """Take looptime's own pytest plugin out where it would fail every test.

    looptime comes with the ``testing`` extra for its event loop, which this
    plugin uses directly. Its own pytest plugin (loaded with it, entry point
    ``looptime_plugin``) patches pytest-asyncio's loops, and without
    pytest-asyncio it fails at the setup of every fixture (looptime 0.9). It
    stays when pytest-asyncio is there, for those who use it.
    """
    manager = config.pluginmanager
    looptime_plugin = manager.getplugin("looptime_plugin")
    if looptime_plugin is not None and manager.getplugin("asyncio") is None:
        manager.unregister(looptime_plugin)


class _Backends:
    """The ``anyio_backend`` fixture, parametrised over the configured backends."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrise the tests that use this plugin's ``anyio_backend``."""
        if "anyio_backend" not in metafunc.fixturenames:
            return
        # A conftest's or a module's own anyio_backend decides the backend
        # itself: parametrising it would only run the same test twice under
        # two names. Told by the fixture, not by its baseid, which is empty
        # for a conftest.py at the rootdir as for this plugin.
        definitions = getattr(metafunc, "_arg2fixturedefs", {}).get("anyio_backend")
        if definitions and getattr(definitions[-1].func, "__self__", None) is not self:
            return
        # A test that names its backends (anyio's documented
        # @pytest.mark.parametrize("anyio_backend", [...])) keeps them: a
        # second parametrisation would be a collection error.
        for marker in metafunc.definition.iter_markers("parametrize"):
            argnames = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
            if isinstance(argnames, str):
                argnames = [name.strip() for name in argnames.split(",")]
            if "anyio_backend" in argnames:
                return
        metafunc.parametrize("anyio_backend", self.names, indirect=True)

    @pytest.fixture
    def anyio_backend(self, request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
        """The backend of this run of the test, on a virtual clock if marked so."""
        return _backend(request, request.param)


@pytest.fixture
async def fake_network(request: pytest.FixtureRequest) -> AsyncIterator[FakeNetwork]:
    """A running in-memory network, without loss or delay until the test sets the knobs.

    Seeded from the test's id, so that a test's losses and reorderings are
    the same at every run.
    """
    from .testing import FakeNetwork

    seed = zlib.crc32(request.node.nodeid.encode())
    async with FakeNetwork(seed=seed) as network:
        yield network
