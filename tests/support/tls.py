"""A throwaway certificate authority and redis-server serving TLS only, for the TLS tests.

Certificates are made with the openssl CLI (the `cryptography` package is not a
dependency): a CA, server certificates for chosen names, a client certificate for mutual
TLS, and an expired one (issued under `faketime`, a month in the past). The server
listens on a TLS port alone (``--port 0``), so a test that reaches it at all reached it
over TLS.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from scripts import devstack


def needs_openssl() -> None:
    """Skip the calling test when the openssl CLI (or faketime, for expired certificates)
    is missing, except in CI (CI=true), where that is a failure: both come with the
    system dependencies (scripts/system-deps, .ci/run)."""
    for program in ("openssl", "faketime"):
        if shutil.which(program) is None:
            why = f"no {program} to make test certificates"
            if os.environ.get("CI") == "true":
                pytest.fail(why)
            pytest.skip(why)


def _openssl(*args: str, backdate: bool = False) -> None:
    argv = ["openssl", *args]
    if backdate:  # issued 40 days ago for 1 day: expired since 39 days
        argv = ["faketime", "-f", "-40d", *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


class Authority:
    """A private CA in `directory` that issues server and client certificates."""

    def __init__(self, directory: Path, name: str = "jobgate-test-ca") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pair = Pair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(self.pair.key), "-out", str(self.pair.cert),
        )  # fmt: skip

    @property
    def cert(self) -> Path:
        return self.pair.cert

    def issue(
        self,
        name: str,
        *,
        dns: tuple[str, ...] = ("localhost",),
        ips: tuple[str, ...] = ("127.0.0.1",),
        client: bool = False,
        expired: bool = False,
    ) -> Pair:
        """A certificate for CN=`name` with those subject alternative names, for a server
        (or, with `client`, for a client of mutual TLS)."""
        pair = Pair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        request = self.directory / f"{name}.csr"
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-subj", f"/CN={name}", "-keyout", str(pair.key), "-out", str(request),
        )  # fmt: skip
        names = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        extensions = self.directory / f"{name}.ext"
        extensions.write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
            + (f"subjectAltName={','.join(names)}\n" if names else "")
        )
        _openssl(
            "x509", "-req", "-in", str(request), "-CA", str(self.pair.cert),
            "-CAkey", str(self.pair.key), "-set_serial", str(secrets.randbits(63)),
            "-days", "1" if expired else "2", "-extfile", str(extensions),
            "-out", str(pair.cert), backdate=expired,
        )  # fmt: skip
        return pair


class TlsRedisServer(devstack.RedisServer):
    """redis-server on a free loopback port speaking TLS only, presenting `server`
    (issued by `authority`); with `client_auth` it demands a client certificate signed
    by `authority` (mutual TLS). `url` is ``rediss://127.0.0.1:PORT/0``."""

    name = "redis-tls"

    def __init__(
        self,
        log_dir: Path,
        authority: Authority,
        server: Pair,
        *,
        client_auth: bool = False,
        probe_client: Pair | None = None,
    ) -> None:
        super().__init__(log_dir)
        self.authority = authority
        self.server = server
        self.client_auth = client_auth
        #: what the readiness probe presents to a server with `client_auth`
        self.probe_client = probe_client

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A redis-py client for the tests' own look-ups; it trusts the test CA."""
        extra = (
            {"ssl_certfile": str(self.probe_client.cert), "ssl_keyfile": str(self.probe_client.key)}
            if self.probe_client
            else {}
        )
        return redis.Redis(
            port=self.port, ssl=True, ssl_ca_certs=str(self.authority.cert),
            decode_responses=True, socket_timeout=5, **extra,
        )  # fmt: skip

    def _listen_args(self) -> list[str]:
        return [
            "--port", "0", "--tls-port", str(self.port),
            "--tls-cert-file", str(self.server.cert), "--tls-key-file", str(self.server.key),
            "--tls-ca-cert-file", str(self.authority.cert),
            "--tls-auth-clients", "yes" if self.client_auth else "no",
        ]  # fmt: skip

    def _pong(self) -> bool:
        if not self.running():
            raise RuntimeError(f"{self.program} exited; see {self.log_path}")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # up, not trusted: may be expired
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if self.probe_client:
            context.load_cert_chain(self.probe_client.cert, self.probe_client.key)
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw,
                context.wrap_socket(raw) as s,
            ):
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except (OSError, ssl.SSLError):
            return False


class TlsSentinel(TlsRedisServer):
    """redis-sentinel speaking TLS only, monitoring `master` (a TlsRedisServer, reached
    over TLS: ``tls-replication yes``) as `master_name`, with a quorum of one."""

    name = "sentinel-tls"
    program = "redis-sentinel"

    def __init__(
        self, log_dir: Path, authority: Authority, server: Pair, master: TlsRedisServer,
        master_name: str = "jobgate",
    ) -> None:  # fmt: skip
        super().__init__(log_dir, authority, server)
        self.master_name = master_name
        self.config = self.log_dir / "sentinel.conf"  # redis-sentinel rewrites it
        self.config.write_text(
            f"sentinel monitor {master_name} 127.0.0.1 {master.port} 1\ntls-replication yes\n"
        )

    @property
    def url(self) -> str:
        """jobgate's sentinel URL for it (TLS comes from the JOBGATE_TLS_* variables)."""
        return f"sentinel://127.0.0.1:{self.port}?master_name={self.master_name}"


class JobgateFlower(devstack.Flower):
    """Flower started the way an operator starts it: ``jobgate flower``, which hands it
    the workers' broker settings (TLS included, from the environment of the test)."""

    def start(self, timeout_s: float = 60.0) -> JobgateFlower:
        env = dict(os.environ)
        if self.basic_auth:
            env["FLOWER_BASIC_AUTH"] = self.basic_auth
        argv = [str(devstack.BIN / "jobgate"), "flower", "--url", self.url]
        argv += ["--tenant", self.tenant, "--port", str(self.port)]
        self._spawn(argv, env=env)
        devstack.wait_until(self._healthy, timeout_s, f"Flower on port {self.port}", 0.2)
        return self


class CeleryWorker(devstack.Service):
    """A worker started as ``celery -A jobgate.workers.app worker``, past the check that
    ``jobgate worker`` makes first: its own connections are on their own."""

    name = "celery-worker"

    def start(self, env: dict[str, str]) -> CeleryWorker:
        argv = [sys.executable, "-m", "celery", "-A", "jobgate.workers.app", "worker"]
        argv += ["--concurrency=1", "--without-mingle", "--without-gossip", "--loglevel=info"]
        self._spawn(argv, env={**os.environ, **env})
        return self
