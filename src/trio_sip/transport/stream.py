"""TCP and TLS legs: a listener plus a pool of connections (RFC 3261 section 18.3).

Connections are kept by peer address and reused in both directions: a
response goes back on the connection its request came in on (section
18.2.2), and a request to a peer that has a connection open to us uses it
(also the flow a client registered over, so a client behind a NAT stays
reachable, RFC 5626). Idle connections close after ``idle_timeout`` seconds;
a connection whose writes stall for ``send_timeout`` seconds (a peer that
stopped reading, or whose host vanished without closing) is closed.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketListener, TaskGroup
from anyio.streams.tls import TLSStream

from ..errors import DeliveryFailure, ParseError
from ..message import KeepAlivePing, Message, StreamFramer
from ..message.parse import DEFAULT_LIMITS, ParseLimits
from .leg import Address, Leg, PacketHandler, TransportFailure, format_address, map_os_error

__all__ = ["StreamLeg", "TCPLeg", "TLSLeg"]

log = logging.getLogger("trio_sip.transport")

_READ_SIZE = 65536
_CLOSED = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)


class _Connection:
    """One TCP/TLS connection: a framer for what comes in, a lock for what goes out."""

    __slots__ = ("closed", "framer", "incoming", "last_activity", "lock", "peer", "stream")

    def __init__(self, stream: ByteStream, peer: Address, limits: ParseLimits, incoming: bool):
        self.stream = stream
        self.peer = peer
        self.framer = StreamFramer(limits)
        self.lock = anyio.Lock()
        self.last_activity = anyio.current_time()
        self.closed = False
        self.incoming = incoming

    async def send(self, data: bytes, bound: float) -> None:
        """Send ``data`` whole; TimeoutError when the lock and the write take over ``bound``."""
        with anyio.fail_after(bound):
            async with self.lock:
                await self.stream.send(data)
        self.last_activity = anyio.current_time()


class StreamLeg(Leg):
    """Common code of the TCP and TLS legs."""

    reliable = True

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        advertise: str | None = None,
        idle_timeout: float = 300.0,
        connect_timeout: float = 10.0,
        send_timeout: float = 30.0,
        limits: ParseLimits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(host, port, sock=sock, advertise=advertise)
        #: Seconds without traffic after which a connection is closed.
        self.idle_timeout = idle_timeout
        #: Bound on opening an outgoing connection (a policy of the leg, not a
        #: call timeout: callers still bound deliveries with their own scopes).
        self.connect_timeout = connect_timeout
        #: Bound on one write (waiting for the connection's lock included).
        #: Past it the peer is taken as gone and the connection closed: a
        #: write cut short leaves the stream mid-message (and a TLS record
        #: half sent), so nothing more can go on it, and every sender queued
        #: behind the stalled one would wait as long.
        self.send_timeout = send_timeout
        self.limits = limits
        self._listener: SocketListener | None = None
        self._conns: dict[Address, _Connection] = {}
        self._connecting: dict[Address, anyio.Event] = {}
        self._tg: TaskGroup | None = None
        self._serving = anyio.Event()
        self._handler: PacketHandler | None = None

    # ----- set-up ---------------------------------------------------------------------

    async def bind(self) -> None:
        """Bind and listen. SO_REUSEADDR only lets us reuse a port in TIME_WAIT;
        on Linux it never lets two listeners share a port."""
        if self._listener is not None:
            return
        sock = self._sock
        if sock is None:
            sock = socket.socket(self.family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self.family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((self.host, self.port))
                sock.listen(128)
            except OSError as exc:
                sock.close()
                raise map_os_error(
                    exc, f"cannot bind {self.proto} {self.host}:{self.port}"
                ) from exc
        sock.setblocking(False)
        self._listener = await SocketListener.from_socket(sock)
        self.port = sock.getsockname()[1]

    async def serve(self, handler: PacketHandler) -> None:
        """Accept connections and read every connection, until cancelled."""
        listener = self._listener
        if listener is None:
            raise RuntimeError("leg is not bound")
        self._handler = handler
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._serving.set()
                while True:
                    try:
                        stream = await listener.accept()
                    except anyio.ClosedResourceError:
                        return
                    except OSError as exc:  # e.g. EMFILE: keep serving the others
                        log.warning("%r: accept failed: %s", self, exc)
                        await anyio.sleep(0.1)
                        continue
                    tg.start_soon(self._accepted, stream)
        finally:
            self._tg = None
            await self._close_all()

    async def _accepted(self, stream: ByteStream) -> None:
        try:
            peer_raw = stream.extra(SocketAttribute.remote_address)
            peer = (str(peer_raw[0]), int(peer_raw[1]))
            stream = await self._wrap_server(stream)
        except (OSError, ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            log.info("%r: incoming handshake failed: %s", self, exc)
            await stream.aclose()
            return
        conn = _Connection(stream, peer, self.limits, incoming=True)
        await self._run_connection(conn)

    async def _wrap_server(self, stream: ByteStream) -> ByteStream:
        return stream

    async def _wrap_client(self, stream: ByteStream, hostname: str | None) -> ByteStream:
        return stream

    # ----- the connection loop --------------------------------------------------------

    async def _run_connection(self, conn: _Connection) -> None:
        old = self._conns.get(conn.peer)
        self._conns[conn.peer] = conn
        self.stats.connections += 1
        handler = self._handler
        assert handler is not None
        try:
            while True:
                with anyio.move_on_after(self.idle_timeout):
                    try:
                        data = await conn.stream.receive(_READ_SIZE)
                    except _CLOSED:
                        return
                    except (OSError, ssl.SSLError) as exc:
                        log.info("%r: connection to %s failed: %s", self, conn.peer, exc)
                        return
                    conn.last_activity = anyio.current_time()
                    self.stats.bytes_in += len(data)
                    try:
                        events = conn.framer.feed(data)
                    except ParseError as exc:
                        # The stream position is lost: nothing after this can be framed.
                        log.info("%r: closing %s: %s", self, format_address(conn.peer), exc)
                        return
                    for event in events:
                        if isinstance(event, Message):
                            self.stats.packets_in += 1
                            try:
                                handler(event, self, conn.peer)
                            except Exception:
                                # One bad packet must not end the connection
                                # or the leg (the Dispatcher logs its own errors).
                                log.exception("%r: handling a packet failed", self)
                        elif isinstance(event, KeepAlivePing):
                            # RFC 5626 section 4.4.1: answer a CRLFCRLF ping with CRLF.
                            try:
                                await self._send_on(conn, b"\r\n")
                            except TransportFailure:
                                return  # the peer is gone: only this connection ends
                    continue
                if anyio.current_time() - conn.last_activity >= self.idle_timeout:
                    return
        finally:
            conn.closed = True
            if self._conns.get(conn.peer) is conn:
                if old is not None and not old.closed:
                    self._conns[conn.peer] = old
                else:
                    del self._conns[conn.peer]
            with anyio.CancelScope(shield=True):
                await conn.stream.aclose()

    async def _send_on(self, conn: _Connection, data: bytes) -> None:
        try:
            await conn.send(data, self.send_timeout)
        except TimeoutError as exc:
            # Before OSError, of which TimeoutError is a subclass.
            self.stats.send_errors += 1
            await self._abandon(conn)
            raise TransportFailure(
                DeliveryFailure.TIMEOUT,
                f"send to {format_address(conn.peer)} stalled for {self.send_timeout:g} s",
            ) from exc
        except (OSError, ssl.SSLError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            conn.closed = True
            self.stats.send_errors += 1
            raise TransportFailure(
                DeliveryFailure.TRANSPORT, f"send to {conn.peer}: {exc}"
            ) from exc
        self.stats.bytes_out += len(data)

    async def _abandon(self, conn: _Connection) -> None:
        """Close a connection from the sending side; its reader then ends and forgets it."""
        conn.closed = True
        if self._conns.get(conn.peer) is conn:
            del self._conns[conn.peer]
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(conn.stream)

    # ----- sending --------------------------------------------------------------------

    def connection_to(self, peer: Address) -> bool:
        """True when a connection to ``peer`` is open."""
        conn = self._conns.get(peer)
        return conn is not None and not conn.closed

    async def send(self, data: bytes, dst: Address, *, tls_hostname: str | None = None) -> None:
        """Send on the connection to ``dst``, opening one if there is none."""
        conn = self._conns.get(dst)
        if conn is None or conn.closed:
            conn = await self._connect(dst, tls_hostname)
        await self._send_on(conn, data)
        self.stats.packets_out += 1

    async def _connect(self, dst: Address, tls_hostname: str | None) -> _Connection:
        pending = self._connecting.get(dst)
        if pending is not None:
            # Someone is connecting there already: share their connection.
            await pending.wait()
            conn = self._conns.get(dst)
            if conn is not None and not conn.closed:
                return conn
        if self._tg is None:
            with anyio.fail_after(self.connect_timeout):
                await self._serving.wait()
        done = self._connecting[dst] = anyio.Event()
        try:
            stream = await self._open(dst, tls_hostname)
            conn = _Connection(stream, dst, self.limits, incoming=False)
            tg = self._tg
            if tg is None:
                await stream.aclose()
                raise TransportFailure(DeliveryFailure.TRANSPORT, "leg is closed")
            self._conns[dst] = conn
            tg.start_soon(self._run_connection, conn)
            return conn
        finally:
            del self._connecting[dst]
            done.set()

    async def _open(self, dst: Address, tls_hostname: str | None) -> ByteStream:
        what = f"{self.proto} connect to {format_address(dst)}"
        try:
            with anyio.fail_after(self.connect_timeout):
                stream: ByteStream = await anyio.connect_tcp(dst[0], dst[1])
                try:
                    # Without a name (a URI with an address, a caller that
                    # gave leg and address only), the certificate must name
                    # the address: with none, the check would be skipped and
                    # any certificate of a trusted CA accepted.
                    name = tls_hostname if tls_hostname is not None else dst[0]
                    return await self._wrap_client(stream, name)
                except BaseException:
                    await anyio.aclose_forcefully(stream)
                    raise
        except TimeoutError as exc:
            raise TransportFailure(DeliveryFailure.UNREACHABLE, f"{what}: timed out") from exc
        except ssl.SSLError as exc:
            raise TransportFailure(DeliveryFailure.TLS_FAILURE, f"{what}: {exc}") from exc
        except OSError as exc:
            raise map_os_error(exc, what) from exc
        except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            raise TransportFailure(DeliveryFailure.TLS_FAILURE, f"{what}: {exc!r}") from exc

    # ----- closing --------------------------------------------------------------------

    async def _close_all(self) -> None:
        with anyio.CancelScope(shield=True):
            for conn in list(self._conns.values()):
                conn.closed = True
                await anyio.aclose_forcefully(conn.stream)
            self._conns.clear()

    async def aclose(self) -> None:
        """Close the listener and every connection."""
        await self._close_all()
        if self._listener is not None:
            await self._listener.aclose()
            self._listener = None

    def statistics(self) -> Any:
        """Counters, with the number of open connections."""
        self.stats.extra["open_connections"] = len(self._conns)
        return self.stats


class TCPLeg(StreamLeg):
    """SIP over TCP."""

    proto = "tcp"


class TLSLeg(StreamLeg):
    """SIP over TLS (``sips:``), with server and client certificates.

    ``certfile``/``keyfile`` are this leg's certificate chain (needed to accept
    connections, and sent as a client certificate when the peer asks).
    ``cafile`` is what peers are verified against (the system store when not
    given). Peers are verified, with their host name checked against the SIP
    domain of the request (the name the resolver started from), or against
    the address when there is no name (a URI with an IP address, a send with
    only a leg and an address), unless ``verify=False`` (for tests only).
    ``require_client_cert`` makes the listener ask for and verify client
    certificates (mutual TLS). Ready-made contexts may be given instead.
    """

    proto = "tls"

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        advertise: str | None = None,
        idle_timeout: float = 300.0,
        connect_timeout: float = 10.0,
        send_timeout: float = 30.0,
        limits: ParseLimits = DEFAULT_LIMITS,
        certfile: str | None = None,
        keyfile: str | None = None,
        cafile: str | None = None,
        verify: bool = True,
        require_client_cert: bool = False,
        server_context: ssl.SSLContext | None = None,
        client_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(
            host,
            port,
            sock=sock,
            advertise=advertise,
            idle_timeout=idle_timeout,
            connect_timeout=connect_timeout,
            send_timeout=send_timeout,
            limits=limits,
        )
        if server_context is None and certfile is not None:
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_context.load_cert_chain(certfile, keyfile)
            if require_client_cert:
                server_context.verify_mode = ssl.CERT_REQUIRED
                if cafile:
                    server_context.load_verify_locations(cafile)
        if client_context is None:
            client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
            if not verify:
                client_context.check_hostname = False
                client_context.verify_mode = ssl.CERT_NONE
            if certfile is not None:
                client_context.load_cert_chain(certfile, keyfile)
        self.server_context = server_context
        self.client_context = client_context

    async def _wrap_server(self, stream: ByteStream) -> ByteStream:
        if self.server_context is None:
            raise ssl.SSLError("this TLS leg has no certificate to accept connections with")
        with anyio.fail_after(self.connect_timeout):
            return await TLSStream.wrap(
                stream, server_side=True, ssl_context=self.server_context, standard_compatible=False
            )

    async def _wrap_client(self, stream: ByteStream, hostname: str | None) -> ByteStream:
        return await TLSStream.wrap(
            stream,
            server_side=False,
            hostname=hostname,
            ssl_context=self.client_context,
            standard_compatible=False,
        )
