"""A full file system under a cluster's work directory (a 1 MB tmpfs, filled for real).

A submit that cannot write the job's files fails that job at once, naming the directory;
a job whose wrapper could not write its exit record (it leaves a 0-byte ``<id>.exit``)
fails alone, with the record named; the cluster's other jobs, another cluster's jobs on
the same worker, and jobs submitted once space is back are observed as usual.

Measured figures are printed as ``FIGURE`` lines (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobgate.client import Job, JobRecord, JobSpec, JobStatus
from tests.support.batch import BatchHarness
from tests.support.harness import BackendHarness
from tests.support.local import LocalHarness, kill_jobs, write_local_profile
from tests.support.records import make_record, move, plant_submitted, statuses
from tests.support.shims import count
from tests.support.tmpfs import small_file_system
from tests.support.waiting import gated, wait_for

NO_SPACE = "No space left on device"
#: A program that fills its job directory's file system (head fails when it is full).
FILL_THE_DISK = "head -c 2000000 /dev/zero > filler"
#: A pid no process can have (above the kernel's pid_max): a runner that is gone.
NO_PID = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


@pytest.fixture
def small_work_dir(work_dir: Path) -> Iterator[Path]:
    """The local backend's work_dir on a 1 MB tmpfs; its jobs are killed before unmounting."""
    with small_file_system(work_dir):
        yield work_dir
        kill_jobs(work_dir)


def finished(job: Job, timeout_s: float) -> JobRecord:
    """The job's record once it has finished."""
    record: JobRecord = wait_for(
        lambda: (r := job.record()).status.is_finished and r,
        timeout_s=timeout_s,
        what=f"job {job.id} to finish",
    )
    return record


def assert_refused_for_space(job: Job, directory: Path, timeout_s: float) -> float:
    """Assert the job FAILED at submit for want of space, naming its directory, without
    reaching the scheduler; returns the seconds from its submit to that record."""
    record = finished(job, timeout_s)
    assert record.status is JobStatus.FAILED, record
    assert record.reason is not None
    assert record.reason.startswith(f"submit failed: cannot prepare job directory {directory}")
    assert NO_SPACE in record.reason
    assert statuses(record) == [JobStatus.NEW, JobStatus.FAILED]
    assert record.backend_id is None
    return (record.history[-1].at - record.created_at).total_seconds()


def assert_refused_once(worker_log: str, job: Job) -> None:
    """The worker gave up on the job's submit at the first attempt (no retry)."""
    assert worker_log.count(f"submit of job {job.id} failed: ") == 1
    assert f"submit of job {job.id} failed, will retry" not in worker_log


