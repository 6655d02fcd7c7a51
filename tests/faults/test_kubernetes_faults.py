"""A Kubernetes API that throttles (429 with Retry-After), fails (500, 503) or resets
connections, through the emulator's fault hook (tests/emulators/kubernetes/kubeemu/
faults.py), under running jobs and under submits. Asserted: no job is marked FAILED for a
passing fault, a poll that runs out of attempts is logged naming the call and the
cluster and the chain resumes, a submit retried through faults creates its Job once, and
a submit that keeps failing transiently ends FAILED with the reason after a bounded number
of tries, not stuck NEW and not retried for ever.

Measured figures are printed as ``FIGURE`` lines (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobgate.client import JobSpec, JobStatus
from tests.support.kubernetes import JOB_LIST, NAMESPACE, KubernetesHarness
from tests.support.records import statuses
from tests.support.waiting import gated, wait_for

#: Tries of each API call in these tests' profile (the default is 4): faults outlast them.
ATTEMPTS = 2
#: The path of a create of a Job.
JOB_CREATE = rf"/namespaces/{NAMESPACE}/jobs$"
#: Submit attempts of a job whose submit keeps failing: the first and its retries.
SUBMIT_ATTEMPTS = 6


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("status", "said"),
    [(429, "429 Too many requests"), (500, "500 Internal error occurred: injected fault"),
     (503, "503 service unavailable"), (None, "connection failed")],
    ids=["429-retry-after", "500", "503", "connection-reset"],
)  # fmt: skip
def test_an_api_failing_every_list_fails_no_running_job_and_the_chain_resumes(
    kubernetes_backend: KubernetesHarness, tmp_path: Path, status: int | None, said: str
) -> None:
    backend, api, gate = kubernetes_backend, kubernetes_backend.api, tmp_path / "go"
    worker = backend.start(kubernetes={"request_attempts": ATTEMPTS})
    job = backend.submit_named("j", gated("echo fine", gate))
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="the job running")

    if status is None:
        api.drop_next(count=None, method="GET", path=JOB_LIST)
    else:
        api.fail_next(status, count=None, method="GET", path=JOB_LIST, retry_after=1)
    armed = time.monotonic()
    failed = f"poll of cluster {backend.cluster} failed; the chain goes on: Kubernetes API: list "

    def poll_failures() -> list[str]:
        return [line for line in worker.log_text().splitlines() if failed in line]

    (line,) = wait_for(lambda: poll_failures()[:1], what="a logged poll failure")
    logged_s = time.monotonic() - armed
    assert said in line, line
    assert f"(gave up after {ATTEMPTS} attempts)" in line, line
    gate.touch()  # the job ends while the API fails
    wait_for(lambda: len(poll_failures()) >= 3, what="more failed polls after the job ended")
    assert job.status() is JobStatus.RUNNING  # nothing judged meanwhile

    queries_in_fault = backend.gateway.scheduler_queries(backend.cluster)  # none succeed
    api.clear_faults()
    record = job.wait(timeout_s=backend.timeout_s)
    assert record.status is JobStatus.SUCCEEDED, record
    assert JobStatus.FAILED not in statuses(record)
    assert statuses(record).count(JobStatus.RUNNING) == 1
    assert "".join(job.logs()) == "fine\n"
    assert backend.gateway.scheduler_queries(backend.cluster) > queries_in_fault  # resumed
    assert len(api.requests("POST", JOB_CREATE)) == 1
    faulty = len([r for r in api.requests("GET", JOB_LIST) if r.fault])
    print(f"FIGURE kubernetes-fault list-{status or 'reset'}: 1 running job, 0 failed, "
          f"{faulty} faulty answers, failure logged {logged_s:.1f} s after the fault")  # fmt: skip


@pytest.mark.timeout(120)
def test_a_submit_through_throttling_errors_and_resets_creates_its_job_once(
    kubernetes_backend: KubernetesHarness,
) -> None:
    backend, api = kubernetes_backend, kubernetes_backend.api
    api.fail_next(429, count=1, method="POST", path=JOB_CREATE, retry_after=1)
    api.fail_next(503, count=1, method="POST", path=JOB_CREATE)
    api.fail_next(500, count=1, method="POST", path=JOB_CREATE)
    api.drop_next(count=2, method="POST", path=JOB_CREATE)
    backend.start(kubernetes={"request_attempts": ATTEMPTS}, submit_retry_backoff_s=0.2)
    job = backend.submit(JobSpec(name="j", command="echo once"))

    record = job.wait(timeout_s=backend.timeout_s)
    assert record.status is JobStatus.SUCCEEDED, record
    assert "".join(job.logs()) == "once\n"
    creates = api.requests("POST", JOB_CREATE)
    assert [r.fault for r in creates].count(False) == 1, creates  # one Job, created once
    assert len(creates) == 6
    assert len(api.jobs(NAMESPACE)) == 1
    print(f"FIGURE kubernetes-fault submit: {len(creates) - 1} faulty creates, "
          f"1 Job created once, job SUCCEEDED")  # fmt: skip


@pytest.mark.timeout(120)
def test_a_submit_that_keeps_failing_transiently_ends_failed_after_bounded_tries(
    kubernetes_backend: KubernetesHarness,
) -> None:
    backend, api = kubernetes_backend, kubernetes_backend.api
    api.fail_next(503, count=None, method="POST", path=JOB_CREATE)
    worker = backend.start(kubernetes={"request_attempts": ATTEMPTS}, submit_retry_backoff_s=0.2)
    started = time.monotonic()
    job = backend.submit(JobSpec(name="j", command="echo never"))

    record = job.wait(timeout_s=backend.timeout_s)
    assert record.status is JobStatus.FAILED, record
    assert statuses(record) == [JobStatus.NEW, JobStatus.FAILED]
    assert (record.reason or "").startswith(
        "submit failed: Kubernetes API: create jobs.batch in jobs failed: 503 "
    ), record.reason
    assert f"(gave up after {ATTEMPTS} attempts)" in (record.reason or "")
    assert len(api.requests("POST", JOB_CREATE)) == SUBMIT_ATTEMPTS * ATTEMPTS
    assert api.jobs(NAMESPACE) == []
    assert worker.log_text().count(f"submit of job {job.id} failed, will retry") == (
        SUBMIT_ATTEMPTS - 1
    )
    print(f"FIGURE kubernetes-fault submit-always-503: FAILED after {SUBMIT_ATTEMPTS} submit "
          f"tries of {ATTEMPTS} requests, {time.monotonic() - started:.1f} s")  # fmt: skip
