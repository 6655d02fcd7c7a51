"""A job's own scheduler options (slurm.extra_args, lsf.directives, lsf.extra_args) can
neither take over the options jobgate sets itself nor ask for more than the policy
allows: only what the profile lists (job_options) passes, checked like the typed fields."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from jobgate.client import Gateway, JobSpec, JobStatus, SpecInvalidError
from jobgate.client.errors import BackendError
from jobgate.client.models import PolicyLevel
from jobgate.client.policy import evaluate_policy
from jobgate.client.profile_schema import profile_from_data
from jobgate.client.profiles import parse_profile
from jobgate.client.scheduler_options import slurm_time_s
from jobgate.workers.backends.lsf.script import LsfFiles, directives
from jobgate.workers.backends.lsf.script import submit_argv as bsub_argv
from jobgate.workers.backends.slurm.script import submit_argv as sbatch_argv
from tests.support.lsf import LsfEmulator, lsf_profile
from tests.support.submissions import submission
from tests.support.waiting import TIMEOUT_S
from tests.support.workers import WorkerFactory

LIMITS = {"max_cpus": 16, "max_memory_mb": 8000, "max_gpus": 2, "max_walltime_s": 3600}


def slurm(job_options: list[str] | None = None) -> Any:
    return profile_from_data({"name": "hpc", "backend": "slurm", "policy": LIMITS,
                              "slurm": {"job_options": job_options or []}})  # fmt: skip


def lsf(job_options: list[str] | None = None) -> Any:
    settings = {"job_options": job_options or [], "lsf_units": "MB"}
    return profile_from_data({"name": "lsf", "backend": "lsf", "policy": LIMITS, "lsf": settings})


def blocks(spec: JobSpec, profile: Any) -> list[str]:
    return [f"{f.code}: {f.message}" for f in evaluate_policy(spec, profile)
            if f.level is PolicyLevel.BLOCK]  # fmt: skip


def sbatch_spec(*args: str) -> JobSpec:
    return JobSpec(name="x", command="true", resources={"walltime_s": 60},
                   slurm={"extra_args": list(args)})  # fmt: skip


def lsf_spec(directives: list[str] = [], extra_args: list[str] = []) -> JobSpec:  # noqa: B006
    return JobSpec(name="x", command="true", resources={"walltime_s": 60},
                   lsf={"directives": directives, "extra_args": extra_args})  # fmt: skip


@pytest.mark.parametrize(
    "arg",
    ["--cpus-per-task=512", "--time=UNLIMITED", "--gres=gpu:8", "--nice=5", "-p", "--qos=hi"],
)
def test_no_job_option_passes_unless_the_profile_lists_it(arg: str) -> None:
    args = [arg, "admin"] if arg == "-p" else [arg]
    (found,) = blocks(sbatch_spec(*args), slurm())
    assert found == (
        f"job-options: slurm.extra_args {arg.split('=')[0]}: not allowed here (jobs may pass: "
        "none); to allow it, list it in the cluster profile's job_options"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--job-name=jg-01m7zp0000000000000000000a"],
        ["--output=/home/victim/.bashrc"],
        ["-o", "/home/victim/.bashrc"],
        ["-o/home/victim/.bashrc"],
        ["--array=0-99999"],
        ["--chdir", "/"],
        ["--dependency=singleton"],
        ["--export=ALL,JOBGATE_JOB_ID=x"],
        ["--wrap=rm -rf ~"],
        ["-H"],
    ],
)
def test_options_jobgate_owns_are_refused_always(args: list[str], tmp_path: Path) -> None:
    profile = slurm(["--cpus-per-task", "--nice", "--comment"])
    (found,) = blocks(sbatch_spec(*args), profile)
    assert "jobgate sets it itself; drop it" in found
    with pytest.raises(BackendError, match="jobgate sets it itself"):
        sbatch_argv(profile, sbatch_spec(*args), tmp_path / "x.sbatch")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--out=/home/victim/.bashrc"], "--out is not a sbatch option jobs may pass"),
        (["--job=x"], "--job is not a sbatch option"),
        (["/tmp/evil.sh"], "would take it as the job's script"),
        (["--comment", "x", "evil.sh"], "'evil.sh' is not an option"),
        (["--"], "'--' is not an option"),
        (["-Hc4"], "-Hc4: give each option in a word of its own"),
        (["--comment"], "--comment needs a value"),
        (["--parsable=1"], "--parsable takes no value"),
    ],
)
def test_words_sbatch_would_read_otherwise_are_refused(
    args: list[str], problem: str, tmp_path: Path
) -> None:
    profile = slurm(["--comment", "--cpus-per-task"])
    (found,) = blocks(sbatch_spec(*args), profile)
    assert problem in found
    with pytest.raises(BackendError, match=r"slurm\.extra_args: "):
        sbatch_argv(profile, sbatch_spec(*args), tmp_path / "x.sbatch")


def test_a_value_that_looks_like_an_option_is_still_only_a_value(tmp_path: Path) -> None:
    profile = slurm(["--comment"])
    spec = sbatch_spec("--comment", "--job-name=x")
    assert blocks(spec, profile) == []
    assert sbatch_argv(profile, spec, tmp_path / "x.sbatch")[-3:-1] == ["--comment", "--job-name=x"]


RESOURCES = ["--cpus-per-task", "--ntasks", "--nodes", "--mem", "--mem-per-cpu", "--gres",
             "--gpus", "--time"]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--cpus-per-task=512"], "cpus-over-max"),
        (["-c", "512"], "cpus-over-max"),
        (["-c512"], "cpus-over-max"),
        (["--ntasks", "64"], "cpus-over-max"),
        (["-N", "2-40"], "cpus-over-max"),
        (["--time=UNLIMITED"], "walltime-over-max"),
        (["-t", "1-00:00:00"], "walltime-over-max"),
        (["--time=61"], "walltime-over-max"),
        (["--time=0"], "walltime-over-max"),
        (["--mem=0"], "memory-over-max"),
        (["--gres=gpu:8"], "gpus-over-max"),
        (["--gres=gpu:a100:3,tmpfs:1"], "gpus-over-max"),
        (["-G", "a100:4"], "gpus-over-max"),
        (["--mem=16G"], "memory-over-max"),
        (["--mem-per-cpu=1G", "-c", "16"], "memory-over-max"),
        (["--gres=gpu:8(S:0)"], "job-options"),
        (["--time=\u0661\u0662"], "job-options"),
        (["--mem=lots"], "job-options"),
    ],
)
def test_allowed_resource_options_are_held_to_the_policy_limits(args: list[str], code: str) -> None:
    found = blocks(sbatch_spec(*args), slurm(RESOURCES))
    assert [f.split(":")[0] for f in found] == [code], found


def test_allowed_resource_options_within_the_limits_pass() -> None:
    spec = sbatch_spec("-c", "8", "--ntasks=2", "--time=60", "--gres=gpu:2", "--mem=4G")
    assert blocks(spec, slurm(RESOURCES)) == []
    assert [slurm_time_s(t) for t in ("90", "1:30", "1:00:00", "2-3", "1-02:03:04")] == [
        5400, 90, 3600, 183600, 93784]  # fmt: skip


def test_a_profile_cannot_let_jobs_pass_what_jobgate_owns() -> None:
    with pytest.raises(SpecInvalidError, match=r"slurm\.job_options: Value error, --job-name: "
                       "jobgate sets it itself"):  # fmt: skip
        parse_profile("name: c\nbackend: slurm\nslurm:\n  job_options: [--job-name]\n", source="p")
    with pytest.raises(SpecInvalidError, match="--jobname is not a sbatch option jobgate knows"):
        parse_profile("name: c\nbackend: slurm\nslurm:\n  job_options: [--jobname]\n", source="p")
    with pytest.raises(SpecInvalidError, match="-J: jobgate sets it itself"):
        parse_profile("name: c\nbackend: lsf\nlsf:\n  job_options: [-J]\n", source="p")


def test_lsf_options_from_the_issue_are_refused_by_default() -> None:
    spec = lsf_spec(["-n 512", "-W 99999"], ["-q", "admin"])
    found = blocks(spec, lsf())
    assert [f.split(" (")[0] for f in found] == [
        "job-options: lsf.directives/extra_args -n: not allowed here",
        "job-options: lsf.directives/extra_args -W: not allowed here",
        "job-options: lsf.directives/extra_args -q: not allowed here",
    ]
    (lists,) = blocks(lsf_spec(["-q admin"]), lsf(["-n", "-W"]))
    assert "(jobs may pass: -W, -n); to allow it, list it in the cluster profile's" in lists


def test_allowed_lsf_options_are_held_to_the_policy_limits() -> None:
    profile = lsf(["-n", "-W", "-q", "-M", "-R", "-gpu"])
    over = {
        "cpus-over-max": lsf_spec(["-n 512"]),
        "walltime-over-max": lsf_spec(extra_args=["-W", "99999"]),
        "memory-over-max": lsf_spec(['-R "select[mem>1] rusage[mem=9000]"']),
        "gpus-over-max": lsf_spec(extra_args=["-gpu", "num=4:mode=shared"]),
    }
    for code, spec in over.items():
        assert [f.split(":")[0] for f in blocks(spec, profile)] == [code]
    assert [f.split(":")[0] for f in blocks(lsf_spec(["-n4,32"]), profile)] == ["cpus-over-max"]
    assert [f.split(":")[0] for f in blocks(lsf_spec(["-M 9GB"]), profile)] == ["memory-over-max"]
    fine = lsf_spec(["-n 8", "-W 1:00", "-q admin"], ["-M", "4000", "-gpu", "-"])
    assert blocks(fine, profile) == []


@pytest.mark.parametrize(
    ("field", "given"),
    [
        ("lsf.directives", {"directives": ["-q normal -J evil"]}),
        ("lsf.directives", {"directives": ["-oo /home/victim/.bashrc"]}),
        ("lsf.directives", {"directives": ["-Jevil"]}),
        ("lsf.directives", {"directives": ["-cwd/home/victim"]}),
        ("lsf.extra_args", {"extra_args": ["--help"]}),
        ("lsf.directives", {"directives": ["-q 'unclosed"]}),
        ("lsf.extra_args", {"extra_args": ["-cwd", "/"]}),
        ("lsf.extra_args", {"extra_args": ["-env", "all"]}),
        ("lsf.extra_args", {"extra_args": ["/tmp/evil.sh"]}),
    ],
)
def test_lsf_options_jobgate_owns_never_reach_bsub(
    field: str, given: dict[str, list[str]], tmp_path: Path
) -> None:
    profile = lsf(["-q", "-n"])
    spec = JobSpec(name="x", command="true", lsf=given)
    assert any(f.startswith("job-options:") for f in blocks(spec, profile))
    with pytest.raises(BackendError, match=f"{field}: "):
        _ = [directives(submission("x", spec), profile, LsfFiles(tmp_path, "x")),
             bsub_argv(profile, spec)]  # fmt: skip


def test_the_worker_never_passes_jobgates_own_options_whatever_the_overrides(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    """allow_policy_risk on a profile that allows overrides bypasses BLOCK findings, so
    the job reaches the worker's submit: its -J (jobgate finds its jobs by that name)
    still never reaches bsub."""
    path = lsf_profile(tmp_path, policy={"allow_overrides": True}, lsf={"job_options": ["-q"]})
    start_worker(path, env=lsf.env())
    spec = JobSpec(name="evil", command="true", lsf={"directives": ["-q normal -J jobgate-x"]})
    record = gateway.submit(spec, "lsfc", allow_policy_risk=True).wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert record.backend_id is None
    assert record.reason == "submit failed: lsf.directives: -J: jobgate sets it itself"
    assert [f.code for f in record.findings if f.level is PolicyLevel.BLOCK] == ["job-options"]


@pytest.mark.parametrize(
    ("env", "found"),
    [
        ({"SBATCH_JOB_NAME": "x"}, "env SBATCH_JOB_NAME (--job-name): jobgate sets it itself"),
        ({"SBATCH_ARRAY_INX": "0-99999"}, "env SBATCH_ARRAY_INX (--array): jobgate sets it"),
        ({"SBATCH_OPEN_MODE": "append"}, "env SBATCH_OPEN_MODE (--open-mode): jobgate sets"),
        ({"SLURM_CONF": "/tmp/evil.conf"}, "env SLURM_CONF chooses the scheduler's configuration"),
        ({"SBATCH_DEBUG": "1"}, "env SBATCH_DEBUG: sbatch reads it as an option jobs may not"),
    ],
)
def test_options_a_jobs_env_passes_to_sbatch_that_jobgate_owns_are_refused_always(
    env: dict[str, str], found: str, tmp_path: Path
) -> None:
    spec = JobSpec(name="x", command="true", env=env)
    profile = slurm(RESOURCES)
    assert any(found in f for f in blocks(spec, profile)), blocks(spec, profile)
    with pytest.raises(BackendError, match=re.escape(found)):
        sbatch_argv(profile, spec, tmp_path / "x.sbatch")


def test_options_a_jobs_env_passes_to_sbatch_need_the_profile_and_the_limits() -> None:
    spec = JobSpec(name="x", command="true", env={"SBATCH_TIMELIMIT": "UNLIMITED"})
    (refused,) = blocks(spec, slurm())
    assert refused.startswith("job-options: env SBATCH_TIMELIMIT (--time): not allowed")
    (over,) = blocks(spec, slurm(["--time"]))
    assert (
        over == "walltime-over-max: env asks for unlimited s of walltime; cluster hpc allows 3600"
    )
    mem = JobSpec(name="x", command="true", env={"SBATCH_MEM_PER_NODE": "64G"},
                  slurm={"extra_args": ["--nodes=1"]})  # fmt: skip
    assert [f.split(":")[0] for f in blocks(mem, slurm(["--mem", "--nodes"]))] == [
        "memory-over-max"
    ]
    assert blocks(JobSpec(name="x", command="true", env={"SBATCH_NO_REQUEUE": "1"}),
                  slurm(["--no-requeue"])) == []  # fmt: skip


@pytest.mark.parametrize("name", ["LSB_DEFAULTQUEUE", "LSB_DEFAULTPROJECT", "LSF_ENVDIR"])
def test_lsf_variables_in_a_jobs_env_never_reach_bsub(name: str) -> None:
    spec = JobSpec(name="x", command="true", env={name: "admin"})
    assert any(f.startswith(f"job-options: env {name}") for f in blocks(spec, lsf(["-q"])))
    with pytest.raises(BackendError, match=f"env {name}"):
        bsub_argv(lsf(["-q"]), spec)