@pytest.mark.timeout(120)
def test_a_full_work_dir_fails_only_the_jobs_it_hits_and_blinds_no_cluster(
    small_work_dir: Path, local_backend: LocalHarness, tmp_path: Path
) -> None:
    other_dir = tmp_path / "other-jobs"
    other_dir.mkdir()
    other = write_local_profile(tmp_path, other_dir, "other", local_backend.interval_s)
    worker = local_backend.start_worker(local_backend.profile(), other)
    gateway, timeout_s = local_backend.gateway, local_backend.timeout_s
    gate = tmp_path / "go"
    neighbour = local_backend.submit_named("neighbour", gated("echo neighbour", gate))
    wait_for(
        lambda: neighbour.status() is JobStatus.RUNNING,
        timeout_s=timeout_s,
        what="a job running beside the one that fills the disk",
    )

    filler = local_backend.submit_named("filler", FILL_THE_DISK)
    exit_record = small_work_dir / filler.id / f"{filler.id}.exit"
    wait_for(exit_record.exists, timeout_s=timeout_s, what="the filler's exit record")
    assert exit_record.stat().st_size == 0  # what the wrapper leaves on a full disk
    ended = time.monotonic()
    record = finished(filler, timeout_s)
    failed_s = time.monotonic() - ended
    assert record.status is JobStatus.FAILED, record
    assert record.reason is not None
    assert record.reason.startswith(f"exit record {exit_record} is unreadable: it is empty")

    refused = local_backend.submit_named("refused", "echo refused")
    refused_s = assert_refused_for_space(refused, small_work_dir / refused.id, timeout_s)
    elsewhere = gateway.submit(JobSpec(name="elsewhere", command="echo elsewhere"), "other")
    assert elsewhere.wait(timeout_s=timeout_s).status is JobStatus.SUCCEEDED
    assert "".join(elsewhere.logs()) == "elsewhere\n"

    (small_work_dir / filler.id / "filler").unlink()  # space is back
    gate.touch()
    later = local_backend.submit_named("later", "echo later")
    for job, text in ((neighbour, "neighbour\n"), (later, "later\n")):
        done = job.wait(timeout_s=timeout_s)
        assert done.status is JobStatus.SUCCEEDED, done
        assert statuses(done).count(JobStatus.SUCCEEDED) == 1
        assert "".join(job.logs()) == text
    assert_refused_once(worker.log_text(), refused)
    assert worker.running()
    print(
        f"FIGURE disk-full local: 0-byte exit record -> job FAILED {failed_s:.2f} s after it "
        f"appeared; submit on the full disk FAILED {refused_s:.2f} s after submit; the "
        f"other cluster's job and later jobs SUCCEEDED"
    )


#: An array of two: element 1 ends at once; element 0 then fills the disk, so that its own
#: exit record is the one left empty.
FILL_AFTER_ELEMENT_1 = (
    'if [ "$JOBGATE_ARRAY_INDEX" = 1 ]; then echo one; else '
    'while [ ! -e "$JOBGATE_JOB_ID.1.exit" ]; do sleep 0.05; done; '
    f"{FILL_THE_DISK}; fi"
)


@pytest.mark.timeout(120)
def test_an_array_element_whose_exit_record_is_empty_fails_alone(
    small_work_dir: Path, local_backend: LocalHarness
) -> None:
    local_backend.start()
    job = local_backend.submit_named("array", FILL_AFTER_ELEMENT_1, array="0-1")
    record = finished(job, local_backend.timeout_s)
    assert record.status is JobStatus.FAILED, record
    assert record.reason == "1 of 2 elements failed (indices 0)"
    zero, one = record.elements
    exit_record = small_work_dir / job.id / f"{job.id}.0.exit"
    assert (zero.status, zero.reason) == (
        JobStatus.FAILED,
        f"exit record {exit_record} is unreadable: it is empty (was its file system full?)",
    )
    assert (one.status, one.exit_code) == (JobStatus.SUCCEEDED, 0)
    assert "".join(job.logs(index=1)) == "one\n"


@pytest.fixture(params=["slurm", "lsf"])
def batch_backend(request: pytest.FixtureRequest) -> BatchHarness:
    harness: BatchHarness = request.getfixturevalue(f"{request.param}_backend")
    return harness


@pytest.fixture
def small_batch_work_dir(batch_backend: BatchHarness, tmp_path: Path) -> Iterator[Path]:
    """The Slurm or LSF profile's work_dir on a 1 MB tmpfs."""
    directory = tmp_path / batch_backend.jobs_dir
    directory.mkdir()
    with small_file_system(directory):
        yield directory


