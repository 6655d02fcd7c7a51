"""Reading LSF's answers, as pure functions: bjobs -json records, bhist -l events, and
what they mean for jobgate.

The formats, and the IBM pages each was checked against, are listed in
tests/emulators/lsf/FORMATS.md; samples are in tests/data/lsf/. In short:
``bjobs -json -o`` prints ``{"COMMAND":"bjobs","JOBS":n,"RECORDS":[...]}`` with the
field names upper-cased and every value a string (``""`` when empty); an array
element is a record of its own with the array's JOBID and its JOBINDEX (0 for a
job that is not an array); unknown ids come back as ``Job <N> is not found``, on
stderr or as an ERROR record. Times have neither year nor seconds
(``Nov 21 20:01``, finish times with an ``L``/``E``/``X`` suffix). LSF's busy
messages may come before the JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jobgate.client.errors import BackendError
from jobgate.client.models import ElementState, JobStatus, Observation
from jobgate.workers.backends.base import DEPENDENCY_FAILED, observe_tasks

BJOBS_FIELDS = (
    "jobid jobindex job_name stat exit_code exit_reason pend_reason start_time finish_time"
)
_NOT_FOUND = re.compile(r"Job <(\d+)(?:\[\d+\])?> is not found")
#: Where a JSON document can start: a brace at the start of a line (noise may hold one).
_DOCUMENT_START = re.compile(r"^\{", re.MULTILINE)
_NOTHING = ("No job found", "No unfinished job found", "No matching job found")
_MONTH_TIME = re.compile(r"^([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?")
_BHIST_HEADER = re.compile(r"^Job <(\d+)(?:\[(\d+)\])?>")
_BHIST_EVENT = re.compile(r"^(?:[A-Z][a-z]{2} )?([A-Z][a-z]{2}\s+\d{1,2} \d{1,2}:\d{2}:\d{2})"
                          r"(?: (\d{4}))?: (.*)$")  # fmt: skip
#: bhist -l wraps at 79 columns; continuation lines are indented this much.
_CONTINUATION = " " * 21
DEPENDENCY_NEVER_SATISFIED = "never satisfied"

STATES: dict[str, JobStatus] = {
    **dict.fromkeys(["PEND", "WAIT", "PROV"], JobStatus.PENDING),
    "RUN": JobStatus.RUNNING,
    **dict.fromkeys(["PSUSP", "USUSP", "SSUSP"], JobStatus.SUSPENDED),
    "DONE": JobStatus.SUCCEEDED,
    **dict.fromkeys(["EXIT", "ZOMBI"], JobStatus.FAILED),
    "UNKWN": JobStatus.UNKNOWN,
}
#: Termination reasons that mean someone stopped the job rather than that it failed.
STOPPED_BY_SOMEONE = ("TERM_OWNER", "TERM_ADMIN", "TERM_FORCE_OWNER", "TERM_FORCE_ADMIN",
                      "TERM_PREEMPT")  # fmt: skip
#: Termination reasons with a name of their own in jobgate's reason text.
NAMED_FAILURES = {"TERM_RUNLIMIT": "timeout", "TERM_MEMLIMIT": "out of memory",
                  "TERM_CPULIMIT": "CPU time limit", "TERM_DEADLINE": "deadline"}  # fmt: skip


@dataclass(frozen=True)
class LsfRow:
    """One job, or one array element, as bjobs or bhist reports it."""

    job_id: str  # the id bsub returned (an array's id for its elements): the backend id
    index: int | None  # array index; None for a job that is not an array
    name: str
    stat: str
    exit_code: int | None
    exit_reason: str
    pend_reason: str
    start: datetime | None
    finish: datetime | None


@dataclass(frozen=True)
class BjobsAnswer:
    rows: list[LsfRow]
    not_found: set[str]
    #: Lines printed around the JSON document (LSF's busy messages, or noise).
    around: list[str] = field(default_factory=list)


def query_argv(backend_ids: list[str]) -> list[str]:
    """bjobs for these jobs, finished ones included, one record per array element."""
    return ["bjobs", "-a", "-json", "-o", BJOBS_FIELDS, *backend_ids]


def discover_argv(prefix: str) -> list[str]:
    """Every job of this user whose name starts with jobgate's prefix."""
    return ["bjobs", "-a", "-json", "-o", BJOBS_FIELDS, "-J", f"{prefix}-*"]


def history_argv(backend_ids: list[str]) -> list[str]:
    """bhist for jobs bjobs has forgotten: how each ended, lines unwrapped."""
    return ["bhist", "-a", "-l", "-UF", *backend_ids]


def base_name(name: str) -> str:
    """An array element's job name without its index: ``jg-x[3]`` -> ``jg-x``."""
    return name.partition("[")[0]


