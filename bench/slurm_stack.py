"""What bench/slurm.py runs against: one private Slurm, and per section a fresh Redis and
worker, stopped by PID; plus the instruments read from outside the gateway.

- `CallLog`: squeue and scancel on the worker's PATH are small shell wrappers that log
  each call (start, end, exit code, whether it named ids) before passing it on, so the
  bench counts and times the worker's scheduler calls without touching jobgate.
- `busy_cpu_s`: the whole machine's busy CPU time (psutil), for CPU per job.
- `tree_rss_bytes`: a worker's resident memory, main process and pool children.
- `poll_steps`: the duration of each ``jobgate.poll`` task, from Celery's own
  "Task ... succeeded in Xs" log lines in the worker's log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import devstack  # noqa: E402

from jobgate.client import Gateway, JobStatus  # noqa: E402

WRAPPED = ("squeue", "scancel")
WRAPPER = """#!/bin/sh
# Written by bench/slurm.py: log this call of {name}, then run the real one.
began=$(date +%s.%N)
case " $* " in *" -j "*|*" --jobs"*) kind=ids ;; *" --name"*) kind=names ;; *) kind=all ;; esac
{real} "$@"
rc=$?
echo "{name} $began $(date +%s.%N) $rc $kind $#" >> {log}
exit $rc
"""


@dataclass(frozen=True)
class Call:
    """One logged run of a wrapped Slurm command."""

    command: str
    began: float
    ended: float
    exit_code: int
    kind: str  # ids (-j), names (--name) or all
    argc: int

    @property
    def seconds(self) -> float:
        return self.ended - self.began


class CallLog:
    """Wrappers for squeue and scancel in `directory`, logging to one file."""

    def __init__(self, directory: Path) -> None:
        self.bin = directory / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.path = directory / "calls.log"
        self.path.touch()
        for name in WRAPPED:
            real = shutil.which(name)
            if real is None:
                raise RuntimeError(f"{name} is not installed (apt-get install -y slurm-wlm)")
            wrapper = self.bin / name
            wrapper.write_text(WRAPPER.format(name=name, real=real, log=self.path))
            wrapper.chmod(0o755)

    def calls(self, since: float = 0.0, until: float = float("inf")) -> list[Call]:
        """Calls that began within [since, until] (time.time())."""
        calls = []
        for line in self.path.read_text().splitlines():
            name, began, ended, code, kind, argc = line.split()
            call = Call(name, float(began), float(ended), int(code), kind, int(argc))
            if since <= call.began <= until:
                calls.append(call)
        return calls


@dataclass(frozen=True)
class PollStep:
    """One ``jobgate.poll`` task as Celery logged it: when it ended, how long it ran."""

    ended: float
    seconds: float
    outcome: str

    @property
    def began(self) -> float:
        return self.ended - self.seconds


POLL_LINE = re.compile(
    r"^\[(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/[^\]]+\] "
    r"Task jobgate\.poll\[[^\]]+\] succeeded in (?P<s>[0-9.e-]+)s: '?(?P<outcome>\w+)"
)


def poll_steps(worker_log: str, since: float = 0.0) -> list[PollStep]:
    """The worker's poll tasks that ended after `since` (time.time())."""
    steps = []
    for line in worker_log.splitlines():
        match = POLL_LINE.match(line)
        if match is None:
            continue
        ended = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if ended >= since:
            steps.append(PollStep(ended, float(match["s"]), match["outcome"]))
    return steps


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy since boot (all but idle and iowait)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def trees_cpu_s(pids: list[int]) -> float:
    """CPU seconds of these processes and their live descendants, each counted once, with
    every child they reaped."""
    seen: dict[int, psutil.Process] = {}
    for pid in pids:
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            seen.setdefault(process.pid, process)
    total = 0.0
    for process in seen.values():
        try:
            t = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def exit_on_signals() -> None:
    """SIGTERM and SIGINT end the bench through its finally blocks, which stop what it
    started (a library may have put its own handlers in place)."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)


class Bench:
    """The private Slurm, the call log, and where each section's services log."""

    def __init__(self, keep: bool = False) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="jobgate-bench-slurm-"))
        self.slurm_dir = self.tmp / "slurm"
        self.keep = keep
        self.calls = CallLog(self.tmp / "calls")
        self.env = {**os.environ, "SLURM_CONF": str(self.slurm_dir / "slurm.conf")}
        self.script = self.tmp / "true.sh"
        self.script.write_text("#!/bin/sh\ntrue\n")
        #: Whether slurmrestd is installed: start() then runs it beside the cluster.
        self.rest = shutil.which("slurmrestd") is not None

    def slurm_local(self, *args: str) -> None:
        argv = [str(ROOT / "scripts" / "slurm-local"), "--dir", str(self.slurm_dir), *args]
        subprocess.run(argv, check=True, capture_output=True, text=True, timeout=300)

    def start(self) -> Bench:
        """The private Slurm, with slurmrestd where it is installed (the submit section's
        third gateway variant)."""
        self.slurm_local("start", *(["--rest"] if self.rest else []))
        return self

    @property
    def rest_socket(self) -> Path:
        return self.slurm_dir / "slurmrestd.socket"

    def stop(self) -> None:
        self.slurm_local("stop", "--cancel-jobs")
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def daemon_pids(self) -> list[int]:
        """munged, slurmctld and slurmd, as scripts/slurm-local recorded them."""
        records = sorted((self.slurm_dir / "started").glob("*.json"))
        return [int(json.loads(r.read_text())["pid"]) for r in records]

    def slurm(self, *argv: str, timeout_s: float = 120) -> str:
        """Run a Slurm command (the real one, not the logged wrapper); its stdout."""
        done = subprocess.run(
            argv, env=self.env, check=True, capture_output=True, text=True, timeout=timeout_s
        )
        return done.stdout

    def active_slurm_jobs(self) -> list[str]:
        return self.slurm("squeue", "-h", "-t", "PD,R,CG,S", "-o", "%i").split()

    def drain(self, timeout_s: float = 1800) -> None:
        """Until Slurm has no pending, running or completing job."""
        devstack.wait_until(
            lambda: not self.active_slurm_jobs(),
            timeout_s,
            "Slurm's queue to drain",
            interval_s=0.2,
        )

    def cancel_everything(self) -> None:
        """Cancel every job of the private cluster (one scancel) and wait until none is left."""
        if self.active_slurm_jobs():
            self.slurm("scancel", "--partition", "debug")
        self.drain()

    def profile(self, name: str, backend: str, **settings: Any) -> Path:
        """A profile file for cluster `name` in the bench's directory."""
        document: dict[str, Any] = {
            "name": name,
            "backend": backend,
            "policy": {"warn_missing_walltime": False},
        }
        if backend == "slurm":
            document["slurm"] = {
                "partition": "debug",
                "work_dir": str(self.tmp / "jobs" / name),
                "accounting": "jobcomp",
                **settings.pop("slurm", {}),
            }
        else:
            document["local"] = {
                "work_dir": str(self.tmp / "jobs" / name),
                **settings.pop("local", {}),
            }
        document.update(settings)
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document))
        return path

    @contextmanager
    def gateway(
        self,
        section: str,
        profiles: list[Path],
        concurrency: int,
        redis_config: Path | None = None,
    ) -> Iterator[Services]:
        """A fresh redis-server (loading `redis_config`, if given) and one worker serving
        `profiles`; both stopped on exit."""
        logs = self.tmp / "logs" / section
        redis = devstack.RedisServer(logs, config=redis_config).start()
        worker = None
        try:
            path = f"{self.calls.bin}{os.pathsep}{os.environ.get('PATH', '')}"
            worker = devstack.Worker(
                logs,
                redis.url,
                [str(p) for p in profiles],
                env={"SLURM_CONF": self.env["SLURM_CONF"], "PATH": path},
                concurrency=concurrency,
            ).start()
            with Gateway(redis.url) as gw:
                exit_on_signals()
                yield Services(gw, redis, worker)
        finally:
            if worker is not None:
                worker.stop()
            redis.stop()


