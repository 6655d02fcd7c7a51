"""Submitting through slurmrestd (``slurm.submit_via: slurmrestd``) against the real Slurm
and the slurmrestd that ``scripts/slurm-local start --rest`` adds to it.

The job must be the one sbatch makes: the same Slurm record and the same environment,
limits and umask inside the job. Slurm shows a job slurmrestd submitted with
``Command=(null)`` (sbatch's shows the script's path): that tells which way a job went.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import resource
import shutil
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobgate.client import Gateway, JobSpec, JobStatus
from jobgate.client.errors import BackendError, SchedulerUnavailableError
from jobgate.client.ids import new_job_id
from jobgate.client.profile_schema import SlurmProfile
from jobgate.client.profiles import load_profile
from jobgate.workers.backends.base import JobSubmission
from jobgate.workers.backends.slurm.backend import SlurmBackend
from jobgate.workers.backends.slurm.rest import RLIMITS, NotForRest, propagated_limits
from tests.support.slurm import TIMEOUT_S, LocalSlurm, slurm_profile
from tests.support.waiting import wait_for
from tests.support.workers import WorkerFactory

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
#: Fields of `scontrol show job -o` that differ between any two submits of one job.
PER_SUBMIT = re.compile(
    r"^(JobId|ArrayJobId|Priority|AllocNode:Sid|Command|\w*Time|LastSchedEval)$"
)


@pytest.fixture(scope="module")
def rest_socket(slurm: LocalSlurm) -> Path:
    """The session's Slurm with slurmrestd on its unix socket (skipped where slurmrestd
    is not installed, except in CI, where that fails)."""
    why = None
    if shutil.which("slurmrestd", path=SBIN_PATH) is None:
        why = "slurmrestd is not installed (apt-get install -y slurmrestd)"
    else:
        started = slurm.command("start", "--rest")
        if started.returncode != 0:
            why = f"slurmrestd cannot start here: {(started.stderr or started.stdout)[-800:]}"
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return slurm.directory / "slurmrestd.socket"


@pytest.fixture
def slurm_env(slurm: LocalSlurm, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backends below run sbatch and scontrol in this process: point them at Slurm."""
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))


BackendFactory = Callable[..., SlurmBackend]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[BackendFactory]:
    """Slurm backends of the `hpc` profile with these slurm settings; their connections to
    slurmrestd closed in teardown."""
    made: list[SlurmBackend] = []

    def make(**slurm: Any) -> SlurmBackend:
        profile = load_profile(str(slurm_profile(tmp_path, slurm=slurm)))
        assert isinstance(profile, SlurmProfile)
        made.append(SlurmBackend(profile))
        return made[-1]

    yield make
    for each in made:
        if each.rest is not None:
            each.rest.close()


def submit(on: SlurmBackend, spec: JobSpec, *dependencies: str) -> tuple[str, str]:
    """(jobgate id, Slurm id) of `spec` submitted by `on`."""
    job_id = new_job_id()
    job = JobSubmission(job_id, spec, "alice", "default", tuple(dependencies))
    return job_id, on.submit(job)


def slurm_record(slurm: LocalSlurm, job_id: str, backend_id: str) -> dict[str, str]:
    """`scontrol show job` of a job, its jobgate id replaced by JOB."""
    line = slurm.run("scontrol", "show", "job", "-o", backend_id).replace(job_id, "JOB")
    return dict(re.findall(r"(\S+?)=(\S*)", line))


def command_of(slurm: LocalSlurm, backend_id: str) -> str:
    """The Command Slurm shows for a job: its script's path, or (null) from slurmrestd."""
    line = slurm.run("scontrol", "show", "job", "-o", backend_id)
    return re.findall(r" Command=(\S*)", line)[0]


