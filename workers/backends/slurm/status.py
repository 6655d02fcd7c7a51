"""Reading Slurm's answers, as pure functions: squeue and sacct rows, and what they mean.

squeue uses a fixed ``-O`` format with ``-r`` (one row per array element), not
``--json``: Slurm 22.05's JSON output ignores ``-j`` and ``--name`` and returns
every job of the cluster (checked on the local Slurm; see tests/data/slurm).
squeue's ``exit_code`` is the raw wait status (768 is exit 3; 15 is SIGTERM);
sacct prints ``exit:signal``.

A line that is not a row (noise from a wrapper, a library warning, a truncated write) is
skipped and handed back as unreadable, so one bad line does not hold up every job of the
answer; the backend leaves the jobs such an answer may have described as they were.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from jobgate.client.models import ElementState, JobStatus, Observation
from jobgate.workers.backends.base import DEPENDENCY_FAILED, observe_tasks

SQUEUE_FORMAT = (
    "JobID:0|,ArrayJobID:0|,ArrayTaskID:0|,Name:0|,State:0|,Reason:0|,"
    "StartTime:0|,EndTime:0|,exit_code:0|,DerivedEC:0"
)
SACCT_FIELDS = "jobid,jobidraw,jobname,state,exitcode,start,end"
#: The reason squeue gives a waiting job whose dependency failed: the gateway ends it.
NEVER_SATISFIED = "DependencyNeverSatisfied"

STATES: dict[str, JobStatus] = {
    **dict.fromkeys(
        ["PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD"],
        JobStatus.PENDING,
    ),
    **dict.fromkeys(
        ["RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"], JobStatus.RUNNING
    ),
    **dict.fromkeys(["SUSPENDED", "STOPPED"], JobStatus.SUSPENDED),
    "COMPLETED": JobStatus.SUCCEEDED,
    **dict.fromkeys(
        [
            "FAILED",
            "TIMEOUT",
            "OUT_OF_MEMORY",
            "NODE_FAIL",
            "BOOT_FAIL",
            "DEADLINE",
            "SPECIAL_EXIT",
        ],
        JobStatus.FAILED,
    ),
    **dict.fromkeys(["CANCELLED", "PREEMPTED", "REVOKED"], JobStatus.CANCELLED),
}


@dataclass(frozen=True)
class SlurmRow:
    """One job, or one array element, as squeue or sacct reports it."""

    array_job_id: str  # the id sbatch returned: the jobgate backend id
    index: int | None  # array task id; None for a job that is not an array
    name: str
    state: str
    reason: str
    start: datetime | None
    end: datetime | None
    exit_code: int | None
    signal: int | None


@dataclass(frozen=True)
class SlurmAnswer:
    """The rows of one squeue or sacct answer, and the lines that were not rows."""

    rows: list[SlurmRow]
    unreadable: list[str]


@lru_cache(maxsize=4096)
def _time(text: str) -> datetime | None:
    """Slurm's local timestamps ("2026-11-21T18:31:46"); N/A, NONE, Unknown: none. Cached:
    at 1 s resolution, jobs of one answer share most of their times."""
    if not text or text in ("N/A", "NONE", "Unknown", "None"):
        return None
    try:
        return datetime.fromisoformat(text).astimezone()
    except ValueError:
        return None


def _base_state(state: str) -> str:
    """'CANCELLED by 0' -> 'CANCELLED'."""
    return state.partition(" ")[0]


def query_argv(backend_ids: list[str]) -> list[str]:
    """squeue for these jobs, one row per array element, finished ones included."""
    return ["squeue", "-h", "-t", "all", "-r", "-j", ",".join(backend_ids), "-O", SQUEUE_FORMAT]


def queue_argv() -> list[str]:
    """squeue for every job of the worker's user, in every partition, with no id list: one
    call however many jobs are active (Slurm 22.05 builds its whole job table for each
    call, so asking in chunks of ids only multiplies the controller's work)."""
    return ["squeue", "-h", "-a", "--me", "-t", "all", "-r", "-O", SQUEUE_FORMAT]


def discover_argv(names: list[str]) -> list[str]:
    """squeue for the jobs of these names (jobgate's jobs submitted before)."""
    return ["squeue", "-h", "-t", "all", "-r", "--name", ",".join(names), "-O", SQUEUE_FORMAT]


def parse_squeue(
    text: str, among: Container[str] | None = None, name_prefix: str = ""
) -> SlurmAnswer:
    """Rows of ``squeue -h -r -O SQUEUE_FORMAT``, and the lines that are not rows.

    With `among`, only the rows of those backend ids whose name starts with `name_prefix`
    are read (an answer about the whole queue holds jobs nobody asked about); the others
    are skipped before their fields are converted.
    """
    rows, unreadable = [], []
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 10 or not fields[0].strip().isdigit():
            if line.strip():
                unreadable.append(line)
            continue
        # The name is the only field that could hold a '|': take it from the middle.
        job_id, array_job_id, task = fields[:3]
        backend_id = array_job_id or job_id
        name = "|".join(fields[3:-6]) if len(fields) > 10 else fields[3]
        if among is not None and (backend_id not in among or not name.startswith(name_prefix)):
            continue
        state, reason, start, end, status = fields[-6:-1]
        raw = int(status) if status.isdigit() else None
        rows.append(
            SlurmRow(
                array_job_id=backend_id,
                index=int(task) if task.isdigit() else None,
                name=name,
                state=_base_state(state),
                reason=reason,
                start=_time(start),
                end=_time(end),
                exit_code=None if raw is None else raw >> 8,
                signal=None if raw is None else raw & 0x7F,
            )
        )
    return SlurmAnswer(rows, unreadable)


def history_argv(backend_ids: list[str], accounting: str, since: datetime) -> list[str]:
    """sacct for jobs gone from squeue: the accounting database, or the job completion file."""
    common = ["-P", "-n", "-o", SACCT_FIELDS, "-j", ",".join(backend_ids)]
    if accounting == "jobcomp":
        return ["sacct", "-c", *common]
    return ["sacct", "-X", *common, "-S", since.strftime("%Y-%m-%dT%H:%M:%S")]


def parse_sacct(text: str) -> SlurmAnswer:
    """Rows of ``sacct -P -n -o SACCT_FIELDS``, and the lines that are not rows. Job ids
    "123_4" are array elements; the job completion file has no array ids, so there every
    element is a job of its own."""
    rows, unreadable = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 7 or not fields[1].strip().isdigit():
            unreadable.append(line)
            continue
        job_id, raw_id, name, state, exit_status, start, end = fields
        array_id, _, task = job_id.partition("_")
        code, _, signal = exit_status.partition(":")
        rows.append(
            SlurmRow(
                array_job_id=array_id if task else raw_id,
                index=int(task) if task.isdigit() else None,
                name=name,
                state=_base_state(state),
                reason="",
                start=_time(start),
                end=_time(end),
                exit_code=int(code) if code.isdigit() else None,
                signal=int(signal) if signal.isdigit() else None,
            )
        )
    return SlurmAnswer(rows, unreadable)


def row_state(row: SlurmRow, *, requeue_preempted: bool = False) -> ElementState:
    """What one row means for jobgate: status, reason and exit code."""
    index = row.index or 0
    if row.state == "PENDING" and row.reason == NEVER_SATISFIED:
        return ElementState(index=index, status=JobStatus.FAILED, reason=DEPENDENCY_FAILED)
    if row.state == "PREEMPTED" and requeue_preempted:
        return ElementState(index=index, status=JobStatus.PENDING, reason="preempted, requeued")
    status = STATES.get(row.state)
    if status is None:
        return ElementState(index=index, status=JobStatus.UNKNOWN,
                            reason=f"Slurm state {row.state}")  # fmt: skip
    reason: str | None = None
    if status is JobStatus.PENDING:
        reason = row.reason if row.reason not in ("", "None") else None
    elif row.state == "FAILED":
        reason = _failure(row)
    elif status is JobStatus.FAILED or row.state == "PREEMPTED":
        reason = row.state
    return ElementState(
        index=index,
        status=status,
        reason=reason,
        exit_code=row.exit_code if status.is_finished else None,
        started_at=row.start,
        finished_at=row.end if status.is_finished else None,
    )


def _failure(row: SlurmRow) -> str:
    if row.signal:
        return f"{row.reason or 'FAILED'} (signal {row.signal})"
    if row.reason == "NonZeroExitCode" or row.reason in ("", "None"):
        return f"NonZeroExitCode (exit code {row.exit_code})"
    return row.reason


def observe(rows: list[SlurmRow], *, requeue_preempted: bool = False) -> Observation:
    """One jobgate job from its rows: a single job, or an array (one row per element)."""
    single = len(rows) == 1 and rows[0].index is None
    states = [
        row_state(r, requeue_preempted=requeue_preempted)
        for r in rows
        if single or r.index is not None
    ]
    return observe_tasks(states, single=single)