@dataclass
class Services:
    """One section's gateway client, Redis and worker."""

    gw: Gateway
    redis: devstack.RedisServer
    worker: devstack.Worker

    def stack_cpu_s(self, bench: Bench) -> float:
        """CPU seconds so far of every process a submit involves: this one (the client,
        and the sbatch or PSI/J it ran), the worker's, Redis and the Slurm daemons.
        Unlike the machine's busy time, other users' load on the machine is left out."""
        pids = [os.getpid(), self.worker.pid, self.redis.pid, *bench.daemon_pids()]
        return trees_cpu_s(pids)

    def wait_active(self, cluster: str, count: int, timeout_s: float = 3600) -> None:
        """Until `count` jobs of `cluster` have their scheduler id (and are unfinished)."""
        client = self.redis.client()
        key = self.gw.keys.active(cluster)
        devstack.wait_until(
            lambda: client.hlen(key) >= count,
            timeout_s,
            f"{count} active jobs on {cluster}",
            interval_s=0.05,
        )

    def wait_fields(
        self,
        job_ids: list[str],
        field: str,
        done: Callable[[str | None], bool],
        what: str,
        timeout_s: float = 3600,
    ) -> None:
        """Until `done(value)` holds for one field of each job's record hash (read with
        pipelined HGETs: decoding whole records would load the machine it measures)."""
        client = self.redis.client()
        deadline = time.monotonic() + timeout_s
        pending = list(job_ids)
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} jobs not {what} within {timeout_s} s")
            pipe = client.pipeline(transaction=False)
            for job_id in pending:
                pipe.hget(self.gw.keys.job(job_id), field)
            pending = [j for j, v in zip(pending, pipe.execute(), strict=True) if not done(v)]
            if pending:
                time.sleep(0.02)

    def wait_submitted(self, job_ids: list[str], timeout_s: float = 3600) -> None:
        """Until each of these jobs has its scheduler id."""
        self.wait_fields(job_ids, "backend_id", bool, "submitted", timeout_s)

    def wait_status(self, job_ids: list[str], status: JobStatus, timeout_s: float = 3600) -> None:
        """Until each of these jobs is in `status`."""
        self.wait_fields(job_ids, "status", lambda v: v == status.value, status.value, timeout_s)

    def wait_finished(self, job_ids: list[str], timeout_s: float = 3600) -> None:
        """Until each of these jobs is finished, whichever way."""
        finished = {s.value for s in JobStatus if s.is_finished}
        self.wait_fields(job_ids, "status", lambda v: v in finished, "finished", timeout_s)

    def wait_settled(self, cluster: str, timeout_s: float = 600) -> None:
        """Until the worker has seen every job of `cluster` finish and stored its result."""
        client = self.redis.client()
        active, pending = self.gw.keys.active(cluster), self.gw.keys.finalize_pending
        devstack.wait_until(
            lambda: not client.hlen(active) and not client.zcard(pending),
            timeout_s,
            f"the worker to settle {cluster}'s jobs",
            interval_s=0.1,
        )

    def polls_done(self, cluster: str) -> int:
        stats = self.gw.store.query_stats(cluster)
        return int(stats.get("polls_continued", 0) + stats.get("polls_ended", 0))

    def wait_polls(self, cluster: str, steps: int, timeout_s: float = 600) -> None:
        """Until `steps` more poll steps of `cluster` have ended."""
        target = self.polls_done(cluster) + steps
        devstack.wait_until(
            lambda: self.polls_done(cluster) >= target,
            timeout_s,
            f"{steps} poll steps of {cluster}",
            interval_s=0.2,
        )


def wait_until(check: Any, timeout_s: float, what: str, interval_s: float = 0.05) -> float:
    """devstack.wait_until, returning the time.perf_counter() the check came true."""
    devstack.wait_until(check, timeout_s, what, interval_s=interval_s)
    return time.perf_counter()
