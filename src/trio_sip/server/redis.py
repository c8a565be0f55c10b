"""A small Redis client on anyio: RESP2, pipelining, a connection pool.

Just what a shared location service needs (see :mod:`.redis_store`), so that
trio-sip keeps its three runtime dependencies and runs on trio and on
asyncio alike. Commands are sent as RESP2 arrays of bulk strings; a
pipeline writes several commands in one send and reads their replies in
order, which is how ``WATCH``/``MULTI``/``EXEC`` transactions stay at two
round trips.

Replies come back as Python values: bulk strings as :class:`bytes`, simple
strings (``OK``, ``QUEUED``) as :class:`str`, integers as :class:`int`, nil
as ``None`` and arrays as lists. An error reply raises :class:`RedisError`;
socket failures, and a server that does not answer within the client's
``timeout``, raise :class:`~trio_sip.errors.TransportError`. Those are the
only exceptions that leave this module: backend exceptions are translated
in :meth:`RedisConnection.connect` and :meth:`RedisConnection._exchange`.

::

    client = RedisClient.from_url("redis://127.0.0.1:6379/0")
    await client.execute("SET", "k", "v")
    async with client.connection() as conn:      # one connection, e.g. for WATCH
        await conn.pipeline([("WATCH", "k"), ("GET", "k")])
    await client.aclose()
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeAlias

import anyio
import anyio.abc

from ..errors import SIPError, TransportError

__all__ = [
    "DEFAULT_TIMEOUT",
    "Command",
    "Reply",
    "RedisClient",
    "RedisClientStatistics",
    "RedisConnection",
    "RedisError",
    "RedisURL",
    "StaleConnectionError",
]

#: a decoded RESP2 reply
Reply: TypeAlias = "bytes | str | int | list[Reply] | None"
#: one command: its name and arguments (str are sent UTF-8 encoded, numbers as text)
Command: TypeAlias = Sequence[bytes | str | int | float]

_CRLF = b"\r\n"
_RECEIVE_SIZE = 65536
#: How long a connect, or the replies of one exchange, may take (seconds).
DEFAULT_TIMEOUT = 5.0


class RedisError(SIPError):
    """Redis answered a command with an error reply (``-ERR ...``, ``-WRONGTYPE ...``)."""


class StaleConnectionError(TransportError):
    """A connection that sat idle in the pool was found closed before any reply.

    What an idle pooled connection meets after Redis restarted: the commands
    reached no live server, so they can be sent again on a new connection.
    A connection that fails after it answered in the same use is no stale
    one: its commands may have run, so that is a plain
    :class:`~trio_sip.errors.TransportError`.
    """


@dataclass(frozen=True, slots=True)
class RedisURL:
    """Where a Redis server is: ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``."""

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> RedisURL:
        """Parse ``url``; raise :class:`ValueError` with the reason when it is not one."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"expected redis://HOST[:PORT][/DB], not {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"no query or fragment expected in {url!r}")
        host = parts.hostname
        if not host:
            raise ValueError(f"no host in {url!r}")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(f"bad port in {url!r}") from None
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"the database must be a number, not {path!r}")
        username = urllib.parse.unquote(parts.username) if parts.username else None
        password = urllib.parse.unquote(parts.password) if parts.password else None
        return cls(host, port, int(path or 0), username, password)

    def __str__(self) -> str:
        try:
            literal = ipaddress.ip_address(self.host)
        except ValueError:
            host = self.host
        else:
            host = f"[{literal}]" if literal.version == 6 else self.host
        return f"redis://{host}:{self.port}/{self.db}"


def _encode(commands: Sequence[Command]) -> bytes:
    out = bytearray()
    for command in commands:
        out += b"*%d\r\n" % len(command)
        for arg in command:
            if isinstance(arg, bytes):
                data = arg
            elif isinstance(arg, str):
                data = arg.encode()
            else:
                # repr() of a float round-trips exactly; Redis parses it back.
                data = repr(arg).encode()
            out += b"$%d\r\n" % len(data)
            out += data
            out += _CRLF
    return bytes(out)


class _Incomplete(Exception):
    """The buffer ends inside a reply: read more."""