@contextlib.contextmanager
def submitter_limits(open_files: int, umask: int) -> Iterator[None]:
    """This process's soft limit of open files and umask, for a while."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, limit[1]))
    before = os.umask(umask)
    try:
        yield
    finally:
        os.umask(before)
        resource.setrlimit(resource.RLIMIT_NOFILE, limit)


def test_slurmrestd_makes_the_job_sbatch_makes(
    slurm: LocalSlurm, rest_socket: Path, slurm_env: None, backend: BackendFactory, tmp_path: Path
) -> None:
    via_sbatch = backend()
    via_rest = backend(submit_via="slurmrestd", rest_socket=str(rest_socket))
    spec = JobSpec(
        name="twin",
        command="env | sort; ulimit -a; umask",
        env={"GREETING": "hello there"},
        resources={"cpus": 1, "memory_mb": 100, "walltime_s": 90, "queue": "debug"},
        array="0-1%1",
    )
    # Both wait for a held job, so that Slurm is asked about both before either runs.
    gate = slurm.run("sbatch", "--parsable", "--hold", "--wrap=true", "-o", "/dev/null").strip()
    with submitter_limits(open_files=777, umask=0o027):  # what sbatch passes on
        jobs = {"sbatch": submit(via_sbatch, spec, gate), "rest": submit(via_rest, spec, gate)}
    records = {way: slurm_record(slurm, *ids) for way, ids in jobs.items()}
    assert records["sbatch"]["Command"] == f"{tmp_path}/slurm-jobs/JOB/JOB.sbatch"
    assert records["rest"]["Command"] == "(null)"  # it went through slurmrestd
    same = {w: {k: v for k, v in r.items() if not PER_SUBMIT.match(k)} for w, r in records.items()}
    assert same["rest"] == same["sbatch"]
    assert same["rest"]["Dependency"] == f"afterok:{gate}(unfulfilled)"

    slurm.run("scontrol", "release", gate)

    def outputs(way: str) -> list[str]:
        job_id = jobs[way][0]
        directory = tmp_path / "slurm-jobs" / job_id
        wait_for(lambda: (directory / f"{job_id}.1.exit").exists(), TIMEOUT_S, f"{way}'s job")
        text = (directory / f"{job_id}.0.out").read_text().replace(job_id, "JOB")
        own = ("SLURM_JOB_ID=", "SLURM_JOBID=", "SLURM_ARRAY_JOB_ID=", "SLURM_TASK_PID=")
        return [line for line in text.splitlines() if not line.startswith(own)]

    assert outputs("rest") == outputs("sbatch")
    assert {"GREETING=hello there", "0027"} <= set(outputs("rest"))
    assert any(re.fullmatch(r"nofiles\s+777", line) for line in outputs("rest"))  # dash


def test_a_job_slurm_refuses_fails_with_slurms_message(
    rest_socket: Path, slurm_env: None, backend: BackendFactory, tmp_path: Path
) -> None:
    via_rest = backend(submit_via="slurmrestd", rest_socket=str(rest_socket))
    spec = JobSpec(name="lost", command="true", resources={"queue": "nowhere"})
    with pytest.raises(BackendError) as refused:
        submit(via_rest, spec)
    assert str(refused.value) == (
        "slurmrestd refused the job (HTTP 500): Invalid partition name specified"
    )
    assert not refused.value.transient


def test_without_slurmrestd_jobs_go_through_sbatch_with_one_warning(
    slurm: LocalSlurm,
    slurm_env: None,
    backend: BackendFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    absent = tmp_path / "absent.socket"
    via_rest = backend(submit_via="slurmrestd", rest_socket=str(absent))
    with caplog.at_level(logging.INFO, logger="jobgate.workers.backends.slurm.rest"):
        ids = [submit(via_rest, JobSpec(name="fallback", command="true")) for _ in range(2)]
    for job_id, backend_id in ids:
        assert command_of(slurm, backend_id) == f"{tmp_path}/slurm-jobs/{job_id}/{job_id}.sbatch"
    assert caplog.messages == [
        f"cluster hpc: cannot reach slurmrestd on {absent} ([Errno 2] No such file or "
        "directory): jobs go through sbatch until it answers again"
    ]


def test_a_job_with_extra_sbatch_arguments_goes_through_sbatch_logged_once(
    slurm: LocalSlurm,
    rest_socket: Path,
    slurm_env: None,
    backend: BackendFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    via_rest = backend(
        submit_via="slurmrestd", rest_socket=str(rest_socket), extra_args=["--nice=5"]
    )
    with caplog.at_level(logging.INFO, logger="jobgate.workers.backends.slurm.rest"):
        ids = [submit(via_rest, JobSpec(name="extra", command="true")) for _ in range(2)]
    for job_id, backend_id in ids:
        record = slurm_record(slurm, job_id, backend_id)
        assert (record["Command"], record["Nice"]) == (
            f"{tmp_path}/slurm-jobs/JOB/JOB.sbatch",
            "5",
        )
    assert caplog.messages == [
        "cluster hpc: extra sbatch arguments (extra_args) have no slurmrestd fields here: "
        "such jobs go through sbatch"
    ]


def test_jobs_submitted_through_slurmrestd_run_to_the_end(
    gateway: Gateway,
    slurm: LocalSlurm,
    rest_socket: Path,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    profile = slurm_profile(
        tmp_path, slurm={"submit_via": "slurmrestd", "rest_socket": str(rest_socket)}
    )
    start_worker(profile, env=slurm.env())
    jobs = [
        gateway.submit(JobSpec(name=f"r{i}", command=f"echo rest {i}"), "hpc") for i in range(3)
    ]
    for i, job in enumerate(jobs):
        record = job.wait(timeout_s=TIMEOUT_S)
        assert (record.status, record.exit_code) == (JobStatus.SUCCEEDED, 0)
        assert record.backend_id is not None
        assert command_of(slurm, record.backend_id) == "(null)"
        assert "".join(job.logs()) == f"rest {i}\n"


def test_a_restarted_slurmrestd_is_reconnected_to(
    slurm: LocalSlurm,
    rest_socket: Path,
    slurm_env: None,
    backend: BackendFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    via_rest = backend(submit_via="slurmrestd", rest_socket=str(rest_socket))
    first = submit(via_rest, JobSpec(name="before", command="true"))[1]
    record = slurm.directory / "started" / "slurmrestd.json"
    pid = json.loads(record.read_text())["pid"]
    os.kill(pid, signal.SIGTERM)  # the slurmrestd this module's fixture started
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "slurmrestd to exit")
    assert slurm.command("start", "--rest").returncode == 0
    with caplog.at_level(logging.INFO, logger="jobgate.workers.backends.slurm.rest"):
        second = submit(via_rest, JobSpec(name="after", command="true"))[1]
    assert [command_of(slurm, job) for job in (first, second)] == ["(null)", "(null)"]
    assert caplog.messages == []  # the closed connection was noticed before it was used


def test_a_submit_left_unanswered_fails_transiently_and_is_not_sent_to_sbatch(
    slurm: LocalSlurm, slurm_env: None, backend: BackendFactory, tmp_path: Path
) -> None:
    # A slurmrestd that dies after reading the request: it may have submitted the job.
    path = tmp_path / "dies.socket"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def read_and_close() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)

    reader = threading.Thread(target=read_and_close)
    reader.start()
    via_rest = backend(submit_via="slurmrestd", rest_socket=str(path))
    job = JobSubmission(new_job_id(), JobSpec(name="unanswered", command="true"), "a", "b")
    try:
        with pytest.raises(SchedulerUnavailableError) as unanswered:
            via_rest.submit(job)
    finally:
        reader.join(timeout=30)
        listener.close()
    assert "did not answer a submit" in str(unanswered.value)
    assert unanswered.value.transient
    name = f"jobgate-{job.job_id}"
    assert slurm.run("squeue", "-h", "-t", "all", "-n", name, "-o", "%i") == ""


RECORDED_CONFIG = (
    Path(__file__).parent / "data" / "slurm" / "scontrol_show_config.txt"
).read_text()


def with_limits(propagate: str, excepted: str = "(null)") -> str:
    """The recorded configuration with other PropagateResourceLimits* lines."""
    config = RECORDED_CONFIG.replace(
        "PropagateResourceLimits = ALL", f"PropagateResourceLimits = {propagate}"
    )
    return config.replace(
        "PropagateResourceLimitsExcept = (null)", f"PropagateResourceLimitsExcept = {excepted}"
    )


@pytest.mark.parametrize(
    ("config", "limits"),
    [
        (RECORDED_CONFIG, list(RLIMITS)),
        (with_limits("NONE"), []),
        (with_limits("NOFILE,CORE"), ["CORE", "NOFILE"]),
        (with_limits("ALL", "RLIMIT_AS,NPROC"), [n for n in RLIMITS if n not in ("AS", "NPROC")]),
    ],
    ids=["recorded ALL", "NONE", "a list", "all except"],
)
def test_the_limits_sbatch_passes_on_are_read_from_the_configuration(
    config: str, limits: list[str]
) -> None:
    assert "PropagateResourceLimits = ALL\n" in RECORDED_CONFIG
    assert propagated_limits(config) == limits


def test_limits_jobgate_cannot_read_from_the_configuration_send_jobs_to_sbatch() -> None:
    config = with_limits("NOFILE,BOGUS")
    with pytest.raises(NotForRest, match="unknown limits in PropagateResourceLimits"):
        propagated_limits(config)
    with pytest.raises(NotForRest, match="does not say PropagateResourceLimits"):
        propagated_limits("ClusterName = jobgate\n")


def test_a_job_whose_environment_holds_sbatch_options_goes_through_sbatch(
    slurm: LocalSlurm,
    rest_socket: Path,
    slurm_env: None,
    backend: BackendFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    via_rest = backend(submit_via="slurmrestd", rest_socket=str(rest_socket))
    spec = JobSpec(name="optenv", command="true", env={"SBATCH_NO_REQUEUE": "1"})
    with caplog.at_level(logging.INFO, logger="jobgate.workers.backends.slurm.rest"):
        job_id, backend_id = submit(via_rest, spec)
    record = slurm_record(slurm, job_id, backend_id)
    assert (record["Command"], record["Requeue"]) == (f"{tmp_path}/slurm-jobs/JOB/JOB.sbatch", "0")
    assert caplog.messages == [
        "cluster hpc: the environment holds variables sbatch reads as options: "
        "such jobs go through sbatch"
    ]
