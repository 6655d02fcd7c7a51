"""Where a job's output goes, and the job report LSF adds to the -o file.

Without ``LSB_STDOUT_DIRECT=Y`` (lsf.conf; here read from the environment) LSF
spools a job's output and copies it to the -o file when the job ends, after the
job report ("The output (if any) follows:"). With it, output goes straight to
the file and the report is appended at the end ("The output (if any) is above
this job summary."). With -N the report is mailed instead; so is everything
when there is no -o (the emulator keeps that in the state directory).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import timefmt
from .model import Job, Task, term_text

RULE = "-" * 60


@dataclass(frozen=True)
class Outputs:
    out_path: Path | None
    err_path: Path | None
    direct: bool
    spool_out: Path
    spool_err: Path


@dataclass(frozen=True)
class Usage:
    cpu_s: float
    max_mem_kb: int
    avg_mem_kb: float
    max_procs: int
    max_threads: int


def output_path(job: Job, task: Task, raw: str | None, cwd: str, suffix: str) -> Path | None:
    """A -o/-e value made concrete: %J and %I replaced, relative to the job's CWD.

    A value ending in ``/`` names a directory, in which the file is ``<job_ID>.out``
    (or ``.err``); array elements get ``<job_ID>_<index>`` so they do not collide.
    """
    if raw is None:
        return None
    text = raw.replace("%J", str(job.jobid)).replace("%I", str(task.index))
    if text.endswith("/"):
        stem = f"{job.jobid}_{task.index}" if job.is_array else str(job.jobid)
        text += stem + suffix
    return Path(os.path.normpath(os.path.join(cwd, text)))


def open_for(path: Path, overwrite: bool) -> IO[bytes]:
    """Open an output file as LSF would; if it cannot be written, the output is lost."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("wb" if overwrite else "ab")
    except OSError:
        return open(os.devnull, "wb")


def _status_lines(task: Task) -> list[str]:
    if task.stat == "DONE":
        return ["Successfully completed."]
    lines = [f"{term_text(task.term_reason)}."] if task.term_reason else []
    return [*lines, f"Exited with exit code {task.exit_code}."]


def _usage_lines(job: Job, task: Task, usage: Usage) -> list[str]:
    def row(label: str, text: str) -> str:
        return f"    {label + ' :':<45}{text}"

    run = (task.finish_time or 0) - (task.start_time or 0)
    turnaround = (task.finish_time or 0) - job.submit_time
    avg = f"{usage.avg_mem_kb / 1024:.2f} MB" if usage.avg_mem_kb else "-"
    requested = f"{job.memlimit_kb / 1024:.2f} MB" if job.memlimit_kb else "-"
    return [
        "Resource usage summary:",
        "",
        row("CPU time", f"{usage.cpu_s:.2f} sec."),
        row("Max Memory", timefmt.report_mb(usage.max_mem_kb) if usage.max_mem_kb else "-"),
        row("Average Memory", avg),
        row("Total Requested Memory", requested),
        row("Delta Memory", "-"),
        row("Max Swap", "-"),
        row("Max Processes", str(usage.max_procs) if usage.max_procs else "-"),
        row("Max Threads", str(usage.max_threads) if usage.max_threads else "-"),
        row("Run time", f"{round(run)} sec."),
        row("Turnaround time", f"{round(turnaround)} sec."),
    ]


def job_report(job: Job, task: Task, usage: Usage, outputs: Outputs) -> str:
    """The job report: header, the job as submitted, how it ended, resource usage."""
    end = "Done" if task.stat == "DONE" else "Exited"
    name = job.task_name(task)
    start, finish = task.start_time or job.submit_time, task.finish_time or job.submit_time
    cwd = next((str(e.data.get("cwd", "")) for e in task.events if e.kind == "start"), job.cwd)
    home = next((str(e.data.get("home", "")) for e in task.events if e.kind == "start"), "")
    lines = [
        f"Sender: LSF System <lsfadmin@{job.exec_host}>",
        f"Subject: Job {job.task_id(task)}: <{name}> in cluster <{job.cluster}> {end}",
        "",
        f"Job <{name}> was submitted from host <{job.from_host}> by user <{job.user}> in "
        f"cluster <{job.cluster}> at {timefmt.full(job.submit_time)}",
        f"Job was executed on host(s) <{job.exec_host}>, in queue <{job.queue}>, as user "
        f"<{job.user}> in cluster <{job.cluster}> at {timefmt.full(start)}",
        f"<{home}> was used as the home directory.",
        f"<{cwd}> was used as the working directory.",
        f"Started at {timefmt.full(start)}",
        f"Terminated at {timefmt.full(finish)}",
        f"Results reported at {timefmt.full(finish)}",
        "",
        "Your job looked like:",
        "",
        RULE,
        "# LSBATCH: User input",
        Path(job.script).read_text().rstrip("\n"),
        RULE,
        "",
        *_status_lines(task),
        "",
        *_usage_lines(job, task, usage),
        "",
    ]
    if outputs.direct:
        lines.append("The output (if any) is above this job summary.")
    else:
        lines += ["The output (if any) follows:", ""]
    return "\n".join(lines) + "\n"


def _ps(outputs: Outputs) -> str:
    if outputs.err_path is None:
        return ""
    return f"\n\nPS:\n\nRead file <{outputs.err_path}> for stderr output of this job.\n\n"


def deliver(job: Job, task: Task, outputs: Outputs, usage: Usage) -> None:
    """Put the finished task's output and report where LSF would."""
    with_report = not job.mail_report
    if outputs.out_path is not None:
        if outputs.direct:
            if with_report:
                with open_for(outputs.out_path, overwrite=False) as handle:
                    handle.write(b"\n" + job_report(job, task, usage, outputs).encode())
        else:
            with open_for(outputs.out_path, job.output_overwrite) as handle:
                if with_report:
                    handle.write(job_report(job, task, usage, outputs).encode())
                with outputs.spool_out.open("rb") as spooled:
                    shutil.copyfileobj(spooled, handle)
                if with_report:
                    handle.write(_ps(outputs).encode())
    if outputs.err_path is not None and not outputs.direct:
        with (
            open_for(outputs.err_path, job.error_overwrite) as handle,
            outputs.spool_err.open("rb") as spooled,
        ):
            shutil.copyfileobj(spooled, handle)
