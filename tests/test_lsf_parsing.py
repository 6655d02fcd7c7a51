"""LSF output parsers and script rendering, on the samples in tests/data/lsf (their
README names the source of each: IBM examples, real output shown publicly, or
assembled from the documented format; tests/emulators/lsf/FORMATS.md has the facts)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from jobgate.client import JobSpec, JobStatus
from jobgate.client.errors import BackendError
from jobgate.client.profile_schema import profile_from_data
from jobgate.workers.backends.lsf.script import (
    LsfFiles,
    directives,
    memory_in_units,
    parse_submitted,
    render_script,
    submit_argv,
)
from jobgate.workers.backends.lsf.status import (
    LsfRow,
    base_name,
    lsf_time,
    nothing_left_to_cancel,
    observe,
    parse_bhist,
    parse_bjobs,
    row_state,
)
from tests.support.submissions import submission

DATA = Path(__file__).parent / "data" / "lsf"


def sample(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(
    ("name", "job_id"),
    [
        ("bsub_submitted.txt", "1234"),
        ("bsub_submitted_default_queue.txt", "21"),
        ("bsub_array_submitted.txt", "1"),
        ("bsub_busy_then_submitted.txt", "12345678"),  # LSF's "please wait" lines first
    ],
)
def test_bsub_answers(name: str, job_id: str) -> None:
    assert parse_submitted(sample(name)) == job_id


@pytest.mark.parametrize(
    "name",
    ["bsub_no_such_queue.stderr", "bsub_bad_rusage.stderr", "bsub_too_many_processors.stderr"],
)
def test_a_refused_submission_is_an_error_that_quotes_lsf(name: str) -> None:
    with pytest.raises(BackendError, match="Job not submitted"):
        parse_submitted(sample(name))


def test_bjobs_json_single_and_finished_jobs() -> None:
    answer = parse_bjobs(sample("bjobs_json_mixed_finished.json"), "", 0)
    states = {r.job_id: row_state(r) for r in answer.rows}
    assert answer.not_found == set()
    assert states["1230"].status is JobStatus.SUCCEEDED
    assert states["1230"].exit_code == 0
    assert (states["1231"].status, states["1231"].exit_code, states["1231"].reason) == (
        JobStatus.FAILED, 3, "exit code 3")  # fmt: skip
    assert states["1232"].reason == "exit code 140 (signal 12)"  # no exit_reason asked here
    assert states["1234"].status is JobStatus.RUNNING
    assert states["1234"].finished_at is None  # a running job's FINISH_TIME is a projection
    assert states["1235"].status is JobStatus.PENDING
    started = states["1234"].started_at
    assert started is not None
    assert (started.month, started.day, started.hour, started.minute) == (11, 21, 20, 1)


def test_an_answer_about_all_jobs_yields_only_the_records_of_the_asked_ids() -> None:
    recorded = sample("bjobs_json_mixed_finished.json")
    answer = parse_bjobs(recorded, "", 0, among={"1231", "1234", "999"})
    assert [r.job_id for r in answer.rows] == ["1231", "1234"]
    everything = parse_bjobs(recorded, "", 0).rows
    assert answer.rows == [r for r in everything if r.job_id in {"1231", "1234"}]


def test_bjobs_json_array_elements_share_the_array_id() -> None:
    answer = parse_bjobs(sample("bjobs_json_array.json"), "", 0)
    assert {r.job_id for r in answer.rows} == {"2000"}
    assert [(r.index, base_name(r.name)) for r in answer.rows] == [
        (1, "arr"), (2, "arr"), (3, "arr")]  # fmt: skip
    seen = observe(answer.rows)
    assert seen.status is JobStatus.RUNNING
    assert [e.status for e in seen.elements] == [
        JobStatus.SUCCEEDED, JobStatus.RUNNING, JobStatus.PENDING]  # fmt: skip


def test_unknown_ids_in_json_or_on_stderr_are_not_found_not_errors() -> None:
    answer = parse_bjobs(sample("bjobs_json_not_found.json"), "", 255)
    assert [r.job_id for r in answer.rows] == ["1234"]
    assert answer.not_found == {"9999"}
    answer = parse_bjobs(sample("bjobs_json_single.json"), "Job <77> is not found\n", 255)
    assert ([r.job_id for r in answer.rows], answer.not_found) == (["1234"], {"77"})
    assert parse_bjobs("", sample("bjobs_not_found.stderr"), 0).not_found == {"123"}
    assert parse_bjobs("", sample("bjobs_no_unfinished.stderr"), 0).rows == []
    assert parse_bjobs("", "No job found\n", 255).rows == []
    with pytest.raises(BackendError, match="exit 255"):
        parse_bjobs("", "", 255)


def test_bjobs_reasons_map_to_cancelled_and_pending_text() -> None:
    rows = parse_bjobs(sample("bjobs_json_reasons.json"), "", 0).rows
    killed, waiting = (row_state(r) for r in rows)
    assert (killed.status, killed.reason) == (
        JobStatus.CANCELLED,
        "TERM_OWNER: job killed by owner",
    )
    assert (waiting.status, waiting.reason) == (
        JobStatus.PENDING,
        "New job is waiting for scheduling",
    )


def test_real_done_record_with_escaped_slashes() -> None:
    # Not our field list (no JOBINDEX): a plain job, DONE with an empty EXIT_CODE
    (row,) = parse_bjobs(sample("bjobs_json_done_roddy.json"), "", 0).rows
    assert (row.job_id, row.index, row_state(row).status, row_state(row).exit_code) == (
        "22005", None, JobStatus.SUCCEEDED, 0)  # fmt: skip


def test_what_bjobs_cannot_mean_is_an_error_naming_bjobs() -> None:
    with pytest.raises(BackendError, match="without JOBID"):
        parse_bjobs(sample("bjobs_json_psusp_buildtest.json"), "", 0)  # asked without jobid
    with pytest.raises(BackendError, match="bjobs -json printed"):
        parse_bjobs('{"COMMAND":"bjobs","JOBS":1', "", 0)
    with pytest.raises(BackendError, match=r"bjobs failed .*LSF is down"):
        parse_bjobs("", "LSF is down. Please wait ...\n", 255)


def test_lines_around_the_json_are_handed_back_and_its_records_read() -> None:
    recorded = sample("bjobs_json_array.json")
    noisy = f"LSF is processing your request. Please wait ...\nnoise {{ x\n{recorded}\n}} junk\n"
    answer = parse_bjobs(noisy, "", 0)
    assert answer.rows == parse_bjobs(recorded, "", 0).rows
    assert answer.around == ["LSF is processing your request. Please wait ...", "noise { x",
                             "} junk"]  # fmt: skip
    assert parse_bjobs("garbage\n", "", 0).around == ["garbage"]
    with pytest.raises(BackendError, match="bjobs -json printed what jobgate cannot read"):
        parse_bjobs("noise { x\n", "", 0)


def row(stat: str, code: int | None = None, exit_reason: str = "", pend: str = "") -> LsfRow:
    return LsfRow("7", None, "jg-x", stat, code, exit_reason, pend, None, None)


@pytest.mark.parametrize(
    ("lsf_row", "status", "reason"),
    [
        (row("EXIT", 140, "TERM_RUNLIMIT: job killed after reaching LSF run time limit"),
         JobStatus.FAILED, "timeout (TERM_RUNLIMIT)"),
        (row("EXIT", 130, "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit"),
         JobStatus.FAILED, "out of memory (TERM_MEMLIMIT)"),
        (row("EXIT", 130, "TERM_OWNER: job killed by owner"),
         JobStatus.CANCELLED, "TERM_OWNER: job killed by owner"),
        (row("EXIT", None, "TERM_ADMIN: job killed by root or LSF administrator"),
         JobStatus.CANCELLED, "TERM_ADMIN: job killed by root or LSF administrator"),
        (row("EXIT", 1, "TERM_CWD_NOTEXIST: current working directory not accessible"),
         JobStatus.FAILED, "TERM_CWD_NOTEXIST: current working directory not accessible"),
        (row("ZOMBI"), JobStatus.FAILED,
         "ZOMBI: killed or ended while LSF could not reach its host"),
        (row("PSUSP"), JobStatus.SUSPENDED, "PSUSP"),
        (row("USUSP"), JobStatus.SUSPENDED, "USUSP"),
        (row("SSUSP"), JobStatus.SUSPENDED, "SSUSP"),
        (row("UNKWN"), JobStatus.UNKNOWN, "UNKWN"),
        (row("WAIT"), JobStatus.PENDING, None),
        (row("PEND", pend="Dependency condition invalid or never satisfied;"),
         JobStatus.FAILED, "dependency failed"),
        (row("PEND", pend="Job dependency condition not satisfied;"),
         JobStatus.PENDING, "Job dependency condition not satisfied"),
        (row("FROZEN"), JobStatus.UNKNOWN, "LSF state FROZEN"),
    ],
)  # fmt: skip
def test_states_and_exit_reasons(lsf_row: LsfRow, status: JobStatus, reason: str | None) -> None:
    state = row_state(lsf_row)
    assert (state.status, state.reason) == (status, reason)


def test_a_failed_dependency_asks_the_gateway_to_stop_the_job_on_lsf() -> None:
    seen = observe([row("PEND", pend="Dependency condition invalid or never satisfied;")])
    assert (seen.status, seen.stop_on_scheduler) == (JobStatus.FAILED, True)


@pytest.mark.parametrize(
    ("name", "stat", "code", "reason", "status"),
    [
        ("bhist_l_done.txt", "DONE", 0, "", JobStatus.SUCCEEDED),
        ("bhist_l_exit_code.txt", "EXIT", 3, "", JobStatus.FAILED),
        ("bhist_l_runlimit.txt", "EXIT", 140,
         "TERM_RUNLIMIT: job killed after reaching LSF run time limit", JobStatus.FAILED),
        ("bhist_l_memlimit.txt", "EXIT", 130,
         "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit", JobStatus.FAILED),
        ("bhist_l_killed_by_owner.txt", "EXIT", 130, "TERM_OWNER: job killed by owner",
         JobStatus.CANCELLED),
    ],
)  # fmt: skip
def test_bhist_long_format_wrapped_at_79_columns(
    name: str, stat: str, code: int, reason: str, status: JobStatus
) -> None:
    (ended,) = parse_bhist(sample(name), "", 0)
    assert (ended.stat, ended.exit_code, ended.exit_reason) == (stat, code, reason)
    assert row_state(ended).status is status
    assert ended.start is not None
    assert ended.finish is not None
    assert ended.finish > ended.start


def test_bhist_blocks_of_several_jobs_and_unknown_ones() -> None:
    separator = "\n" + "-" * 78 + "\n\n"
    text = separator.join([sample("bhist_l_done.txt"), sample("bhist_l_runlimit.txt")])
    assert [r.job_id for r in parse_bhist(text, "", 0)] == ["1230", "1232"]
    assert parse_bhist("", "No matching job found\n", 255) == []
    with pytest.raises(BackendError, match="bhist failed"):
        parse_bhist("", "bhist: cannot open lsb.events\n", 255)


def test_times_without_a_year_are_never_in_the_future() -> None:
    new_year = datetime(2027, 1, 2, 12, 0).astimezone()
    assert lsf_time("Dec 28 19:56 L", new_year) == datetime(2026, 12, 28, 19, 56).astimezone()
    assert lsf_time("Jan  1 09:59 L", new_year) == datetime(2027, 1, 1, 9, 59).astimezone()
    assert lsf_time("", new_year) is None
    assert lsf_time("-", new_year) is None


@pytest.mark.parametrize(
    ("names", "fine"),
    [
        (["bkill_terminated.txt"], True),
        (["bkill_already_finished.stderr", "bkill_not_found.stderr"], True),
        ([], False),  # an answer LSF gives for no such case: not taken as done
    ],
)
def test_bkill_answers_that_leave_nothing_to_stop(names: list[str], fine: bool) -> None:
    said = "".join(sample(n) for n in names) or "bkill: Permission denied\n"
    assert nothing_left_to_cancel("", said) is fine


PROFILE = profile_from_data({
    "name": "lsf", "backend": "lsf", "job_name_prefix": "jg",
    "lsf": {"queue": "normal", "project": "lab", "lsf_units": "KB", "extra_args": ["-x"],
            "extra_directives": ["#BSUB -R select[type==any]"], "login_shell": "/bin/bash",
            "work_dir": "/shared/jobgate"},
})  # fmt: skip


def test_directives_from_spec_and_profile(tmp_path: Path) -> None:
    spec = JobSpec(
        name="fit", command="python fit.py", array="1-10%3", working_dir="/data/run",
        resources={"cpus": 4, "memory_mb": 8000, "gpus": 2, "walltime_s": 5400, "queue": "gpu"},
        lsf={"directives": ["-app big"], "extra_args": ["-B"]},
    )  # fmt: skip
    files = LsfFiles(tmp_path, "01m7zp0000000000000000000a")
    options = directives(submission(files.job_id, spec, "41", "42"), PROFILE, files)
    assert options == [
        "-J jg-01m7zp0000000000000000000a[1-10]%3",
        f"-o {tmp_path}/lsf-%J.%I.out",
        f"-e {tmp_path}/lsf-%J.%I.err",
        "-n 4",
        "-R span[hosts=1]",
        "-cwd /data/run",
        "-env all",
        "-M 8192000",
        "-R rusage[mem=8192000]",
        "-gpu num=2",
        "-W 90",
        "-q gpu",
        "-P lab",
        "-L /bin/bash",
        "-w done(41)&&done(42)",
        "-R select[type==any]",
        "-app big",
    ]
    script = render_script(options, files, array=True)
    assert script.startswith("#!/bin/sh\n#BSUB -J jg-01m7zp0000000000000000000a[1-10]%3\n")
    assert 'base="$base.$LSB_JOBINDEX"' in script
    assert f'\ncode=0\n{files.program} > "$base.out" 2> "$base.err" || code=$?\n' in script
    assert submit_argv(PROFILE, spec) == ["bsub", "-x", "-B"]


def test_memory_units_round_up_and_skipped_directives(tmp_path: Path) -> None:
    assert [memory_in_units(1500, u) for u in ("KB", "MB", "GB", "TB")] == [1536000, 1500, 2, 1]
    profile = PROFILE.model_copy(deep=True)
    assert profile.lsf is not None
    profile.lsf.directives_skip = ["rusage", "span["]
    spec = JobSpec(name="x", command="true", resources={"memory_mb": 100})
    options = directives(submission("x", spec), profile, LsfFiles(tmp_path, "x"))
    assert not any("rusage" in d or "span[" in d for d in options)
    assert "-M 102400" in options


def test_a_directive_value_that_could_break_out_of_quotes_is_refused(tmp_path: Path) -> None:
    spec = JobSpec(name="x", command="true", working_dir='/data/a "b"')
    with pytest.raises(BackendError, match="cannot contain quotes"):
        directives(submission("x", spec), PROFILE, LsfFiles(tmp_path, "x"))
    spaced = JobSpec(name="x", command="true", working_dir="/data/my run")
    options = directives(submission("x", spaced), PROFILE, LsfFiles(tmp_path, "x"))
    assert '-cwd "/data/my run"' in options


def test_env_none_passes_only_the_jobs_variables_by_name(tmp_path: Path) -> None:
    profile = PROFILE.model_copy(deep=True)
    assert profile.lsf is not None
    profile.lsf.env_mode = "none"
    spec = JobSpec(name="x", command="true", env={"B_VAR": "2", "A_TOKEN": "s3cret"})
    options = directives(submission("x", spec), profile, LsfFiles(tmp_path, "x"))
    assert '-env "JOBGATE_JOB_ID, JOBGATE_CLUSTER, A_TOKEN, B_VAR"' in options
    assert not any("s3cret" in d for d in options)
