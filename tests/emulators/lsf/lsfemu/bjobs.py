"""bjobs: the default table, -w, -o with -noheader or -json, and -l."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cmdline, config, fields, history, selection, timefmt
from .errors import LsfError
from .model import Job, Task, term_text
from .store import Store

FLAGS = {
    "-a", "-d", "-p", "-r", "-s", "-w", "-W", "-l", "-UF", "-noheader", "-json", "-hms",
    "-X", "-A", "-WP", "-WL", "-WF", "-x",
}  # fmt: skip
VALUED = {"-o", "-u", "-J", "-q", "-P", "-m", "-g", "-G", "-sla", "-app", "-Jd", "-Lp"}
USAGE = (
    "Usage: bjobs [-h] [-V] [-A] [-a] [-d] [-p] [-r] [-s] [-l | -w] [-UF] [-noheader]\n"
    '             [-o "field ..." [-json]] [-hms] [-J job_name] [-q queue_name]\n'
    '             [-u user_name | -u all] [-P project_name] [job_ID | "job_ID[index]" ...]'
)

UNFINISHED = frozenset({"PEND", "PSUSP", "RUN", "USUSP", "SSUSP", "UNKWN", "WAIT", "ZOMBI"})
#: bjobs lists running and suspended jobs before pending ones, finished ones last.
_ORDER = {"RUN": 0, "SSUSP": 0, "USUSP": 0, "UNKWN": 0, "ZOMBI": 0, "PSUSP": 1, "PEND": 1}

Row = tuple[Job, Task]


@dataclass
class Found:
    rows: list[Row] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _states(flags: set[str]) -> tuple[frozenset[str] | None, str]:
    """The states a query shows (None: all) and what to say when it finds nothing."""
    if "-a" in flags:
        return None, "No job found"
    if "-d" in flags:
        return frozenset({"DONE", "EXIT"}), "No job found"
    if "-p" in flags:
        return frozenset({"PEND", "PSUSP"}), "No pending job found"
    if "-r" in flags:
        return frozenset({"RUN"}), "No running job found"
    if "-s" in flags:
        return frozenset({"PSUSP", "USUSP", "SSUSP"}), "No suspended job found"
    return UNFINISHED, "No unfinished job found"


def _filters_pass(job: Job, task: Task, parsed: cmdline.Parsed) -> bool:
    pattern = parsed.values.get("-J")
    if pattern is not None and not selection.name_matches(job, task, pattern):
        return False
    if "-q" in parsed.values and job.queue != parsed.values["-q"]:
        return False
    return not ("-P" in parsed.values and job.project != parsed.values["-P"])


def _named_tasks(
    root: Path,
    job: Job,
    arg: selection.JobArg,
    parsed: cmdline.Parsed,
    wanted: frozenset[str] | None,
    now: float,
) -> list[Task]:
    return [
        t
        for t in job.tasks
        if selection.arg_matches(job, t, arg)
        and not selection.cleaned(root, job, t, now)
        and _filters_pass(job, t, parsed)
        and (wanted is None or t.stat in wanted)
    ]


def find(root: Path, parsed: cmdline.Parsed, now: float) -> tuple[Found, str]:
    store = Store(root)
    states, empty = _states(parsed.flags)
    found = Found()
    if parsed.args and parsed.args != ["0"]:
        # A job named by its ID shows in any state, unless -d/-p/-r/-s narrow it.
        wanted = None if states is UNFINISHED else states
        for text in parsed.args:
            arg = selection.parse_job_arg(text)
            job = store.load(arg.jobid)
            tasks = [] if job is None else _named_tasks(root, job, arg, parsed, wanted, now)
            if job is None or not tasks:
                found.missing.append(text)
            else:
                found.rows += [(job, t) for t in tasks]
        return found, empty
    user = parsed.values.get("-u", config.user())
    for job in store.all_jobs():
        if user != "all" and job.user != user:
            continue
        for task in job.tasks:
            if states is not None and task.stat not in states:
                continue
            if selection.cleaned(root, job, task, now) or not _filters_pass(job, task, parsed):
                continue
            found.rows.append((job, task))
    found.rows.sort(key=lambda row: (_ORDER.get(row[1].stat, 2), row[0].jobid, row[1].index))
    pattern = parsed.values.get("-J")
    if not found.rows and pattern is not None:
        empty = f"Job <{pattern}> is not found"
    return found, empty


# -- output ------------------------------------------------------------------------------


def _cut(text: str, width: int, wide: bool, name: bool = False) -> str:
    if not wide and len(text) > width - 1:
        text = "*" + text[len(text) - width + 2 :] if name else text[: width - 1]
    return text.ljust(width - 1) + " "


def table(rows: list[Row], wide: bool, header: bool) -> list[str]:
    lines = []
    if header:
        lines.append(
            "JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME"
        )
    enhanced = os.environ.get("LSB_BJOBS_DISPLAY_ENH", "").strip().upper() == "Y"
    for job, task in rows:
        jobid = job.task_id(task) if enhanced else str(job.jobid)
        started = task.start_time is not None and task.pid > 0
        host = job.exec_host if job.slots == 1 else f"{job.slots}*{job.exec_host}"
        lines.append(
            _cut(jobid, 8, True)
            + _cut(job.user, 8, wide)
            + _cut(task.stat, 6, True)
            + _cut(job.queue, 11, wide)
            + _cut(job.from_host, 12, wide)
            + _cut(host if started else "", 12, wide)
            + _cut(job.task_name(task), 11, wide, name=True)
            + timefmt.short(job.submit_time)
        )
    return lines


def custom(rows: list[Row], fmt: fields.Format, header: bool, hms: bool, now: float) -> list[str]:
    lines = []
    if header:
        lines.append(fmt.delimiter.join(fields.fit(c.header, c) for c in fmt.columns).rstrip())
    for job, task in rows:
        values = [fields.value(c, job, task, now=now, hms=hms) for c in fmt.columns]
        cells = [
            fields.fit("-" if v is None else v, c) for v, c in zip(values, fmt.columns, strict=True)
        ]
        lines.append(
            fmt.delimiter.join(cells).rstrip()
            if fmt.delimiter == " "
            else fmt.delimiter.join(cells)
        )
    return lines


def _json_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False).replace("/", "\\/")


def as_json(rows: list[Row], missing: list[str], fmt: fields.Format, hms: bool, now: float) -> str:
    records: list[list[tuple[str, str]]] = []
    for job, task in rows:
        records.append(
            [(c.header, fields.value(c, job, task, now=now, hms=hms) or "") for c in fmt.columns]
        )
    for text in missing:
        records.append([("JOBID", text), ("ERROR", f"Job <{text}> is not found")])
    lines = ["{", '  "COMMAND":"bjobs",', f'  "JOBS":{len(records)},', '  "RECORDS":[']
    for number, record in enumerate(records):
        lines.append("    {")
        lines.append(",\n".join(f"      {_json_text(k)}:{_json_text(v)}" for k, v in record))
        lines.append("    }," if number < len(records) - 1 else "    }")
    lines += ["  ]", "}"]
    return "\n".join(lines)


def _period(text: str) -> str:
    if text.startswith(("Done successfully", "Exited with", "Exited by")):
        return text.rstrip(";") + "."
    return text


def long_format(rows: list[Row], unformatted: bool, now: float) -> list[str]:
    lines: list[str] = []
    for number, (job, task) in enumerate(rows):
        if number:
            lines.append("-" * 78)
        head = (
            f"Job <{job.task_id(task)}>, Job Name <{job.task_name(task)}>, User <{job.user}>, "
            f"Project <{job.project}>, Status <{task.stat}>, Queue <{job.queue}>, "
            f"Command <{job.command}>"
        )
        lines += history.wrap(head, unformatted)
        events = [(job.submit_time, history.submitted(job))]
        start = next((e for e in task.events if e.kind == "start"), None)
        if start is not None:
            hosts = job.exec_host if job.slots == 1 else f"{job.slots}*{job.exec_host}"
            started = (
                f"Started {job.slots} Task(s) on Host(s) <{hosts}>, Allocated {job.slots} "
                f"Slot(s) on Host(s) <{hosts}>, Execution Home <{start.data.get('home', '')}>, "
                f"Execution CWD <{start.data.get('cwd', '')}>;"
            )
            events.append((start.time, started))
        for event in task.events:
            if event.kind == "finish":  # bjobs -l ends these sentences with a period
                texts = [_period(text) for text in history.event_texts(job, event)]
                events += [(event.time, text) for text in texts]
        for stamp, text in events:
            lines += history.wrap(f"{timefmt.event(stamp)}: {text}", unformatted)
        if task.stat in {"PEND", "PSUSP"}:
            lines += ["", " PENDING REASONS:", f" {task.pend_reason};"]
        if task.max_mem_kb:
            lines += ["", " MEMORY USAGE:", f" MAX MEM: {timefmt.memory(task.max_mem_kb)};"]
        if task.term_reason and task.stat == "EXIT":
            lines += ["", f" EXIT REASON: {term_text(task.term_reason)};"]
        lines.append("")
    return lines


def main(root: Path, argv: list[str]) -> int:
    parsed = cmdline.parse("bjobs", argv, FLAGS, VALUED, USAGE)
    now = time.time()
    found, empty = find(root, parsed, now)
    fmt_text = parsed.values.get("-o") or os.environ.get("LSB_BJOBS_FORMAT")
    fmt = fields.parse_format(fmt_text) if fmt_text else None
    hms = "-hms" in parsed.flags or os.environ.get("LSB_HMS_TIME_FORMAT", "").upper() == "Y"
    header = "-noheader" not in parsed.flags
    if "-json" in parsed.flags and "-noheader" in parsed.flags:
        raise LsfError("bjobs: -json and -noheader cannot be used together.\n" + USAGE)
    out: list[str] = []
    if fmt is not None and "-json" in parsed.flags:
        out.append(as_json(found.rows, found.missing, fmt, hms, now))
    elif found.rows:
        if "-l" in parsed.flags or "-UF" in parsed.flags:
            out += long_format(found.rows, "-UF" in parsed.flags, now)
        elif fmt is not None:
            out += custom(found.rows, fmt, header, hms, now)
        else:
            out += table(found.rows, "-w" in parsed.flags, header)
    if out:
        print("\n".join(out), flush=True)
    if "-json" not in parsed.flags or fmt is None:
        for text in found.missing:
            print(f"Job <{text}> is not found", file=sys.stderr)
    if not found.rows and not found.missing:
        print(empty, file=sys.stderr)
    consistent = os.environ.get("LSB_BJOBS_CONSISTENT_EXIT_CODE", "").strip().upper() == "Y"
    if consistent:
        return 255 if found.missing or not found.rows else 0
    return 255 if found.missing and found.rows else 0