@pytest.mark.timeout(180)
def test_a_batch_work_dir_filled_by_a_job_refuses_submits_until_space_is_back(
    small_batch_work_dir: Path, batch_backend: BatchHarness
) -> None:
    backend, work_dir = batch_backend, small_batch_work_dir
    worker = backend.start()
    filler = backend.submit_named("filler", FILL_THE_DISK)
    record = finished(filler, backend.timeout_s)
    # The scheduler reports how it ended (head failed); the blank exit record is read only
    # once the scheduler has forgotten the job, as in the test of unreadable records below.
    assert (record.status, record.exit_code) == (JobStatus.FAILED, 1), record
    assert (work_dir / filler.id / f"{filler.id}.exit").stat().st_size == 0

    refused = backend.submit_named("refused", "echo refused")
    refused_s = assert_refused_for_space(refused, work_dir / refused.id, backend.timeout_s)

    (work_dir / filler.id / "filler").unlink()  # space is back
    first = backend.array_first_index or 0
    later = backend.submit_named("later", "echo later", array=f"{first}-{first + 1}")
    done = later.wait(timeout_s=backend.timeout_s)
    assert done.status is JobStatus.SUCCEEDED, done
    assert "".join(later.logs()) == "later\n"
    assert_refused_once(worker.log_text(), refused)
    print(
        f"FIGURE disk-full {backend.name}: submit on the full disk FAILED {refused_s:.2f} s "
        f"after submit, never reached the scheduler; a later array SUCCEEDED"
    )


#: The command that submits a job to each batch scheduler.
SUBMIT_COMMAND = {"slurm": "sbatch", "lsf": "bsub"}


def disk_filling_shim(directory: Path, real: str, filler: Path) -> Path:
    """A stand-in for the submit command `real` that fills `filler`'s file system first
    (once), then runs the real one: the scheduler takes the job, and jobgate finds no room
    to keep the scheduler's id. Returns the file counting the shim's calls."""
    directory.mkdir()
    calls = directory / "calls"
    calls.touch()
    shim = directory / Path(real).name
    quoted = shlex.quote(str(filler))
    shim.write_text(
        f"#!/bin/sh\n[ -e {quoted} ] || head -c 2000000 /dev/zero > {quoted} 2>/dev/null\n"
        f'echo x >> {shlex.quote(str(calls))}\nexec {shlex.quote(real)} "$@"\n'
    )
    shim.chmod(0o755)
    return calls


@pytest.mark.timeout(180)
def test_a_job_whose_scheduler_id_finds_no_room_is_recorded_at_once_and_runs_once(
    small_batch_work_dir: Path, batch_backend: BatchHarness, tmp_path: Path
) -> None:
    backend, work_dir, gate = batch_backend, small_batch_work_dir, tmp_path / "go"
    env = backend.worker_env()
    real = shutil.which(SUBMIT_COMMAND[backend.name], path=env["PATH"])
    assert real is not None
    calls = disk_filling_shim(tmp_path / "filling-shim", real, work_dir / "filler")
    worker = backend.start_worker(
        backend.profile(), env={**env, "PATH": f"{calls.parent}{os.pathsep}{env['PATH']}"}
    )
    job = backend.submit_named("held", gated("echo held", gate))
    record = wait_for(
        lambda: (r := job.record()).backend_id and r,
        timeout_s=backend.timeout_s,
        what="the job recorded as submitted",
    )
    assert (work_dir / "filler").exists()  # the disk filled up while the job was submitted
    (pending,) = [t for t in record.history if t.status is JobStatus.PENDING]
    assert pending.reason is None  # recorded by its submit, not adopted by reconcile later
    assert "could not keep the scheduler's id" in worker.log_text()

    (work_dir / "filler").unlink()
    gate.touch()
    done = job.wait(timeout_s=backend.timeout_s)
    assert done.status is JobStatus.SUCCEEDED, done
    assert "".join(job.logs()) == "held\n"
    assert count(calls) == 1  # submitted once
    assert "raised unexpected" not in worker.log_text()


#: Exit records no wrapper should leave, and what the job's reason says of each.
UNREADABLE = {
    "empty": (b"", "it is empty (was its file system full?)"),
    "truncated": (b'{"exit_code": 0, "sta', "Invalid JSON: EOF while parsing a string"),
    "wrong-type": (b'{"exit_code": "0", "started": 1, "finished": 2}',
                   "exit_code: Input should be a valid integer"),
    "not-an-object": (b"[0, 1, 2]", "Input should be an object"),
    "not-utf8": (b"\xff\xfe", "Invalid JSON"),
}  # fmt: skip


