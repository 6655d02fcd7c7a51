"""The runner: one detached process per job, doing what sbatchd and mbatchd would.

It waits for the job's dependencies, starts its tasks (at most ``%N`` array
elements at once), samples their memory, enforces -W and -M, carries out bkill's
requests with LSF's signal sequence, and records how each task ended.

Started by bsub as ``python -m lsfemu.runner STATE_DIR JOBID``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import config, depend, faults, procs, report
from .environ import job_environment
from .model import Job, Kill, Task
from .store import Store

#: How often the runner looks at the job (a task that exits wakes it at once).
POLL_S = 0.2
#: How often memory is sampled.
SAMPLE_S = 0.2
#: Pending reason of array elements held back by the %N limit.
ARRAY_LIMIT_REASON = "The job array has reached its job slot limit"

#: Signal sequences, after LSF: bkill and limits send INT, TERM, KILL; -W first USR2.
SEQUENCES: dict[str, list[signal.Signals]] = {
    "TERM_OWNER": [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
    "TERM_MEMLIMIT": [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
    "TERM_RUNLIMIT": [signal.SIGUSR2, signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
}


@dataclass
class Running:
    """A started task: its process and where its output goes."""

    process: subprocess.Popen[bytes]
    outputs: report.Outputs
    started: float
    pidfd: int = -1
    mem_samples: list[int] = field(default_factory=list)
    max_procs: int = 0
    max_threads: int = 0


def _substitute(path: str, job: Job, task: Task) -> str:
    return path.replace("%J", str(job.jobid)).replace("%I", str(task.index))


def _resolve(path: str, base: str) -> str:
    return os.path.normpath(os.path.join(base, path))


class Runner:
    def __init__(self, root: Path, jobid: int) -> None:
        self.root = root
        self.jobid = jobid
        self.store = Store(root)
        self.running: dict[int, Running] = {}
        self.last_sample = 0.0

    # -- dependencies ---------------------------------------------------------------

    def _set_pend_reason(self, reason: str) -> None:
        with self.store.update(self.jobid) as job:
            for task in job.tasks:
                if task.stat == "PEND":
                    task.pend_reason = reason

    def wait_for_dependencies(self) -> bool:
        """Wait until the job may run; False if it never will (or nothing is left to run)."""
        job = self.store.load(self.jobid)
        if job is None:
            return False
        if job.dependency is None:
            return True
        node = depend.parse(job.dependency)
        lookup = depend.job_lookup(self.store, job.user)
        shown = ""
        while self.root.exists():
            job = self.store.load(self.jobid)
            if job is None or not any(t.stat == "PEND" for t in job.tasks):
                return False
            status = depend.evaluate(node, lookup)
            if status is depend.Status.SATISFIED:
                return True
            reason = depend.NEVER_REASON if status is depend.Status.NEVER else depend.WAITING_REASON
            if reason != shown:
                self._set_pend_reason(reason)
                shown = reason
            time.sleep(POLL_S)
        return False

    # -- starting tasks -------------------------------------------------------------

    def _open_outputs(
        self, job: Job, task: Task, cwd: str
    ) -> tuple[report.Outputs, IO[bytes], IO[bytes]]:
        direct = os.environ.get("LSB_STDOUT_DIRECT", "").strip().upper() == "Y"
        spool = self.store.jobs_dir / f"{job.jobid}.{task.index}"
        out_path = report.output_path(job, task, job.output, cwd, ".out")
        err_path = report.output_path(job, task, job.error, cwd, ".err")
        if err_path is not None and err_path == out_path:
            err_path = None
        outputs = report.Outputs(
            out_path, err_path, direct, Path(f"{spool}.out"), Path(f"{spool}.err")
        )
        if direct and out_path is not None:
            stdout = report.open_for(out_path, job.output_overwrite)
        else:
            stdout = outputs.spool_out.open("wb")
        if err_path is None:
            stderr = stdout
        elif direct:
            stderr = report.open_for(err_path, job.error_overwrite)
        else:
            stderr = outputs.spool_err.open("wb")
        return outputs, stdout, stderr

    @staticmethod
    def _not_started(task: Task, now: float, exit_code: int, reason: str = "") -> None:
        """The task could not be started: it ends at once, as LSF ends such jobs."""
        task.stat, task.exit_code, task.term_reason = "EXIT", exit_code, reason
        task.start_time = task.finish_time = now
        task.record(now, "finish", stat="EXIT", exit_code=exit_code, cpu=0.0, reason=reason)

    def _start(self, job: Job, task: Task) -> None:
        now = time.time()
        cwd = _resolve(_substitute(job.cwd, job, task), job.subcwd)
        try:
            os.makedirs(cwd, exist_ok=True)
            outputs, stdout, stderr = self._open_outputs(job, task, cwd)
        except OSError:
            self._not_started(task, now, 1, "TERM_CWD_NOTEXIST")
            return
        out, err = str(outputs.out_path or ""), str(outputs.err_path or "")
        env = job_environment(job, task, cwd, out, err)
        argv = [job.login_shell, "-l", job.script] if job.login_shell else ["/bin/sh", job.script]
        stdin_path = _resolve(_substitute(job.input, job, task), cwd) if job.input else os.devnull
        try:
            with open(stdin_path, "rb") as stdin:
                process = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=stdin,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError:  # no such login shell, or input file
            self._not_started(task, now, 127)
            return
        finally:
            for handle in {stdout, stderr}:
                handle.close()
        task.stat = "RUN"
        task.pid = process.pid
        task.pend_reason = ""
        task.start_time = now
        task.record(now, "start", pid=process.pid, cwd=cwd, home=env.get("HOME", ""))
        try:
            pidfd = os.pidfd_open(process.pid)
        except OSError:  # an old kernel: the runner just polls
            pidfd = -1
        self.running[task.index] = Running(process, outputs, now, pidfd)

    def _forget(self, index: int) -> None:
        running = self.running.pop(index)
        if running.pidfd >= 0:
            os.close(running.pidfd)

    # -- watching running tasks -----------------------------------------------------

    def _request_kill(self, task: Task, reason: str, now: float) -> None:
        if task.kill is None:
            task.kill = Kill(reason=reason, requested=now)

    def _signal(self, task: Task, now: float) -> None:
        """Send the next signal of the kill sequence, when it is due."""
        kill = task.kill
        if kill is None:
            return
        sequence = SEQUENCES.get(kill.reason, SEQUENCES["TERM_OWNER"])
        sent = len(kill.signals)
        if sent >= len(sequence):
            return
        if sent == 0:
            due = kill.requested
        elif kill.reason == "TERM_RUNLIMIT" and sent == 1:
            due = kill.last_signal_time + 10 * config.minute_s()  # ten minutes' grace
        else:
            due = kill.last_signal_time + config.terminate_interval_s()
        if now < due:
            return
        signum = sequence[sent]
        procs.signal_task(task.pid, signum)
        kill.signals.append(signum.name)
        kill.last_signal_time = now

    def _sample(self, job: Job, task: Task, running: Running, now: float) -> None:
        rss_kb, cpu_s, nprocs, nthreads = procs.usage(task.pid)
        if nprocs == 0:
            return
        task.mem_kb = rss_kb
        task.max_mem_kb = max(task.max_mem_kb, rss_kb)
        task.cpu_time = max(task.cpu_time, cpu_s)
        running.mem_samples.append(rss_kb)
        running.max_procs = max(running.max_procs, nprocs)
        running.max_threads = max(running.max_threads, nthreads)
        if job.memlimit_kb is not None and rss_kb > job.memlimit_kb:
            self._request_kill(task, "TERM_MEMLIMIT", now)
        limit_s = None if job.runlimit_min is None else job.runlimit_min * config.minute_s()
        if limit_s is not None and now - running.started > limit_s:
            self._request_kill(task, "TERM_RUNLIMIT", now)

    def _turn_zombi(self, task: Task, running: Running, now: float) -> None:
        procs.signal_task(task.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            running.process.wait(timeout=2)
        task.stat = "ZOMBI"
        task.record(now, "zombi")
        self._forget(task.index)

    def _finish(self, job: Job, task: Task, running: Running, returncode: int, now: float) -> None:
        procs.signal_task(task.pid, signal.SIGKILL)  # what the job left behind
        signum = -returncode if returncode < 0 else 0
        exit_code = 128 + signum if signum else returncode
        if task.kill is not None:
            task.stat, task.term_reason = "EXIT", task.kill.reason
        else:
            task.stat = "DONE" if returncode == 0 else "EXIT"
        task.exit_code = exit_code
        task.finish_time = now
        task.record(
            now,
            "finish",
            stat=task.stat,
            exit_code=exit_code,
            signal=signum,
            cpu=task.cpu_time,
            reason=task.term_reason,
        )
        samples = running.mem_samples
        usage = report.Usage(
            cpu_s=task.cpu_time,
            max_mem_kb=task.max_mem_kb,
            avg_mem_kb=sum(samples) / len(samples) if samples else 0.0,
            max_procs=running.max_procs,
            max_threads=running.max_threads,
        )
        with contextlib.suppress(OSError):
            report.deliver(job, task, running.outputs, usage)
        self._forget(task.index)

    # -- the loop -------------------------------------------------------------------

    def step(self, job: Job) -> bool:
        """One look at the job; False when nothing is left to do."""
        now = time.time()
        sample = now - self.last_sample >= SAMPLE_S
        if sample:
            self.last_sample = now
        for index, running in list(self.running.items()):
            task = job.task(index)
            if task is None:
                continue
            if task.finished:  # ended by bkill -r: only its processes are left to end
                procs.signal_task(task.pid, signal.SIGKILL)
                if running.process.poll() is not None:
                    self._forget(index)
                continue
            if task.stat == "RUN" and faults.matches(self.root, faults.ZOMBI, job.task_name(task)):
                self._turn_zombi(task, running, now)
                continue
            if sample:
                self._sample(job, task, running, now)
            self._signal(task, now)
            returncode = running.process.poll()
            if returncode is not None:
                self._finish(job, task, running, returncode, time.time())
        limit = job.array_limit or len(job.tasks)
        for task in job.tasks:
            if task.stat != "PEND":
                continue
            if len(self.running) < limit:
                self._start(job, task)
            elif job.is_array and task.pend_reason != ARRAY_LIMIT_REASON:
                task.pend_reason = ARRAY_LIMIT_REASON
        return bool(self.running) or any(t.stat == "PEND" for t in job.tasks)

    def supervise(self) -> None:
        while self.root.exists():
            with self.store.update(self.jobid) as job:
                busy = self.step(job)
            if not busy:
                return
            self.wait()
        self.abandon()

    def wait(self) -> None:
        """Sleep POLL_S, or less if a running task exits meanwhile."""
        fds = [running.pidfd for running in self.running.values() if running.pidfd >= 0]
        if fds:
            select.select(fds, [], [], POLL_S)
        else:
            time.sleep(POLL_S)

    def abandon(self) -> None:
        """The state directory is gone: end every task rather than leave it behind."""
        for index, running in list(self.running.items()):
            procs.signal_task(running.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                running.process.wait(timeout=2)
            self._forget(index)

    def run(self) -> None:
        try:
            if self.wait_for_dependencies():
                self.supervise()
        finally:
            self.abandon()


def main(argv: list[str]) -> int:
    root, jobid = Path(argv[0]), int(argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    Runner(root, jobid).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
