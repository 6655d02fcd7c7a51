"""Redis behind Sentinel: the client, the `jobgate` command, workers and Flower all take a
``sentinel://`` URL; when the primary is killed the sentinels promote its replica and
everyone follows it, nothing whose submit returned is lost, no job runs twice, the chain
resumes. Replication is asynchronous: what the old primary acknowledged but had not sent
to the replica yet is gone, and the probe here counts how much that was.

Measured figures are printed as ``FIGURE`` lines (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobgate.client import (
    BrokerUnavailableError,
    ConfigurationError,
    Gateway,
    JobNotFoundError,
    JobSpec,
    JobStatus,
)
from scripts import devstack
from tests.support.cli import JOBGATE, jobgate
from tests.support.crowd import GatedCrowd
from tests.support.local import LocalHarness
from tests.support.records import statuses
from tests.support.waiting import TIMEOUT_S, gated, wait_for
from tests.support.worker_logs import log_times, reconnect_s
from tests.support.workers import ProfileFactory, WorkerFactory

JOBS = 100


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[devstack.SentinelSet]:
    """A primary, its replica and three sentinels (failover after 1 s without an answer)."""
    servers = devstack.SentinelSet(tmp_path / "sentinel-set").start()
    yield servers
    servers.stop()


@pytest.fixture
def redis_url(sentinel_set: devstack.SentinelSet) -> str:
    """The gateway, the workers and the harnesses reach Redis through the sentinels."""
    return sentinel_set.url


GOOD = "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (GOOD, "the master's name is missing (add ?master_name=NAME"),
        (f"{GOOD}?master_name=", "the master's name is missing"),
        ("sentinel://127.0.0.1:26379?master_name=m;sentinel://127.0.0.1:26380",
         "?master_name= goes after the last address only"),
        ("sentinel://127.0.0.1:26379;redis://127.0.0.1:6379?master_name=m",
         "address 2 (127.0.0.1) must start with sentinel://"),
        ("sentinel://127.0.0.1?master_name=m", "needs a host and a port"),
        ("sentinel://:pw@127.0.0.1:x?master_name=m", "address 1 (127.0.0.1) has a port that"),
        ("sentinel://127.0.0.1:26379;sentinel://:pw@127.0.0.1:26380?master_name=m",
         "the password and database go on the first address only"),
        ("sentinel://127.0.0.1:26379/zero?master_name=m", "the database 'zero' must be a number"),
        (f"{GOOD}?master_name=m&db=1", "unknown parameter 'db'"),
        (f"{GOOD}?master_name=a b", "master_name must be one name"),
    ],
)  # fmt: skip
def test_a_malformed_sentinel_url_is_refused_saying_what_to_fix(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Gateway(url)
    assert problem in str(info.value)
    assert "the form is sentinel://[:password@]host:port" in str(info.value)


def test_a_refused_sentinel_url_keeps_its_password_out_of_the_message() -> None:
    url = "sentinel://:s3cr3t@127.0.0.1:26379;sentinel://127.0.0.1:26380"
    cli = subprocess.run(
        [JOBGATE, "--url", url, "list"],
        env={k: v for k, v in os.environ.items() if k != "JOBGATE_URL"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 1
    assert "the master's name is missing" in cli.stderr
    assert "sentinel://:***@127.0.0.1:26379;sentinel://127.0.0.1:26380" in cli.stderr
    assert "s3cr3t" not in cli.stderr


def test_the_command_the_worker_and_flower_work_through_the_sentinels(
    gateway: Gateway,
    sentinel_set: devstack.SentinelSet,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    assert gateway.url.startswith("sentinel://")
    flower = devstack.Flower(
        tmp_path / "flower", gateway.url, tenant=gateway.tenant, basic_auth="ops:pw"
    ).start()
    try:
        worker = start_worker(make_profile())
        job_id = jobgate(gateway, "submit", "local", "--", "echo via sentinel").stdout.strip()
        out = jobgate(gateway, "wait", job_id, "--timeout", str(TIMEOUT_S)).stdout
        assert '"SUCCEEDED"' in out
        assert jobgate(gateway, "logs", job_id).stdout == "via sentinel\n"
        # every byte went to the primary the sentinels name, none to another Redis
        primary = sentinel_set.primary().client()
        assert primary.keys(f"{gateway.keys.prefix}*")
        workers = wait_for(lambda: flower.get_json("/api/workers?refresh=1"),
                           what="Flower to see the worker")  # fmt: skip
        assert worker.hostname in workers
        queues = flower.get_json("/api/queues/length")  # Flower's own broker client
        assert "active_queues" in queues
    finally:
        flower.stop()


class _Probe:
    """Writes numbered entries to a list on the primary, as fast as it acknowledges them,
    until it is gone: the acknowledged ones that the promoted replica lacks are what
    asynchronous replication lost."""

    key = "fault-probe"

    def __init__(self, primary: devstack.RedisServer) -> None:
        self.client = primary.client()
        self.acknowledged = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        while not self.stopped.is_set() and self.acknowledged < 1_000_000:
            try:
                self.client.rpush(self.key, self.acknowledged + 1)
            except redis.RedisError:
                return  # the primary is gone: it acknowledged `acknowledged` writes
            self.acknowledged += 1

    def __enter__(self) -> _Probe:
        self.thread.start()
        wait_for(lambda: self.acknowledged > 100, what="the probe to write")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)


def _answers(gateway: Gateway, job_id: str) -> bool:
    """Whether the gateway reads a record (the promoted replica, once it can)."""
    try:
        return gateway.store.get(job_id).id == job_id
    except BrokerUnavailableError:
        return False


@pytest.mark.timeout(300)
def test_a_failover_under_a_hundred_running_jobs_loses_and_repeats_nothing(
    local_backend: LocalHarness, sentinel_set: devstack.SentinelSet, tmp_path: Path
) -> None:
    backend = local_backend
    worker = backend.start(concurrency=4, **backend.crowd_settings)
    gateway, crowd = backend.gateway, GatedCrowd(backend, tmp_path, JOBS)
    crowd.wait_on_scheduler()
    queries_before = gateway.scheduler_queries(backend.cluster)

    old = sentinel_set.primary()
    with _Probe(old) as probe:
        primary_offset = int(old.client().info("replication")["master_repl_offset"])
        killed = time.monotonic()
        old.kill()
        probe.thread.join(timeout=30)
    wait_for(lambda: _answers(gateway, crowd.ids[0]), timeout_s=60,
             what="the client to reconnect")  # fmt: skip
    client_back_s = time.monotonic() - killed
    new = sentinel_set.wait_failover(old)
    promoted_s = time.monotonic() - killed  # at most: the client came first
    crowd.release()

    crowd.assert_each_ran_once()
    assert worker.running()  # the same worker, never restarted
    assert gateway.scheduler_queries(backend.cluster) > queries_before  # the chain resumed
    assert new is not old
    assert new.client().info("replication")["role"] == "master"
    kept = new.client().llen(_Probe.key)
    # The write in flight at the kill may have been applied and replicated, unanswered.
    assert kept <= probe.acknowledged + 1
    print(f"FIGURE sentinel-failover local: {JOBS} jobs, 0 lost, 0 duplicated; replica "
          f"promoted within {promoted_s:.1f} s of SIGKILL of the primary (down-after 1 s); worker "
          f"reconnected in {reconnect_s(worker):.1f} s; the client read records again "
          f"{client_back_s:.1f} s after the SIGKILL")  # fmt: skip
    lost_bytes = max(0, primary_offset - _promoted_at(new))  # the offset was read first
    print(f"FIGURE sentinel-failover async-replication window: "
          f"{max(0, probe.acknowledged - kept)} of "
          f"{probe.acknowledged} acknowledged probe writes missing on the promoted replica; "
          f"{lost_bytes} bytes of replication stream lost")  # fmt: skip


def test_the_worker_keeps_jobgates_transport_when_kombu_moves_to_the_next_sentinel() -> None:
    """On a connection failure kombu moves to the URL's next address and takes the
    transport from that address's scheme: the worker's app must still resolve it to
    jobgate's transport (workers/broker.py), whichever address it is on."""
    moves = (
        "from jobgate.workers.app import app\n"
        "connection = app.connection_for_read()\n"
        "for _ in range(4):\n"
        "    transport = type(connection.transport)\n"
        "    print(transport.__qualname__, transport.__module__)\n"
        "    connection.maybe_switch_next()\n"
    )
    env = {**os.environ, "JOBGATE_URL": f"{GOOD};sentinel://127.0.0.1:26381?master_name=m"}
    out = subprocess.run([sys.executable, "-c", moves], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout  # fmt: skip
    assert out.splitlines() == ["SentinelTransport jobgate.workers.broker"] * 4


@pytest.mark.timeout(300)
def test_a_worker_holding_countdown_tasks_survives_failover_after_failover(
    local_backend: LocalHarness, sentinel_set: devstack.SentinelSet, tmp_path: Path
) -> None:
    """After a failover kombu switches to the next sentinel address and takes the
    transport from its URL scheme: the worker must keep jobgate's transport then, or the
    next failover ends it (AttributeError 'hostname', workers/broker.py)."""
    backend = local_backend
    worker = backend.start()
    gate = tmp_path / "go"
    jobs = [backend.submit_named(f"j{i}", gated(f"echo {i}", gate)) for i in range(4)]
    wait_for(lambda: all(j.status() is JobStatus.RUNNING for j in jobs), timeout_s=TIMEOUT_S,
             what="the jobs running")  # fmt: skip
    for failover in (1, 2):
        old = sentinel_set.primary()
        old.kill()
        sentinel_set.wait_failover(old)
        wait_for(lambda n=failover: len(log_times(worker.log_text(), "Connected to ")) > n,
                 timeout_s=60, what=f"the worker back after failover {failover}")  # fmt: skip
        assert worker.running(), worker.log_text()[-3000:]
        if failover == 1:
            sentinel_set.rejoin(old)
    gate.touch()
    for i, job in enumerate(jobs):
        record = job.wait(timeout_s=120)
        assert record.status is JobStatus.SUCCEEDED, record
        assert "".join(job.logs()) == f"{i}\n"
    assert worker.running(), worker.log_text()[-3000:]
    assert "Unrecoverable error" not in worker.log_text()


def _promoted_at(new: devstack.RedisServer) -> int:
    """How much of the old primary's replication stream (its offset) the promoted
    replica had: it records the offset it was promoted at as second_repl_offset - 1."""
    return int(new.client().info("replication")["second_repl_offset"]) - 1


#: More than loopback TCP can hold in flight (send buffer up to 4 MiB, receive buffer up to
#: 32 MiB here): written while the replica is stopped, everything after it stays in the
#: primary's own output buffer. Under the primary's replica output limit (64 MiB soft).
FILLER_BYTES = 48 * 1024 * 1024


class _LaggingReplica:
    """The asynchronous-replication window made wide on purpose: once the replica has
    caught up, it is stopped (SIGSTOP) and a write larger than the socket buffers makes
    sure nothing written after it reaches the replica. On leaving, the primary is killed
    (SIGKILL), the replica goes on (SIGCONT) and the sentinels promote it."""

    def __init__(self, servers: devstack.SentinelSet) -> None:
        self.servers = servers
        self.old = servers.primary()
        (self.replica,) = [s for s in servers.servers if s is not self.old]
        self.primary_offset = 0
        self.lost_bytes = 0

    def _offset(self) -> int:
        return int(self.old.client().info("replication")["master_repl_offset"])

    def __enter__(self) -> _LaggingReplica:
        replica = self.replica.client()
        wait_for(lambda: int(replica.info("replication")["slave_repl_offset"]) >= self._offset(),
                 what="the replica to catch up")  # fmt: skip
        os.kill(self.replica.pid, signal.SIGSTOP)
        self.old.client().set("filler", "x" * FILLER_BYTES)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.primary_offset = self._offset()
            self.old.kill()
        finally:
            os.kill(self.replica.pid, signal.SIGCONT)
        new = self.servers.wait_failover(self.old)
        self.lost_bytes = self.primary_offset - _promoted_at(new)
        assert not new.client().exists("filler")  # so nothing written after it either


def test_a_job_submitted_and_run_only_on_the_old_primary_is_unknown_after_failover(
    local_backend: LocalHarness, sentinel_set: devstack.SentinelSet, tmp_path: Path
) -> None:
    """What asynchronous replication can lose: everything the old primary acknowledged
    and the replica never had, here a whole job, submitted and run to its end."""
    backend = local_backend
    backend.start()
    runs = tmp_path / "runs"
    with _LaggingReplica(sentinel_set) as window:
        job = backend.submit(JobSpec(name="window", command=f'echo "$JOBGATE_JOB_ID" >> {runs}'))
        assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED

    with pytest.raises(JobNotFoundError, match=f"no job {job.id}"):
        job.record()
    after = backend.submit(JobSpec(name="after", command="echo after"))
    assert after.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert runs.read_text().split() == [job.id]  # it ran once, and nothing ran it again
    print(f"FIGURE sentinel-failover lagging replica: a job submitted and finished in the "
          f"window is unknown after the failover (JobNotFoundError), ran once; "
          f"{window.lost_bytes} bytes of replication stream lost")  # fmt: skip


def test_a_job_end_recorded_only_on_the_old_primary_is_seen_again_on_the_scheduler(
    local_backend: LocalHarness, sentinel_set: devstack.SentinelSet, tmp_path: Path
) -> None:
    """A job recorded RUNNING on both, whose end only the old primary heard of: the
    promoted replica says RUNNING, polling (or reconcile's new chain) asks the scheduler
    again and records the end once."""
    backend = local_backend
    backend.start()
    gate, runs = tmp_path / "go", tmp_path / "runs"
    job = backend.submit_named("ends", gated(f'echo "$JOBGATE_JOB_ID" >> {runs}; echo done', gate))
    wait_for(lambda: job.status() is JobStatus.RUNNING, timeout_s=TIMEOUT_S,
             what="the job running")  # fmt: skip
    with _LaggingReplica(sentinel_set) as window:
        gate.touch()
        assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED

    record = job.wait(timeout_s=TIMEOUT_S)  # on the promoted replica
    assert record.status is JobStatus.SUCCEEDED
    assert statuses(record).count(JobStatus.SUCCEEDED) == 1
    assert "".join(job.logs()) == "done\n"
    assert runs.read_text().split() == [job.id]
    print(f"FIGURE sentinel-failover lagging replica: a job end lost with "
          f"{window.lost_bytes} bytes of replication stream is recorded again from the "
          f"scheduler")  # fmt: skip
