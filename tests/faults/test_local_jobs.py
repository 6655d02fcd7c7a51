"""Local jobs that fight jobgate's wrapper: an environment that breaks the wrapper's own
commands (PATH=/nonexistent), and processes left behind (``setsid``, ``nohup … &``).
Each job runs exactly once, ends in the state its program earned, and leaves nothing
running once it has finished or been cancelled.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobgate.client import JobSpec, JobStatus
from jobgate.client.errors import BackendError
from jobgate.client.ids import new_job_id
from jobgate.client.profile_schema import LocalProfile, LocalSettings
from jobgate.workers.backends.base import JobSubmission
from jobgate.workers.backends.local import LocalBackend
from tests.support.local import LocalHarness
from tests.support.records import statuses
from tests.support.waiting import wait_for


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("command", "status", "exit_code"),
    [("/bin/echo ok", JobStatus.SUCCEEDED, 0), ("date", JobStatus.FAILED, 127)],
    ids=["absolute-paths-succeed", "date-fails-127"],
)
def test_a_job_whose_path_is_nonexistent_runs_once_and_ends_with_its_own_exit_code(
    local_backend: LocalHarness, tmp_path: Path, command: str, status: JobStatus, exit_code: int
) -> None:
    runs = tmp_path / "runs"
    local_backend.start()
    job = local_backend.submit(
        JobSpec(
            name="no-path",
            command=f'echo "$PATH" >> {runs}; {command}',
            env={"PATH": "/nonexistent"},
        )
    )

    record = job.wait(timeout_s=90)

    ran = len(runs.read_text().splitlines())
    print(f"FIGURE local PATH=/nonexistent, {command!r}: ran {ran} time(s), {record.status.value}")
    assert record.status is status, record
    assert record.exit_code == exit_code, record
    assert runs.read_text().splitlines() == ["/nonexistent"]  # once, with the user's PATH
    assert statuses(record).count(status) == 1


@pytest.mark.timeout(60)
def test_an_array_whose_path_is_nonexistent_runs_each_element_once(
    local_backend: LocalHarness, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    local_backend.start()
    job = local_backend.submit(
        JobSpec(
            name="no-path-array",
            command=f'echo "$JOBGATE_ARRAY_INDEX $PATH" >> {runs}',
            env={"PATH": "/nonexistent"},
            array="0-2",
        )
    )

    record = job.wait(timeout_s=45)

    assert record.status is JobStatus.SUCCEEDED, record
    assert sorted(runs.read_text().splitlines()) == [f"{i} /nonexistent" for i in range(3)]


#: Two processes that outlive the job's program: one in a session of its own, one
#: detached from the terminal; their pids go to the file `{pids}`.
LEAVE_BEHIND = (
    "setsid sleep 300 & echo $! >> {pids}; nohup sleep 300 > /dev/null 2>&1 & echo $! >> {pids}; "
)


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie has ended), read from /proc directly."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def leftovers(pids: Path) -> list[int]:
    return [pid for pid in map(int, pids.read_text().split()) if running(pid)]


@pytest.fixture(params=[True, False], ids=["cgroup", "environment"])
def cgroups(request: pytest.FixtureRequest) -> bool:
    """Whether the job runs in a cgroup of its own, or is found by its environment."""
    use: bool = request.param
    return use


def assert_tracked_as(local_backend: LocalHarness, job_id: str, cgroups: bool) -> None:
    """The job runs in a cgroup exactly when asked to (and the host allows it)."""
    if cgroups and not (local_backend.work_dir / job_id / f"{job_id}.cgroup").exists():
        pytest.skip("this host lets the worker make no cgroup v2 of its own")
    assert (local_backend.work_dir / job_id / f"{job_id}.cgroup").exists() == cgroups


@pytest.mark.timeout(60)
def test_what_a_finished_job_left_running_is_killed_when_it_finishes(
    local_backend: LocalHarness, tmp_path: Path, cgroups: bool
) -> None:
    pids = tmp_path / "pids"
    local_backend.start(local={"cgroups": cgroups})
    job = local_backend.submit_named("leaves", LEAVE_BEHIND.format(pids=pids) + "echo done")

    record = job.wait(timeout_s=45)

    assert record.status is JobStatus.SUCCEEDED, record
    assert_tracked_as(local_backend, job.id, cgroups)
    assert len(pids.read_text().split()) == 2
    assert leftovers(pids) == []


@pytest.mark.timeout(60)
def test_a_cancelled_job_is_gone_with_everything_it_started(
    local_backend: LocalHarness, tmp_path: Path, cgroups: bool
) -> None:
    pids = tmp_path / "pids"
    local_backend.start(local={"cgroups": cgroups})
    job = local_backend.submit_named("leaves", LEAVE_BEHIND.format(pids=pids) + "sleep 300")
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, what="two children")
    assert_tracked_as(local_backend, job.id, cgroups)
    assert len(leftovers(pids)) == 2

    started = time.monotonic()
    cancelled = job.cancel()
    cancel_s = time.monotonic() - started
    mechanism = "cgroup" if cgroups else "environment"
    print(f"FIGURE local cancel, setsid and nohup children ({mechanism}): {cancel_s:.2f} s")

    assert leftovers(pids) == []  # gone before the cancel answered
    assert cancelled.status is JobStatus.CANCELLED, cancelled
    assert job.wait(timeout_s=30).status is JobStatus.CANCELLED


@pytest.mark.timeout(60)
def test_an_environment_that_breaks_the_shell_fails_the_job_once_without_running_it(
    local_backend: LocalHarness, tmp_path: Path
) -> None:
    broken = tmp_path / "lib"
    broken.mkdir()
    (broken / "libc.so.6").write_text("not a library")  # what every dynamic program loads
    runs = tmp_path / "runs"
    local_backend.start()
    job = local_backend.submit_named(
        "broken-libc", f"/bin/echo run >> {runs}", env={"LD_LIBRARY_PATH": str(broken)}
    )

    record = job.wait(timeout_s=45)

    assert record.status is JobStatus.FAILED, record
    assert record.reason is not None
    assert "could not launch its runner" in record.reason
    assert "libc.so.6" in record.reason  # the loader's own words
    assert not runs.exists()
    assert statuses(record) == [JobStatus.NEW, JobStatus.FAILED]


def test_a_second_submit_of_a_launched_job_never_launches_it_again(
    work_dir: Path, tmp_path: Path
) -> None:
    """As a redelivered submit would: the first launch failed (the job's environment
    breaks /bin/sh), the directory holds its launch mark; the second does not relaunch."""
    broken = tmp_path / "lib"
    broken.mkdir()
    (broken / "libc.so.6").write_text("not a library")
    runs = tmp_path / "runs"
    backend = LocalBackend(LocalProfile(name="local", local=LocalSettings(work_dir=str(work_dir))))
    spec = JobSpec(
        name="once", command=f"/bin/echo run >> {runs}", env={"LD_LIBRARY_PATH": str(broken)}
    )
    job = JobSubmission(new_job_id(), spec, owner="tester", tenant="t")
    with pytest.raises(BackendError, match="could not launch its runner"):
        backend.submit(job)
    kept = work_dir / job.job_id / "kept"
    kept.touch()  # a new launch starts from a fresh directory

    with pytest.raises(BackendError, match="ended before it recorded its start") as failed:
        backend.submit(job)

    assert not failed.value.transient
    assert "not started again" in str(failed.value)
    assert not runs.exists()
    assert kept.exists()
