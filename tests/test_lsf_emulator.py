"""The LSF emulator in tests/emulators/lsf: its commands, as a backend would run them.

Each test gets its own state directory; the teardown stops every runner and job
process the test started (lsf-emulator-stop). Waits poll with a deadline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import wait_for

BIN = Path(__file__).resolve().parent / "emulators" / "lsf" / "bin"
DEADLINE_S = 15.0


@dataclass
class Lsf:
    """An emulated cluster: its state directory and the environment to run commands in."""

    state: Path
    work: Path
    env: dict[str, str]

    def run(
        self, *argv: str, stdin: str | None = None, timeout: float = 20, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **env},
            cwd=self.work,
            timeout=timeout,
            check=False,
        )

    def submit(self, *argv: str, stdin: str | None = None, **env: str) -> int:
        done = self.run("bsub", *argv, stdin=stdin, **env)
        assert done.returncode == 0, done.stderr
        words = done.stdout.split("<", 1)[1]
        return int(words.split(">", 1)[0])

    def fields(self, job: str | int, *names: str) -> dict[str, str]:
        """One job's (or element's) -o fields, through bjobs -json."""
        done = self.run("bjobs", "-a", "-o", " ".join(names), "-json", str(job))
        records = json.loads(done.stdout)["RECORDS"]
        return records[0] if records else {}

    def stat(self, job: str | int) -> str:
        return self.fields(job, "stat").get("STAT", "")

    def wait_stat(self, job: str | int, *states: str, timeout_s: float = DEADLINE_S) -> str:
        """Wait until the job is in one of ``states``; return that state."""

        def reached() -> str:
            stat = self.stat(job)
            return stat if stat in states else ""

        return str(wait_for(reached, timeout_s, f"job {job} in {states}"))

    def faults(self, **switches: Any) -> None:
        self.state.mkdir(exist_ok=True)
        (self.state / "faults.json").write_text(json.dumps(switches))


@pytest.fixture
def lsf(tmp_path: Path) -> Iterator[Lsf]:
    state, work = tmp_path / "state", tmp_path / "work"
    work.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LSF_EMULATOR_", "LSB_"))
    }
    env.update(
        # The emulator's commands first; then this Python, so `env python3` needs no shim.
        PATH=os.pathsep.join([str(BIN), str(Path(sys.executable).parent), os.environ["PATH"]]),
        LSF_EMULATOR_DIR=str(state),
        LSF_EMULATOR_TERMINATE_INTERVAL_S="0.2",
        LSF_EMULATOR_RETRY_S="0.5",
        PWD=str(work),
    )
    cluster = Lsf(state, work, env)
    yield cluster
    stopped = subprocess.run(
        [str(BIN / "lsf-emulator-stop"), str(state)], capture_output=True, text=True, check=False
    )
    assert stopped.returncode == 0, stopped.stderr


# -- submission -----------------------------------------------------------------------


def test_unconfigured_lsf_fails_like_a_missing_lsf_conf(lsf: Lsf) -> None:
    env = {k: v for k, v in lsf.env.items() if k != "LSF_EMULATOR_DIR"}
    done = subprocess.run(["bjobs"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 255
    assert "Unable to open file lsf.conf" in done.stderr
    done = subprocess.run(["bsub", "true"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 255
    assert done.stderr.strip().endswith("Job not submitted.")


def test_submit_messages_and_rejections(lsf: Lsf) -> None:
    done = lsf.run("bsub", "true")
    assert done.stdout == "Job <1> is submitted to default queue <normal>.\n"
    done = lsf.run("bsub", "-q", "short", "true", LSF_EMULATOR_QUEUES="normal,short")
    assert done.stdout == "Job <2> is submitted to queue <short>.\n"
    for argv, message in [
        (["-q", "nosuch", "true"], "nosuch: No such queue. Job not submitted."),
        (["-Z", "true"], "bsub: illegal option -- Z"),
        (["-W", "abc", "true"], "abc: Bad RUNLIMIT specification. Job not submitted."),
        (["-w", "done(99)", "true"], "99: No matching job found. Job not submitted."),
        (["-w", "done(1", "true"], "Dependency condition syntax error. Job not submitted."),
        (["-J", "a[3-1]", "true"], "Job array index error. Job not submitted."),
        (["-n", "100000", "true"], "Too many processors requested. Job not submitted."),
        (["-R", "rusage[mem=]", "true"], "Error in rusage section. Job not submitted."),
        (["-M", "lots", "true"], "lots: Bad argument for memory limit. Job not submitted."),
    ]:
        done = lsf.run("bsub", *argv)
        assert (done.returncode, done.stdout) == (255, ""), argv
        assert done.stderr.splitlines()[0] == message
    done = lsf.run("bsub", "true")  # nothing was submitted by the rejected ones
    assert done.stdout == "Job <3> is submitted to default queue <normal>.\n"


def test_script_directives_output_files_and_environment(lsf: Lsf) -> None:
    script = (
        "#!/bin/sh\n"
        "#BSUB -J from_script\n"
        "#BSUB -o out.%J.%I\n"
        "#BSUB -e err.%J\n"
        "#BSUB -q normal\n"
        'echo "id=$LSB_JOBID index=$LSB_JOBINDEX name=$LSB_JOBNAME queue=$LSB_QUEUE"\n'
        'echo "subcwd=$LSB_SUBCWD pwd=$(pwd) mine=$MY_VAR hosts=$LSB_HOSTS"\n'
        "echo oops >&2\n"
    )
    job = lsf.submit("-J", "from_cmdline", stdin=script, MY_VAR="kept")
    assert lsf.wait_stat(job, "DONE", "EXIT") == "DONE"
    out = (lsf.work / f"out.{job}.0").read_text()
    assert f"id={job} index=0 name=from_cmdline queue=normal" in out
    assert f"subcwd={lsf.work} pwd={lsf.work} mine=kept" in out
    assert out.startswith("Sender: LSF System")
    assert "Successfully completed." in out
    assert "The output (if any) follows:" in out
    assert (lsf.work / f"err.{job}").read_text() == "oops\n"
    info = lsf.fields(job, "job_name", "queue", "exit_code", "exec_host", "output_file")
    assert info == {
        "JOB_NAME": "from_cmdline",
        "QUEUE": "normal",
        "EXIT_CODE": "",
        "EXEC_HOST": socket.gethostname(),
        "OUTPUT_FILE": "out.%J.%I",
    }


def test_env_option_and_cwd(lsf: Lsf) -> None:
    show = "echo A=${A:-unset} B=${B:-unset} LSB_JOBID=$LSB_JOBID; pwd"
    job = lsf.submit("-oo", "none.out", "-N", "-env", "none", show, A="1")
    lsf.wait_stat(job, "DONE")
    assert (lsf.work / "none.out").read_text() == f"A=unset B=unset LSB_JOBID={job}\n{lsf.work}\n"
    job = lsf.submit(
        "-oo", "all.out", "-N", "-env", "all, ~A, B=two", "-cwd", "sub/%J", show, A="1"
    )
    lsf.wait_stat(job, "DONE")
    text = (lsf.work / "sub" / str(job) / "all.out").read_text()  # relative to the job's CWD
    assert text == f"A=unset B=two LSB_JOBID={job}\n{lsf.work}/sub/{job}\n"


def test_o_appends_and_oo_overwrites(lsf: Lsf) -> None:
    (lsf.work / "log").write_text("before\n")
    job = lsf.submit("-o", "log", "-N", "echo appended")
    lsf.wait_stat(job, "DONE")
    assert (lsf.work / "log").read_text() == "before\nappended\n"
    job = lsf.submit("-oo", "log", "-N", "echo replaced; echo to-err >&2")
    lsf.wait_stat(job, "DONE")
    assert (lsf.work / "log").read_text() == "replaced\nto-err\n"


def test_stdout_direct_streams_output_and_appends_the_report(lsf: Lsf) -> None:
    job = lsf.submit("-oo", "live", "echo first; sleep 30", LSB_STDOUT_DIRECT="Y")
    wait_for(
        lambda: (lsf.work / "live").exists() and (lsf.work / "live").read_text(),
        DEADLINE_S,
        "output",
    )
    assert (lsf.work / "live").read_text() == "first\n"
    lsf.run("bkill", str(job))
    lsf.wait_stat(job, "EXIT")
    text = (lsf.work / "live").read_text()
    assert text.startswith("first\n")
    assert "TERM_OWNER: job killed by owner." in text
    assert text.rstrip().endswith("The output (if any) is above this job summary.")


# -- arrays and dependencies ----------------------------------------------------------


def test_array_runs_at_most_n_elements_at_once(lsf: Lsf) -> None:
    marks = lsf.work / "marks"
    marks.mkdir()
    mark = f"date +%s.%N > {marks}/$LSB_JOBINDEX"
    script = f"{mark}.start; sleep 0.6; {mark}.end\n"
    job = lsf.submit("-J", "arr[1-7]%3", "-oo", "arr.%J.%I", "-N", stdin=script)
    seen = 0

    def all_done() -> bool:
        nonlocal seen
        out = lsf.run("bjobs", "-a", "-noheader", "-o", "jobindex stat", str(job)).stdout
        states = [line.split()[1] for line in out.splitlines()]
        seen = max(seen, states.count("RUN"))
        assert states.count("RUN") <= 3
        return len(states) == 7 and set(states) == {"DONE"}

    wait_for(all_done, 30, "array elements to finish")
    spans = [
        (float((marks / f"{i}.start").read_text()), float((marks / f"{i}.end").read_text()))
        for i in range(1, 8)
    ]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap == 3
    assert seen >= 1
    assert sorted(p.name for p in lsf.work.glob("arr.*")) == [f"arr.{job}.{i}" for i in range(1, 8)]
    records = json.loads(
        lsf.run("bjobs", "-a", "-o", "jobid jobindex job_name", "-json", str(job)).stdout
    )["RECORDS"]
    assert records[1] == {"JOBID": str(job), "JOBINDEX": "2", "JOB_NAME": "arr[2]"}


def test_array_index_lists_and_element_ids(lsf: Lsf) -> None:
    job = lsf.submit("-J", "odd[1,3,5-9:2]", "sleep 30")
    out = lsf.run("bjobs", "-noheader", "-o", "jobindex", str(job)).stdout
    assert out.split() == ["1", "3", "5", "7", "9"]
    done = lsf.run("bkill", f"{job}[3]")
    assert done.stdout == f"Job <{job}[3]> is being terminated\n"
    lsf.wait_stat(f"{job}[3]", "EXIT")
    assert lsf.stat(f"{job}[5]") in {"PEND", "RUN"}
    names = lsf.run("bjobs", "-noheader", "-J", "odd[7]", "-o", "job_name").stdout
    assert names.split() == ["odd[7]"]


def test_dependencies_wait_for_their_condition(lsf: Lsf) -> None:
    gate = "while [ ! -e gate ]; do sleep 0.05; done"
    first = lsf.submit("-J", "first", f"{gate}; date +%s.%N > first.end")
    then = lsf.submit("-w", f"done({first})", "date +%s.%N > then.start")
    short = lsf.submit("-w", str(first), "-J", "short", "true")  # a bare ID means done()
    waiting = {"STAT": "PEND", "PEND_REASON": "Job dependency condition not satisfied;"}
    wait_for(
        lambda: lsf.fields(then, "stat", "pend_reason") == waiting, DEADLINE_S, "the pending reason"
    )
    (lsf.work / "gate").touch()
    lsf.wait_stat(then, "DONE")
    lsf.wait_stat(short, "DONE")
    assert float((lsf.work / "then.start").read_text()) >= float(
        (lsf.work / "first.end").read_text()
    )
    failing = lsf.submit("-J", "failing", "exit 3")
    on_exit = lsf.submit("-w", f"exit({failing}) && ended(first)", "true")
    never = lsf.submit("-w", f"done({failing})", "true")
    lsf.wait_stat(on_exit, "DONE")
    wait_for(
        lambda: (
            lsf.fields(never, "pend_reason")["PEND_REASON"]
            == "Dependency condition invalid or never satisfied;"
        ),
        DEADLINE_S,
        "the never-satisfied reason",
    )
    assert lsf.stat(never) == "PEND"
    assert lsf.fields(failing, "exit_code") == {"EXIT_CODE": "3"}


# -- limits ---------------------------------------------------------------------------


def test_run_limit_kills_with_term_runlimit(lsf: Lsf) -> None:
    job = lsf.submit("-W", "1", "-oo", "rl.out", "sleep 60", LSF_EMULATOR_MINUTE_S="0.5")
    assert lsf.wait_stat(job, "EXIT") == "EXIT"
    info = lsf.fields(job, "exit_code", "exit_reason")
    assert info == {
        "EXIT_CODE": "140",
        "EXIT_REASON": "TERM_RUNLIMIT: job killed after reaching LSF run time limit",
    }
    text = (lsf.work / "rl.out").read_text()
    assert "TERM_RUNLIMIT: job killed after reaching LSF run time limit.\n" in text
    assert "Exited with exit code 140." in text


def test_memory_limit_kills_with_term_memlimit(lsf: Lsf) -> None:
    grow = "import time\nblock = bytearray(200 * 1024 * 1024)\ntime.sleep(30)\n"
    (lsf.work / "grow.py").write_text(grow)
    job = lsf.submit("-M", "50MB", "-R", "rusage[mem=64]", f"python3 {lsf.work / 'grow.py'}")
    lsf.wait_stat(job, "EXIT")
    info = lsf.fields(job, "exit_reason", "max_mem")
    assert info["EXIT_REASON"] == "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit"
    number, unit = info["MAX_MEM"].split()
    assert unit == "Mbytes"
    assert int(number) >= 50
    history = lsf.run("bhist", "-l", str(job)).stdout
    assert "TERM_MEMLIMIT" in history.replace("\n" + " " * 21, "")


# -- bkill ----------------------------------------------------------------------------


def test_bkill_pending_running_finished_and_unknown(lsf: Lsf) -> None:
    running = lsf.submit("-J", "runner", "sleep 60")
    pending = lsf.submit("-w", f"done({running})", "true")
    lsf.wait_stat(running, "RUN")
    done = lsf.run("bkill", str(pending))
    assert (done.returncode, done.stdout) == (0, f"Job <{pending}> is being terminated\n")
    assert lsf.fields(pending, "stat", "exit_code", "exit_reason", "start_time") == {
        "STAT": "EXIT",
        "EXIT_CODE": "",
        "EXIT_REASON": "TERM_OWNER: job killed by owner",
        "START_TIME": "",
    }
    done = lsf.run("bkill", "-J", "runner")
    assert done.stdout == f"Job <{running}> is being terminated\n"
    lsf.wait_stat(running, "EXIT")
    assert lsf.fields(running, "exit_code") == {"EXIT_CODE": "130"}
    done = lsf.run("bkill", str(running), "999")
    assert done.returncode == 255
    assert done.stderr.splitlines() == [
        f"Job <{running}>: Job has already finished",
        "Job <999>: No matching job found",
    ]
    history = lsf.run("bhist", "-l", "-UF", str(running)).stdout
    assert "Signal <KILL> requested by user or administrator" in history
    assert "Completed <exit>; TERM_OWNER: job killed by owner." in history


def test_bkill_zero_kills_all_unfinished_jobs(lsf: Lsf) -> None:
    jobs = [lsf.submit("sleep 60") for _ in range(3)]
    lsf.wait_stat(jobs[0], "RUN")
    done = lsf.run("bkill", "0")
    assert sorted(done.stdout.splitlines()) == sorted(
        f"Job <{j}> is being terminated" for j in jobs
    )
    for job in jobs:
        lsf.wait_stat(job, "EXIT")
    done = lsf.run("bkill", "0")
    assert (done.returncode, done.stderr) == (255, "No unfinished job found\n")


# -- bjobs and bhist ------------------------------------------------------------------


def test_bjobs_empty_and_not_found_messages(lsf: Lsf) -> None:
    done = lsf.run("bjobs")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "No unfinished job found\n")
    assert lsf.run("bjobs", "-a").stderr == "No job found\n"
    job = lsf.submit("sleep 60")
    done = lsf.run("bjobs", "-w", str(job), "99")
    assert done.returncode == 255
    assert done.stdout.splitlines()[0].split() == [
        "JOBID", "USER", "STAT", "QUEUE", "FROM_HOST", "EXEC_HOST", "JOB_NAME", "SUBMIT_TIME"
    ]  # fmt: skip
    assert done.stdout.splitlines()[1].split()[:3][0] == str(job)
    assert done.stderr == "Job <99> is not found\n"
    done = lsf.run("bjobs", "99")
    assert (done.returncode, done.stderr) == (0, "Job <99> is not found\n")
    done = lsf.run("bjobs", "99", LSB_BJOBS_CONSISTENT_EXIT_CODE="Y")
    assert done.returncode == 255
    data = json.loads(lsf.run("bjobs", "-o", "jobid stat", "-json", str(job), "99").stdout)
    assert (data["COMMAND"], data["JOBS"]) == ("bjobs", 2)
    assert data["RECORDS"][1] == {"JOBID": "99", "ERROR": "Job <99> is not found"}
    assert lsf.run("bjobs", "-J", "nosuch").stderr == "Job <nosuch> is not found\n"


def test_clean_period_hides_finished_jobs_but_bhist_keeps_them(lsf: Lsf) -> None:
    job = lsf.submit("-J", "quick", "true", LSF_EMULATOR_CLEAN_PERIOD="1")
    lsf.wait_stat(job, "DONE")
    gone = lsf.env | {"LSF_EMULATOR_CLEAN_PERIOD": "1"}
    wait_for(
        lambda: (
            "is not found"
            in subprocess.run(
                ["bjobs", str(job)], capture_output=True, text=True, env=gone, check=False
            ).stderr
        ),
        DEADLINE_S,
        "the clean period",
    )
    history = lsf.run("bhist", "-l", str(job), LSF_EMULATOR_CLEAN_PERIOD="1").stdout
    assert history.startswith(f"Job <{job}>, Job Name <quick>, User <")
    assert "Done successfully. The CPU time used is" in history
    assert "Summary of time in seconds spent in various states by" in history
    assert max(len(line) for line in history.splitlines()) <= 79
    done = lsf.run("bhist", "-l", "12345")
    assert (done.returncode, done.stderr) == (255, "No matching job found\n")


def test_bqueues_lists_the_configured_queues(lsf: Lsf) -> None:
    lsf.submit("-q", "long", "sleep 60", LSF_EMULATOR_QUEUES="normal,long")
    done = lsf.run("bqueues", LSF_EMULATOR_QUEUES="normal,long")
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "QUEUE_NAME", "PRIO", "STATUS", "MAX", "JL/U", "JL/P", "JL/H", "NJOBS", "PEND", "RUN",
        "SUSP",
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == ["normal", "long"]
    assert lines[2].split()[2:8] == ["Open:Active", "-", "-", "-", "-", "1"]


# -- fault switches -------------------------------------------------------------------


def test_delay_switch_slows_every_command(lsf: Lsf) -> None:
    started = time.monotonic()
    lsf.run("bjobs", LSF_EMULATOR_DELAY_S="0.6")
    assert time.monotonic() - started >= 0.6


def test_hang_switch_counts_down_and_faults_json_overrides_env(lsf: Lsf) -> None:
    left = lsf.run("lsf-emulator-faults", "bjobs", LSF_EMULATOR_HANG="bjobs:2")
    assert left.stdout == "2\n"
    for _ in range(2):
        with pytest.raises(subprocess.TimeoutExpired):
            lsf.run("bjobs", timeout=0.5, LSF_EMULATOR_HANG="bjobs:2")
    left = lsf.run("lsf-emulator-faults", "bjobs", LSF_EMULATOR_HANG="bjobs:2")
    assert left.stdout == "0\n"
    assert lsf.run("bjobs", timeout=5, LSF_EMULATOR_HANG="bjobs:2").stderr == (
        "No unfinished job found\n"
    )
    lsf.faults(LSF_EMULATOR_HANG="bjobs:always")
    with pytest.raises(subprocess.TimeoutExpired):
        lsf.run("bjobs", timeout=0.5)
    lsf.faults(LSF_EMULATOR_HANG=None)
    assert lsf.run("bjobs", timeout=5, LSF_EMULATOR_HANG="bjobs:always").returncode == 0


def test_not_responding_and_processing_switches(lsf: Lsf) -> None:
    started = time.monotonic()
    done = lsf.run("bjobs", LSF_EMULATOR_NOT_RESPONDING="bjobs:1")
    assert done.returncode == 255
    assert time.monotonic() - started < 5
    assert done.stderr.splitlines()[0] == "batch system daemon not responding ... still trying"
    assert lsf.run("bjobs", LSF_EMULATOR_NOT_RESPONDING="bjobs:1").returncode == 0
    lsf.faults(LSF_EMULATOR_PROCESSING="bsub:1")  # busy for one call, which then goes through
    done = lsf.run("bsub", "true")
    assert done.returncode == 0
    assert done.stdout == "Job <1> is submitted to default queue <normal>.\n"
    assert done.stderr.startswith("LSF is processing your request. Please wait ...\n")
    done = lsf.run("bsub", "true")
    assert (done.stdout, done.stderr) == ("Job <2> is submitted to default queue <normal>.\n", "")


def test_zombi_and_vanish_switches(lsf: Lsf) -> None:
    lsf.faults(LSF_EMULATOR_ZOMBI="undead*", LSF_EMULATOR_VANISH="ghost")
    zombi = lsf.submit("-J", "undead1", "-oo", "z.out", "-N", "echo started; sleep 60")
    lsf.wait_stat(zombi, "ZOMBI")
    assert lsf.run("bjobs", "-noheader", "-o", "stat").stdout.split() == ["ZOMBI"]
    script = str(lsf.state / "jobs" / f"{zombi}.sh")
    wait_for(
        lambda: not lsf.run("pgrep", "-f", script).stdout,
        DEADLINE_S,
        "the zombi's processes to end",
    )
    ghost = lsf.submit("-J", "ghost", "true")
    wait_for(
        lambda: "is not found" in lsf.run("bjobs", str(ghost)).stderr,
        DEADLINE_S,
        "the ghost to vanish",
    )
    assert "Done successfully" in lsf.run("bhist", "-l", str(ghost)).stdout


def test_stop_ends_runners_and_jobs(lsf: Lsf) -> None:
    job = lsf.submit("-J", "forever", "sleep 300")
    lsf.wait_stat(job, "RUN")
    pid = int(lsf.fields(job, "pids")["PIDS"].split(",")[0])
    done = subprocess.run(
        [str(BIN / "lsf-emulator-stop"), str(lsf.state)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0

    def dead() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_for(dead, DEADLINE_S, "the job's process to end")