def _parse(buf: bytearray, pos: int) -> tuple[Reply | RedisError, int]:
    """One reply from ``buf`` at ``pos``: the value and where the next one starts.

    Raises :class:`_Incomplete` when ``buf`` ends inside it, ValueError when it
    is no RESP2 reply.
    """
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == 0x2B:  # "+" simple string
        return line.decode(), pos
    if kind == 0x2D:  # "-" error
        return RedisError(line.decode(errors="replace")), pos
    if kind == 0x3A:  # ":" integer
        return int(line), pos
    if kind == 0x24:  # "$" bulk string
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return bytes(buf[pos : pos + size]), pos + size + 2
    if kind == 0x2A:  # "*" array
        count = int(line)
        if count < 0:
            return None, pos
        items: list[Reply] = []
        for _ in range(count):
            item, pos = _parse(buf, pos)
            # An error inside an array (an EXEC whose command failed) is a value.
            items.append(item if not isinstance(item, RedisError) else str(item))
        return items, pos
    # Not RESP2 (a RESP3 type, or no Redis at all): a failure of the
    # connection, which _exchange reports as one, not an error reply.
    raise ValueError(f"unexpected reply type {chr(kind)!r}")


class RedisConnection:
    """One connection to Redis; commands run one exchange at a time.

    A connection whose exchange was interrupted (cancelled, timed out, or a
    socket error) is ``broken``: its replies can no longer be matched to
    commands, so the pool closes it instead of reusing it. The replies of one
    exchange must all arrive within ``timeout`` seconds.
    """

    def __init__(
        self, stream: anyio.abc.ByteStream, url: RedisURL, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._stream = stream
        self.url = url
        self.timeout = timeout
        self._buffer = bytearray()
        self._lock = anyio.Lock()
        #: set while an exchange is in flight and after any failure
        self.broken = False
        # Set by the pool when it parks the connection idle: only then may a
        # failure before any reply be taken for a server that went away meanwhile.
        self._parked = False

    @classmethod
    async def connect(
        cls, url: RedisURL, *, io_timeout: float = DEFAULT_TIMEOUT
    ) -> RedisConnection:
        """Connect to ``url``, authenticate and select its database.

        The TCP connect may take ``io_timeout`` seconds, and so may the
        replies of each exchange on the connection (its ``timeout``).
        """
        try:
            with anyio.fail_after(io_timeout):
                stream = await anyio.connect_tcp(url.host, url.port)
        except TimeoutError:  # before OSError, of which it is a subclass
            raise TransportError(f"cannot connect to {url}: no answer in {io_timeout} s") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {url}: {exc}") from None
        conn = cls(stream, url, timeout=io_timeout)
        setup: list[Command] = []
        if url.password is not None:
            user = (url.username,) if url.username else ()
            setup.append(("AUTH", *user, url.password))
        if url.db:
            setup.append(("SELECT", url.db))
        try:
            if setup:
                await conn.pipeline(setup)
        except BaseException:
            await conn.aclose()
            raise
        return conn

    async def execute(self, *command: bytes | str | int | float) -> Reply:
        """Send one command and return its reply."""
        (reply,) = await self.pipeline([command])
        return reply

    async def pipeline(self, commands: Sequence[Command]) -> list[Reply]:
        """Send ``commands`` in one write and return their replies in order.

        Every reply is read before an error reply raises :class:`RedisError`
        (the first one), so that the connection stays in step.
        """
        # Uncontended (always, through the pool) the lock is taken without a
        # checkpoint of its own: the socket's send and receive checkpoint,
        # and each extra trip through the scheduler costs per command.
        try:
            self._lock.acquire_nowait()
        except anyio.WouldBlock:
            await self._lock.acquire()
        try:
            replies = await self._exchange(_encode(commands), len(commands))
        finally:
            self._lock.release()
        for reply in replies:
            if isinstance(reply, RedisError):
                raise reply
        return replies  # type: ignore[return-value]

    async def _exchange(self, data: bytes, count: int) -> list[Reply | RedisError]:
        if self.broken:
            raise TransportError(f"connection to {self.url} is broken")
        self.broken = True  # until every reply is in: a cancellation leaves it so
        # Only the first exchange after an idle spell can meet a stale
        # connection; a failure after that may follow commands that ran.
        stale, self._parked = self._parked, False
        replies: list[Reply | RedisError] = []
        buf = self._buffer
        pos = 0
        try:
            with anyio.fail_after(self.timeout):
                await self._stream.send(data)
                while len(replies) < count:
                    try:
                        reply, pos = _parse(buf, pos)
                    except _Incomplete:
                        buf += await self._stream.receive(_RECEIVE_SIZE)
                        continue
                    replies.append(reply)
        except TimeoutError:  # before OSError, of which it is a subclass
            raise TransportError(f"redis {self.url}: no reply in {self.timeout} s") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            if stale and not replies and not buf:
                raise StaleConnectionError(f"redis {self.url}: {exc!r}") from None
            raise TransportError(f"redis {self.url}: {exc!r}") from None
        except anyio.EndOfStream:
            if stale and not replies and not buf:
                raise StaleConnectionError(f"redis {self.url} had closed the connection") from None
            raise TransportError(f"redis {self.url} closed the connection") from None
        except ValueError:
            # A length or integer that is not a number, or a reply type that
            # RESP2 lacks: not RESP2 (not Redis?).
            raise TransportError(f"redis {self.url}: protocol error in a reply") from None
        del buf[:pos]
        self.broken = False
        return replies

    async def aclose(self) -> None:
        """Close the connection."""
        self.broken = True
        await self._stream.aclose()


@dataclass(frozen=True, slots=True)
class RedisClientStatistics:
    """Counters of a :class:`RedisClient`."""

    #: connections open now, and those of them idle in the pool
    connections: int
    idle: int
    #: connections made, and dropped because they broke
    connects: int
    discarded: int
    #: commands sent (each command of a pipeline counts)
    commands: int


class RedisClient:
    """A pool of at most ``max_connections`` connections to one Redis server.

    Connections are made on first use and kept for reuse. A connection that
    breaks is closed and replaced by the next user, so a restarted Redis is
    found again without the caller doing anything (the command that met the
    dead connection fails with :class:`~trio_sip.errors.TransportError`,
    except on an idle pooled connection found closed before any reply,
    :class:`StaleConnectionError`: :meth:`pipeline` retries that once on a
    fresh connection, and users of :meth:`connection` may do the same).
    ``timeout`` bounds each connect and each exchange's wait for its replies
    (:class:`~trio_sip.errors.TransportError` after it), so that a Redis that
    hangs fails the commands instead of holding their callers.
    """

    def __init__(
        self, url: RedisURL, *, max_connections: int = 8, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._limit = anyio.Semaphore(max_connections)
        self._idle: list[RedisConnection] = []
        self._open = 0
        self._connects = 0
        self._discarded = 0
        self._commands = 0
        self._closed = False

    @classmethod
    def from_url(
        cls, url: str, *, max_connections: int = 8, timeout: float = DEFAULT_TIMEOUT
    ) -> RedisClient:
        """A client for ``redis://HOST[:PORT][/DB]`` (see :class:`RedisURL`)."""
        return cls(RedisURL.parse(url), max_connections=max_connections, timeout=timeout)

    async def _take(self, *, fresh: bool = False) -> tuple[RedisConnection, bool]:
        if self._closed:
            raise TransportError("the redis client is closed")
        if self._idle and not fresh:
            return self._idle.pop(), True
        conn = await RedisConnection.connect(self.url, io_timeout=self.timeout)
        self._open += 1
        self._connects += 1
        return conn, False

    async def _give_back(self, conn: RedisConnection) -> None:
        if conn.broken or self._closed:
            self._open -= 1
            if conn.broken:
                self._discarded += 1
            with anyio.CancelScope(shield=True):
                await conn.aclose()
        else:
            conn._parked = True
            self._idle.append(conn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[RedisConnection]:
        """A connection of the pool for the block's exclusive use (``WATCH`` needs one).

        A block that leaves with commands unanswered (cancelled) or with
        ``WATCH`` still active must not hand the connection back in that
        state: the first is caught here (the connection is broken), the
        second is the caller's (``UNWATCH``, or ``EXEC``/``DISCARD``).
        """
        await self._acquire()
        try:
            conn, _ = await self._take()
            try:
                yield conn
            finally:
                await self._give_back(conn)
        finally:
            self._limit.release()

    async def _acquire(self) -> None:
        # As RedisConnection.pipeline's lock: no checkpoint of its own when free.
        try:
            self._limit.acquire_nowait()
        except anyio.WouldBlock:
            await self._limit.acquire()

    async def pipeline(self, commands: Sequence[Command]) -> list[Reply]:
        """Send ``commands`` on one pooled connection, in one write; return the replies."""
        self._commands += len(commands)
        await self._acquire()
        try:
            for attempt in range(2):
                # The retry connects anew: after a restart every idle
                # connection of the pool is as stale as the first one was.
                conn, reused = await self._take(fresh=attempt > 0)
                try:
                    return await conn.pipeline(commands)
                except StaleConnectionError:
                    # An idle connection whose server went away (Redis
                    # restarted): the commands never reached a live server,
                    # so one retry on a fresh connection is safe.
                    if not reused:
                        raise
                finally:
                    await self._give_back(conn)
        finally:
            self._limit.release()
        raise AssertionError("unreachable: the second attempt is on a fresh connection")

    async def execute(self, *command: bytes | str | int | float) -> Reply:
        """Send one command on a pooled connection and return its reply."""
        (reply,) = await self.pipeline([command])
        return reply

    def statistics(self) -> RedisClientStatistics:
        """Connections open and idle, connects, discarded connections, commands sent."""
        return RedisClientStatistics(
            self._open, len(self._idle), self._connects, self._discarded, self._commands
        )

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when handed back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open -= 1
            with anyio.CancelScope(shield=True):
                await conn.aclose()
