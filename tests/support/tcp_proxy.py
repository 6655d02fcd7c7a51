"""A threaded TCP proxy on a free 127.0.0.1 port in front of one upstream, for fault
tests: `block` makes the upstream look down, `drop_next` fails the next connections.

    proxy = ProxyServer(("127.0.0.1", s3.port)).start()
    client = boto3.client("s3", endpoint_url=proxy.url, ...)
    proxy.block()      # open connections cut, new ones reset at once
    proxy.unblock()

Counting: `connections` is the number of connections accepted; `requests` the number of
HTTP request heads seen from clients (a line starting with an HTTP method at the start of
the stream or just after the previous request's body). Bodies are skipped by their
Content-Length; a chunked request body ends the counting on that connection (what the
proxy forwards is not affected). Enough for boto3 and urllib, which keep connections alive
but send Content-Length.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

from scripts import devstack

_METHODS = (b"GET", b"PUT", b"POST", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH")


class _RequestCounter:
    """Finds request heads in one connection's client-to-upstream bytes."""

    def __init__(self, on_request: object) -> None:
        assert callable(on_request)
        self._on_request = on_request
        self._buffer = b""
        self._body_left = 0
        self._lost = False  # a chunked body: no longer know where requests start

    def feed(self, data: bytes) -> None:
        if self._lost:
            return
        self._buffer += data
        while True:
            if self._body_left:
                skipped = min(self._body_left, len(self._buffer))
                self._body_left -= skipped
                self._buffer = self._buffer[skipped:]
                if self._body_left:
                    return
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > 65536:
                    self._lost = True
                return
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            if head.split(b" ", 1)[0] in _METHODS:
                self._on_request()
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    self._body_left = int(value.strip() or 0)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    self._lost = True
                    return


class ProxyServer:
    """Forwards every connection to `upstream` (host, port), each in two threads."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = devstack.free_port()
        self.connections = 0
        self.requests = 0
        self._drop = 0
        self._blocked = False
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>, e.g. an S3 endpoint_url through the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProxyServer:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        self._cut_open()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ProxyServer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def block(self) -> None:
        """As if the upstream were down: open connections are cut, new ones are accepted
        and closed at once (a client sees a reset or an empty reply, not a timeout)."""
        with self._lock:
            self._blocked = True
        self._cut_open()

    def unblock(self) -> None:
        with self._lock:
            self._blocked = False

    def drop_next(self, n: int = 1) -> None:
        """The next `n` connections are closed once the request head has arrived, before
        anything is forwarded (a request that failed on its way: the client gets no reply)."""
        with self._lock:
            self._drop += n

    def _cut_open(self) -> None:
        with self._lock:
            sockets = list(self._open)
            self._open.clear()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _counted_request(self) -> None:
        with self._lock:
            self.requests += 1

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                blocked = self._blocked
                drop = self._drop > 0
                if drop and not blocked:
                    self._drop -= 1
            if blocked:
                _reset(client)
                continue
            threading.Thread(target=self._serve, args=(client, drop), daemon=True).start()

    def _serve(self, client: socket.socket, drop: bool) -> None:
        counter = _RequestCounter(self._counted_request)
        if drop:
            client.settimeout(10)
            received = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in received:
                    data = client.recv(65536)
                    if not data:
                        break
                    received += data
            counter.feed(received)
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        with self._lock:
            if self._blocked:
                upstream.close()
                _reset(client)
                return
            self._open.update((client, upstream))
        back = threading.Thread(target=_pipe, args=(upstream, client, None), daemon=True)
        back.start()
        _pipe(client, upstream, counter)
        back.join(timeout=30)
        with self._lock:
            self._open.discard(client)
            self._open.discard(upstream)
        client.close()
        upstream.close()


def _pipe(source: socket.socket, target: socket.socket, counter: _RequestCounter | None) -> None:
    """Copy until either side ends, then shut both down (so the other direction ends too)."""
    with contextlib.suppress(OSError):
        while True:
            data = source.recv(65536)
            if not data:
                break
            if counter is not None:
                counter.feed(data)
            target.sendall(data)
    for s in (source, target):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


def _reset(s: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0), as a refused or broken connection looks."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
