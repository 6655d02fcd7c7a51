"""Slurm output parsers and script rendering, on output recorded from a real Slurm 22.05
(tests/data/slurm; README.md there names the command behind each file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobgate.client import JobSpec, JobStatus
from jobgate.client.errors import BackendError
from jobgate.client.profile_schema import profile_from_data
from jobgate.workers.backends.slurm.script import (
    SlurmFiles,
    directives,
    format_walltime,
    parse_submitted,
    render_script,
    submit_argv,
)
from jobgate.workers.backends.slurm.status import SlurmRow, observe, parse_sacct, parse_squeue
from tests.support.submissions import submission

DATA = Path(__file__).parent / "data" / "slurm"


def rows_of(rows: list, job: str) -> list:
    return [r for r in rows if r.array_job_id == job]


@pytest.fixture(scope="module")
def finished() -> list:
    # squeue -h -t all -r -O '<SQUEUE_FORMAT>' after the jobs ended
    return parse_squeue((DATA / "squeue_format_finished_all.txt").read_text()).rows


@pytest.fixture(scope="module")
def mixed() -> list:
    # the same with jobs pending (several reasons), running, and an array 0-9%3
    return parse_squeue((DATA / "squeue_format_mixed_r.txt").read_text()).rows


def test_squeue_rows_carry_exit_codes_and_signals(finished: list) -> None:
    (three,) = rows_of(finished, "16")
    assert (three.state, three.exit_code, three.signal) == ("FAILED", 3, 0)
    seen = observe([three])
    assert (seen.status, seen.exit_code, seen.reason) == (
        JobStatus.FAILED, 3, "NonZeroExitCode (exit code 3)")  # fmt: skip
    assert seen.started_at is not None
    assert seen.finished_at is not None


@pytest.mark.parametrize(
    ("job", "status", "reason"),
    [
        ("1", JobStatus.SUCCEEDED, None),
        ("15", JobStatus.FAILED, "TIMEOUT"),
        ("17", JobStatus.FAILED, "JobLaunchFailure (signal 9)"),
        ("24", JobStatus.CANCELLED, None),
        ("3", JobStatus.FAILED, "BadConstraints (signal 1)"),  # sacct shows it as 0:1 too
    ],
)
def test_finished_states_map_to_jobgate(finished: list, job: str, status: JobStatus,
                                        reason: str | None) -> None:  # fmt: skip
    seen = observe(rows_of(finished, job))
    assert (seen.status, seen.reason) == (status, reason)


def test_pending_reasons_are_kept(mixed: list) -> None:
    reasons = {job: observe(rows_of(mixed, job)).reason for job in ("7", "9", "10", "11")}
    assert reasons == {"7": "Priority", "9": "Dependency", "10": "JobHeldUser", "11": "BeginTime"}
    assert observe(rows_of(mixed, "7")).status is JobStatus.PENDING


def test_an_array_is_one_observation_with_an_element_per_task(mixed: list) -> None:
    array = observe(rows_of(mixed, "4"))  # --array=0-9%3: two running, eight waiting
    assert array.status is JobStatus.RUNNING
    assert [e.index for e in array.elements] == list(range(10))
    running = [e.index for e in array.elements if e.status is JobStatus.RUNNING]
    assert running == [0, 1]
    assert {e.reason for e in array.elements if e.status is JobStatus.PENDING} == {"Resources"}


def test_an_array_with_failed_elements_fails(finished: list) -> None:
    array = observe(rows_of(finished, "18"))  # elements exit 0, 1, 2
    expected = [(0, JobStatus.SUCCEEDED, 0), (1, JobStatus.FAILED, 1), (2, JobStatus.FAILED, 2)]
    assert [(e.index, e.status, e.exit_code) for e in array.elements] == expected
    assert (array.status, array.reason) == (
        JobStatus.FAILED,
        "2 of 3 elements failed (indices 1, 2)",
    )


def test_a_failed_dependency_ends_the_job_and_asks_to_stop_it(finished: list) -> None:
    seen = observe(rows_of(finished, "23"))  # PENDING, DependencyNeverSatisfied
    assert (seen.status, seen.reason, seen.stop_on_scheduler) == (
        JobStatus.FAILED, "dependency failed", True)  # fmt: skip


def test_sacct_history_rows() -> None:
    # sacct -c -P -n -o jobid,jobidraw,jobname,state,exitcode,start,end -j 15,16,17,...
    rows = parse_sacct((DATA / "sacct_c_jobgate_fields.txt").read_text()).rows
    by_id = {r.array_job_id: r for r in rows}
    assert (by_id["16"].state, by_id["16"].exit_code, by_id["16"].signal) == ("FAILED", 3, 0)
    assert observe([by_id["15"]]).reason == "TIMEOUT"
    assert observe([by_id["17"]]).reason == "FAILED (signal 9)"
    assert observe([by_id["24"]]).status is JobStatus.CANCELLED


def test_lines_that_are_not_rows_are_handed_back_and_the_rows_around_them_read() -> None:
    recorded = (DATA / "squeue_format_mixed_r.txt").read_text().splitlines()
    noise = ["garbage without fields", "x|" * 12, "\x1b[0m\x01 slurm_load_jobs: ?? |garbage"]
    answer = parse_squeue("\n".join([recorded[0], *noise, *recorded[1:]]))
    assert answer.unreadable == noise
    assert answer.rows == parse_squeue("\n".join(recorded)).rows
    sacct = (DATA / "sacct_c_jobgate_fields.txt").read_text().splitlines()
    history = parse_sacct("\n".join(["1|2", sacct[0], "a|b|c|d|e|f|g"]))
    assert history.unreadable == ["1|2", "a|b|c|d|e|f|g"]
    assert history.rows == parse_sacct(sacct[0]).rows


def test_an_answer_about_the_whole_queue_yields_only_the_asked_jobs_named_by_jobgate() -> None:
    # squeue -h -a --me -t all -r -O ...: other-job (5) is not jobgate's; job 1 is not asked
    text = (DATA / "squeue_format_whole_queue_me.txt").read_text()
    answer = parse_squeue(text, among={"2", "4", "5", "6", "7"}, name_prefix="jobgate-")
    assert answer.unreadable == []
    assert [(r.array_job_id, r.index, r.state) for r in answer.rows] == [
        ("4", None, "FAILED"),
        ("6", 1, "PENDING"),
        ("7", None, "PENDING"),
        ("6", 0, "RUNNING"),
    ]
    assert observe([answer.rows[0]]).exit_code == 3
    assert answer.rows == [r for r in parse_squeue(text).rows if r.array_job_id in {"4", "6", "7"}]


def test_lines_of_an_answer_about_the_whole_queue_that_are_not_rows_are_handed_back() -> None:
    recorded = (DATA / "squeue_format_whole_queue_me.txt").read_text().splitlines()
    noise = "\x1b[0m\x01 slurm_load_jobs: ?? |garbage"
    answer = parse_squeue("\n".join([noise, *recorded]), among={"4"}, name_prefix="jobgate-")
    assert answer.unreadable == [noise]
    assert [r.array_job_id for r in answer.rows] == ["4"]


def test_sbatch_parsable_output() -> None:
    assert parse_submitted((DATA / "sbatch_parsable.txt").read_text()) == "1"
    assert parse_submitted("1234;cluster-a\n") == "1234"
    with pytest.raises(BackendError, match="not a job id"):
        parse_submitted("sbatch: error: Batch job submission failed\n")


PROFILE = profile_from_data({
    "name": "hpc", "backend": "slurm", "job_name_prefix": "jg",
    "slurm": {"partition": "batch", "account": "lab", "qos": "normal", "constraint": "ib",
              "extra_args": ["--exclusive"], "work_dir": "/shared/jobgate"},
})  # fmt: skip


def test_directives_from_spec_and_profile(tmp_path: Path) -> None:
    spec = JobSpec(
        name="fit", command="python fit.py", array="0-9%2", working_dir="/data/run",
        resources={"cpus": 4, "memory_mb": 8000, "gpus": 2, "walltime_s": 93784, "queue": "gpu"},
    )  # fmt: skip
    files = SlurmFiles(tmp_path, "01m7zp0000000000000000000a")
    options = directives(submission(files.job_id, spec, "41", "42"), PROFILE, files)
    assert options == [
        "--job-name=jg-01m7zp0000000000000000000a",
        f"--output={tmp_path}/01m7zp0000000000000000000a.%a.out",
        f"--error={tmp_path}/01m7zp0000000000000000000a.%a.err",
        "--cpus-per-task=4",
        "--chdir=/data/run",
        "--mem=8000M",
        "--gres=gpu:2",
        "--time=1-02:03:04",
        "--partition=gpu",
        "--account=lab",
        "--qos=normal",
        "--constraint=ib",
        "--array=0-9%2",
        "--dependency=afterok:41:42",
    ]
    script = render_script(options, files, array=True)
    assert script.startswith("#!/bin/sh\n#SBATCH --job-name=jg-01m7zp0000000000000000000a\n")
    assert f"\ncode=0\n{files.program} || code=$?\n" in script
    job_args = JobSpec(name="x", command="true", slurm={"extra_args": ["--nice=5"]})
    assert submit_argv(PROFILE, job_args, files.script) == [
        "sbatch", "--parsable", "--exclusive", "--nice=5", str(files.script)]  # fmt: skip


def test_whitespace_cannot_enter_a_directive(tmp_path: Path) -> None:
    profile = PROFILE.model_copy(deep=True)
    assert profile.slurm is not None
    profile.slurm.constraint = "a b"
    with pytest.raises(BackendError, match="Slurm directives cannot contain whitespace"):
        directives(submission("x", JobSpec(name="x", command="true")), profile,
                   SlurmFiles(tmp_path, "x"))  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(59, "00:00:59"), (3600, "01:00:00"), (86400, "1-00:00:00"), (93784, "1-02:03:04")],
)
def test_walltime_format(seconds: int, text: str) -> None:
    assert format_walltime(seconds) == text


def _row(state: str, reason: str = "None") -> SlurmRow:
    return SlurmRow(array_job_id="7", index=None, name="jobgate-x", state=state, reason=reason,
                    start=None, end=None, exit_code=0, signal=15)  # fmt: skip


def test_preemption_is_cancellation_unless_the_profile_requeues() -> None:
    # No recording: preemption needs a PreemptType; the state name is Slurm's documented one.
    assert observe([_row("PREEMPTED")]).status is JobStatus.CANCELLED
    assert observe([_row("PREEMPTED")]).reason == "PREEMPTED"
    requeued = observe([_row("PREEMPTED")], requeue_preempted=True)
    assert (requeued.status, requeued.reason) == (JobStatus.PENDING, "preempted, requeued")


@pytest.mark.parametrize("state", ["OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"])
def test_other_failures_keep_slurms_state_as_reason(state: str) -> None:
    seen = observe([_row(state)])
    assert (seen.status, seen.reason) == (JobStatus.FAILED, state)


def test_an_unheard_of_state_is_unknown_not_success() -> None:
    seen = observe([_row("SOMETHING_NEW")])
    assert (seen.status, seen.reason) == (JobStatus.UNKNOWN, "Slurm state SOMETHING_NEW")