@pytest.fixture(params=["local", "slurm", "lsf"])
def backend(request: pytest.FixtureRequest) -> BackendHarness:
    harness: BackendHarness = request.getfixturevalue(f"{request.param}_backend")
    return harness


def plant_running(backend: BackendHarness, tmp_path: Path, backend_id: str) -> tuple[str, Path]:
    """A job recorded RUNNING on the scheduler (as a poll would leave it) whose task has
    ended without a worker watching; returns its id and where its exit record goes."""
    store = backend.gateway.store
    if isinstance(backend, LocalHarness):
        job_id = make_record(store, cluster=backend.cluster).id
        move(store, job_id, JobStatus.RUNNING, backend_id=job_id)
        directory = backend.work_dir / job_id
        directory.mkdir()
        runner = {"pgid": NO_PID, "runner_pid": NO_PID}  # its runner has ended
        (directory / f"{job_id}.proc").write_text(json.dumps(runner))
        (directory / f"{job_id}.started").touch()  # the disk was full at its start too
    else:
        assert isinstance(backend, BatchHarness)
        job_id = plant_submitted(store, backend.cluster, backend_id).id
        directory = tmp_path / backend.jobs_dir / job_id
        directory.mkdir(parents=True)
    return job_id, directory / f"{job_id}.exit"


@pytest.mark.timeout(120)
def test_each_unreadable_exit_record_fails_its_own_job_and_the_cluster_goes_on(
    backend: BackendHarness, tmp_path: Path
) -> None:
    planted = {}
    for n, (case, (content, _)) in enumerate(UNREADABLE.items()):
        job_id, exit_record = plant_running(backend, tmp_path, f"99991{n}")
        exit_record.write_bytes(content)
        planted[case] = (backend.gateway.job(job_id), exit_record)
    sound_id, sound_record = plant_running(backend, tmp_path, "999920")
    sound_record.write_text(json.dumps({"exit_code": 0, "started": 1, "finished": 2}))
    worker = backend.start()  # reconcile starts polling the planted active jobs

    for case, (job, exit_record) in planted.items():
        record = finished(job, backend.timeout_s)
        assert record.status is JobStatus.FAILED, (case, record)
        assert record.reason is not None
        assert record.reason.startswith(f"exit record {exit_record} is unreadable: "), case
        assert UNREADABLE[case][1] in record.reason, (case, record.reason)
    sound = backend.gateway.job(sound_id).wait(timeout_s=backend.timeout_s)
    assert sound.status is JobStatus.SUCCEEDED, sound
    later = backend.submit_named("later", "echo later")
    assert later.wait(timeout_s=backend.timeout_s).status is JobStatus.SUCCEEDED
    assert "".join(later.logs()) == "later\n"
    assert "poll of cluster" not in worker.log_text()  # no poll step failed


def test_an_empty_runner_record_fails_its_own_local_job_and_the_cluster_goes_on(
    local_backend: LocalHarness,
) -> None:
    store = local_backend.gateway.store
    job_id = make_record(store, cluster=local_backend.cluster).id
    move(store, job_id, JobStatus.RUNNING, backend_id=job_id)
    runner_record = local_backend.work_dir / job_id / f"{job_id}.proc"
    runner_record.parent.mkdir()
    runner_record.touch()  # what runner.sh leaves when the disk is full as it starts
    worker = local_backend.start()

    record = finished(local_backend.gateway.job(job_id), local_backend.timeout_s)
    assert record.status is JobStatus.FAILED, record
    assert (
        record.reason == f"runner record {runner_record} is unreadable: it is empty "
        "(was its file system full?)"
    )
    later = local_backend.submit_named("later", "echo later")
    assert later.wait(timeout_s=local_backend.timeout_s).status is JobStatus.SUCCEEDED
    assert "poll of cluster" not in worker.log_text()