def lsf_time(text: str, now: datetime | None = None) -> datetime | None:
    """LSF's ``Nov 21 20:01`` (no year; maybe seconds; maybe an L/E/X suffix) in the
    worker's local time zone, in the latest year that does not put it in the future."""
    match = _MONTH_TIME.match(text.strip())
    if not match:
        return None
    month, day, hour, minute, second = match.groups()
    now = now or datetime.now().astimezone()
    try:
        moment = datetime.strptime(
            f"{now.year} {month} {day} {hour}:{minute}:{second or '0'}", "%Y %b %d %H:%M:%S"
        ).replace(tzinfo=now.tzinfo)
    except ValueError:
        return None
    if moment > now + timedelta(days=1):
        moment = moment.replace(year=now.year - 1)
    return moment


def _nothing(line: str) -> bool:
    """LSF's way of saying that no job matched."""
    return any(n in line for n in _NOTHING)


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _field(record: dict[str, object], key: str) -> str:
    value = record.get(key, "")
    return "" if value in (None, "-") else str(value)


def parse_bjobs(
    stdout: str, stderr: str, returncode: int, among: Container[str] | None = None
) -> BjobsAnswer:
    """The records of ``bjobs -json -o BJOBS_FIELDS``, and the ids LSF no longer knows.

    Unknown ids are not an error (bjobs exits 255 when some are found and some not);
    anything else on stderr with no JSON on stdout is, and names what bjobs said. With
    `among`, only the records of those job ids become rows (an answer about all of the
    user's jobs may hold others).
    """
    not_found = set(_NOT_FOUND.findall(stderr))
    if "{" not in stdout:
        lines = [line for line in stderr.splitlines() if line.strip()]
        understood = [line for line in lines if _NOT_FOUND.search(line) or _nothing(line)]
        if len(understood) < len(lines) or (returncode != 0 and not lines):
            said = (stderr.strip() or stdout.strip() or "no output")[-500:]
            raise BackendError(f"bjobs failed (exit {returncode}): {said}")
        return BjobsAnswer([], not_found, [line for line in stdout.splitlines() if line.strip()])
    document, around = _document(stdout)
    records = document["RECORDS"]
    if not isinstance(records, list):
        raise BackendError(f"bjobs -json printed RECORDS that are not a list: {records!r}")
    rows = []
    now = datetime.now().astimezone()
    times: dict[str, datetime | None] = {}  # jobs of one answer share most of their times

    def moment(text: str) -> datetime | None:
        if text not in times:
            times[text] = lsf_time(text, now)
        return times[text]

    for record in records:
        if not isinstance(record, dict):
            raise BackendError(f"bjobs -json printed a record that is not an object: {record!r}")
        if "ERROR" in record:
            not_found.update(_NOT_FOUND.findall(str(record["ERROR"])))
            continue
        job_id, stat = _field(record, "JOBID"), _field(record, "STAT")
        if not job_id.isdigit() or not stat:
            raise BackendError(f"bjobs -json printed a record without JOBID/STAT: {record!r}")
        if among is not None and job_id not in among:
            continue
        index = _number(_field(record, "JOBINDEX"))
        rows.append(
            LsfRow(
                job_id=job_id,
                index=index or None,
                name=_field(record, "JOB_NAME"),
                stat=stat,
                exit_code=_number(_field(record, "EXIT_CODE")),
                exit_reason=_field(record, "EXIT_REASON"),
                pend_reason=_field(record, "PEND_REASON"),
                start=moment(_field(record, "START_TIME")),
                finish=moment(_field(record, "FINISH_TIME")),
            )
        )
    return BjobsAnswer(rows, not_found, around)


def _document(stdout: str) -> tuple[dict[str, Any], list[str]]:
    """The JSON document bjobs printed, and the non-blank lines around it."""
    decoder = json.JSONDecoder()
    failure: Exception | None = None
    for start in _DOCUMENT_START.finditer(stdout):
        try:
            document, end = decoder.raw_decode(stdout, start.start())
        except ValueError as e:
            failure = failure or e
            continue
        if isinstance(document, dict) and "RECORDS" in document:
            around = f"{stdout[: start.start()]}\n{stdout[end:]}".splitlines()
            return document, [line for line in around if line.strip()]
        failure = failure or KeyError("RECORDS")
    raise BackendError(f"bjobs -json printed what jobgate cannot read: {failure or stdout!r}")


