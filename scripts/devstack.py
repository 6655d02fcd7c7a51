"""Local services for the demo, the tests and the benchmarks: Redis, workers, Flower.

Each starts on a free 127.0.0.1 port, as a child process whose PID we hold, logs
to a file in a directory of the caller's choosing, and is stopped by that PID.
Nothing here touches a Redis or Flower the machine already runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery import Celery

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: object, timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    """Poll `check()` until it is true; RuntimeError naming `what` after `timeout_s`."""
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


class Service:
    """A child process started in its own session, stopped by PID (and its group)."""

    name = "service"

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def _spawn(self, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM; then SIGKILL to whatever is left of its process group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout_s)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process and everything in its group at once (as in a crash)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RedisServer(Service):
    """redis-server on a free loopback port, keeping nothing on disk unless `config`
    (a redis.conf to load first) says so; port, bind and dir are always ours."""

    name = "redis"

    def __init__(self, log_dir: Path, port: int | None = None, config: Path | None = None) -> None:
        super().__init__(log_dir)
        self.port = port or free_port()
        self.config = config

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        argv = (
            [server, str(self.config)]
            if self.config
            else [server, "--save", "", "--appendonly", "no"]
        )
        argv += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.log_dir)]
        self._spawn(argv)
        wait_until(self._pong, timeout_s, f"redis-server on port {self.port}")
        return self

    def restart(self, *, crash: bool = False, down_s: float = 0.0) -> RedisServer:
        """Stop (SIGTERM, so it persists what its config says; with `crash`, SIGKILL) and
        start again on the same port and directory, after `down_s` seconds down."""
        if crash:
            self.kill()
        else:
            self.stop()
        if down_s:
            time.sleep(down_s)
        return self.start()

    def _pong(self) -> bool:
        if not self.running():
            raise RuntimeError(f"redis-server exited; see {self.log_path}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class Worker(Service):
    """``jobgate worker`` for some profiles, as a subprocess."""

    def __init__(
        self,
        log_dir: Path,
        url: str,
        profiles: list[str],
        *,
        tenant: str = "default",
        name: str = "worker",
        concurrency: int = 2,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(log_dir)
        self.name = name
        self.url = url
        self.profiles = profiles
        self.tenant = tenant
        self.concurrency = concurrency
        self.env = dict(env or {})
        self.hostname = f"{name}-{os.getpid()}-{free_port()}@127.0.0.1"

    def start(self, timeout_s: float = 60.0) -> Worker:
        argv = [
            str(BIN / "jobgate"),
            "worker",
            "--url",
            self.url,
            "--tenant",
            self.tenant,
            "--concurrency",
            str(self.concurrency),
            "--hostname",
            self.hostname,
        ]
        for profile in self.profiles:
            argv += ["--profile", profile]
        self._spawn(argv, env={**os.environ, **self.env})
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Until the worker answers a Celery ping addressed to it."""
        from jobgate.client.celeryconf import make_celery

        app: Celery = make_celery(self.url, self.tenant, main="devstack")
        try:

            def answered() -> bool:
                if not self.running():
                    raise RuntimeError(f"worker exited; see {self.log_path}:\n{self.log_text()}")
                return bool(app.control.ping(destination=[self.hostname], timeout=0.5))

            wait_until(answered, timeout_s, f"worker {self.hostname}", interval_s=0.1)
        finally:
            app.close()


class Flower(Service):
    """Flower for one tenant's workers; with `basic_auth` ("user:password") its API is usable."""

    name = "flower"

    def __init__(
        self,
        log_dir: Path,
        url: str,
        *,
        tenant: str = "default",
        port: int | None = None,
        basic_auth: str | None = None,
    ) -> None:
        super().__init__(log_dir)
        self.url = url
        self.tenant = tenant
        self.port = port or free_port()
        self.basic_auth = basic_auth

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> Flower:
        env = {**os.environ, "JOBGATE_URL": self.url, "JOBGATE_TENANT": self.tenant}
        argv = [sys.executable, "-m", "celery", "-A", "jobgate.workers.app", "flower"]
        argv += ["--address=127.0.0.1", f"--port={self.port}"]
        if self.basic_auth:  # through the environment: argv is visible to every user
            env["FLOWER_BASIC_AUTH"] = self.basic_auth
        self._spawn(argv, env=env)
        wait_until(self._healthy, timeout_s, f"Flower on port {self.port}", interval_s=0.2)
        return self

    def get_json(self, path: str) -> Any:
        """GET an API path (with the basic auth Flower was started with) as JSON."""
        request = urllib.request.Request(f"{self.http_url}{path}")
        if self.basic_auth:
            token = base64.b64encode(self.basic_auth.encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def _healthy(self) -> bool:
        if not self.running():
            raise RuntimeError(f"Flower exited; see {self.log_path}:\n{self.log_text()}")
        try:
            with urllib.request.urlopen(f"{self.http_url}/healthcheck", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False
