"""The HTTP side: a ThreadingHTTPServer whose handler logs each request, applies the
switched-on faults and latency, and sends the API's answer (chunked when streamed)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import errors
from .api import Api
from .faults import Faults
from .request import Request, Response


@dataclass
class RequestRecord:
    """One request as the server saw it; ``status`` None: the connection was dropped."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float
    status: int | None = None
    user: str | None = None
    fault: bool = False
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def all(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class ApiHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        api: Api,
        faults: Faults,
        log: RequestLog,
        tls: ssl.SSLContext | None,
    ) -> None:
        super().__init__(address, Handler)
        self.api = api
        self.faults = faults
        self.request_log = log
        self.tls = tls
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        """Wrap accepted connections in TLS here, so that socketserver closes the TLS
        socket it owns; the handshake happens in the connection's own thread."""
        sock, address = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def track(self, sock: socket.socket, on: bool) -> None:
        with self._open_lock:
            if on:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def close_connections(self) -> None:
        with self._open_lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that go away (and TLS handshakes that fail) are not errors here."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiHTTPServer

    def setup(self) -> None:
        self.server.track(self.request, True)
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.settimeout(10)
                self.request.do_handshake()
                self.request.settimeout(None)
            except OSError:
                self.server.track(self.request, False)
                raise
        super().setup()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.track(self.request, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._body(),
        )
        record = RequestRecord(req.method, req.path, req.query, req.headers, req.body, time.time())
        self.server.request_log.add(record)
        try:
            if self.server.faults.latency_s > 0:
                time.sleep(self.server.faults.latency_s)
            fault = self.server.faults.take(req.method, req.path)
            if fault is not None and fault.status is None:
                record.fault = True
                self._drop()
                return
            if fault is not None:
                record.fault = True
                response, user = Response.error(fault.error()), None
            else:
                response, user = self._answer(req)
            record.status, record.user = response.code, user.name if user else None
            self._send(response)
        finally:
            record.done.set()

    def _answer(self, req: Request) -> tuple[Response, Any]:
        try:
            return self.server.api.handle(req)
        except Exception as exc:  # a bug in the emulator: say so as the API server would
            traceback.print_exc()
            return Response.error(errors.internal_error(f"kubeemu: {exc!r}")), None

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        self.send_response(response.code)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.stream is None:
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if response.body:
                self._chunk(response.body)
            for piece in response.stream:
                self._chunk(piece)
            self.wfile.write(b"0\r\n\r\n")
        except errors.ApiError as err:  # raised before the stream's first event
            self._chunk(Response.error(err).body)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