def _unwrap(text: str) -> list[str]:
    """bhist -l lines joined again where LSF wrapped them (-UF prints them whole)."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(_CONTINUATION) and lines:
            lines[-1] += line[len(_CONTINUATION) :]
        else:
            lines.append(line)
    return lines


@dataclass
class _History:
    """One job's bhist block, read event by event."""

    job_id: str
    index: int | None
    stat: str = ""
    exit_code: int | None = None
    exit_reason: str = ""
    start: datetime | None = None
    finish: datetime | None = None

    def apply(self, what: str, moment: datetime | None) -> None:
        if what.startswith(("Starting", "Dispatched")) and self.start is None:
            self.start = moment
        elif what.startswith("Done successfully"):
            self.stat, self.exit_code, self.finish = "DONE", 0, moment
        elif code := re.match(r"Exited with exit code (\d+)", what):
            self.stat, self.exit_code, self.finish = "EXIT", int(code.group(1)), moment
        elif signal := re.match(r"Exited by (?:LSF )?signal (\d+)", what):
            self.stat, self.exit_code, self.finish = "EXIT", 128 + int(signal.group(1)), moment
        elif ended := re.match(r"Completed <(done|exit)>;?\s*(.*?)\.?$", what):
            self.stat = "DONE" if ended.group(1) == "done" else "EXIT"
            self.exit_reason, self.finish = ended.group(2) or "", moment
        elif what.startswith("Exited"):
            self.stat, self.finish = "EXIT", moment

    def row(self) -> LsfRow:
        return LsfRow(self.job_id, self.index, "", self.stat, self.exit_code, self.exit_reason,
                      "", self.start, self.finish)  # fmt: skip


def parse_bhist(stdout: str, stderr: str, returncode: int) -> list[LsfRow]:
    """The finished jobs (and array elements) in ``bhist -l``: how each ended and when.

    Jobs bhist does not know are left out; a job still running there yields no row.
    """
    if returncode != 0 and not stdout.strip():
        if _nothing(stderr) or _NOT_FOUND.search(stderr):
            return []
        raise BackendError(f"bhist failed (exit {returncode}): {stderr.strip()[-500:]}")
    jobs: list[_History] = []
    for line in _unwrap(stdout):
        if header := _BHIST_HEADER.match(line):
            jobs.append(_History(header.group(1), _number(header.group(2) or "") or None))
        elif jobs and (event := _BHIST_EVENT.match(line)):
            when, year, what = event.groups()
            moment = lsf_time(when)
            if moment is not None and year:
                moment = moment.replace(year=int(year))
            jobs[-1].apply(what, moment)
    return [job.row() for job in jobs if job.stat]


def nothing_left_to_cancel(stdout: str, stderr: str) -> bool:
    """bkill exits non-zero when a job has finished or is gone: nothing is left to stop."""
    fine = ("is being terminated", "has already finished", "is not found", "No matching job")
    lines = [line for line in f"{stdout}\n{stderr}".splitlines() if line.strip()]
    return all(any(f in line for f in fine) for line in lines)


def _exit_reason(row: LsfRow) -> tuple[JobStatus, str]:
    """What an EXIT row means: CANCELLED when someone stopped it, else FAILED and why."""
    keyword = row.exit_reason.partition(":")[0].strip()
    if keyword in STOPPED_BY_SOMEONE:
        return JobStatus.CANCELLED, row.exit_reason
    if keyword in NAMED_FAILURES:
        return JobStatus.FAILED, f"{NAMED_FAILURES[keyword]} ({keyword})"
    if row.exit_reason:
        return JobStatus.FAILED, row.exit_reason
    if row.exit_code is not None and row.exit_code > 128:
        return JobStatus.FAILED, f"exit code {row.exit_code} (signal {row.exit_code - 128})"
    return JobStatus.FAILED, f"exit code {row.exit_code}" if row.exit_code is not None else "EXIT"


def row_state(row: LsfRow) -> ElementState:
    """What one row means for jobgate: status, reason and exit code."""
    index = row.index or 0
    status = STATES.get(row.stat)
    if status is None:
        return ElementState(index=index, status=JobStatus.UNKNOWN,
                            reason=f"LSF state {row.stat}")  # fmt: skip
    reason: str | None = None
    exit_code = row.exit_code
    if status is JobStatus.PENDING:
        if DEPENDENCY_NEVER_SATISFIED in row.pend_reason.lower():
            return ElementState(index=index, status=JobStatus.FAILED, reason=DEPENDENCY_FAILED)
        reason = row.pend_reason.strip().rstrip(";").strip() or None
    elif status is JobStatus.SUSPENDED or status is JobStatus.UNKNOWN:
        reason = row.stat
    elif row.stat == "ZOMBI":
        reason = "ZOMBI: killed or ended while LSF could not reach its host"
    elif row.stat == "EXIT":
        status, reason = _exit_reason(row)
    elif row.stat == "DONE":
        exit_code = 0
    return ElementState(
        index=index,
        status=status,
        reason=reason,
        exit_code=exit_code if status.is_finished else None,
        started_at=row.start,
        finished_at=row.finish if status.is_finished else None,
    )


def observe(rows: list[LsfRow]) -> Observation:
    """One jobgate job from its rows: a single job, or an array (one row per element)."""
    single = len(rows) == 1 and rows[0].index is None
    states = [row_state(r) for r in rows if single or r.index is not None]
    return observe_tasks(states, single=single)
