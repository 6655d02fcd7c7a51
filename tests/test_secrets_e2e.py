"""A job's secrets reach the job, and nothing else: not the worker log, not Flower, not the
job record, not the result backend, not any value in Redis once the job is done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from celery.result import AsyncResult

from jobgate.client import Gateway, JobSpec, JobStatus, SpecInvalidError
from scripts import devstack
from tests.support.cli import jobgate
from tests.support.redis_dump import tenant_values
from tests.support.waiting import TIMEOUT_S, wait_for
from tests.support.workers import ProfileFactory, WorkerFactory, wait_for_task_events

TOKEN, PASSWORD = "tok-LEAK-1f0a", "pw-LEAK-2c9e"


def test_a_secret_reaches_the_job_and_nothing_else(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    flower = devstack.Flower(
        tmp_path / "flower", gateway.url, tenant=gateway.tenant, basic_auth="ops:pw"
    ).start()
    try:
        allowed = {"allowed_secret_vars": ["LAB_DB_*"]}
        worker = start_worker(make_profile(policy=allowed), env={"LAB_DB_PASSWORD": PASSWORD})
        wait_for_task_events(worker)
        seen = tmp_path / "seen"
        spec = JobSpec(
            name="secretive",
            command=f'echo "$API_TOKEN $DB_PASSWORD $PLAIN" > {seen}; echo done',
            env={"API_TOKEN": TOKEN, "PLAIN": "visible"},
            secret_env={"DB_PASSWORD": "env:LAB_DB_PASSWORD"},
        )
        job = gateway.submit(spec, "local")
        record = job.wait(timeout_s=TIMEOUT_S)
        assert record.status is JobStatus.SUCCEEDED
        assert seen.read_text() == f"{TOKEN} {PASSWORD} visible\n"  # the job got them

        assert record.spec.env == {"API_TOKEN": "<redacted>", "PLAIN": "visible"}
        assert record.spec.secret_env == {"DB_PASSWORD": "env:LAB_DB_PASSWORD"}
        final = AsyncResult(job.result_id, app=gateway.celery).get(timeout=TIMEOUT_S)
        wait_for(lambda: not gateway.store.redis.exists(gateway.keys.secrets(job.id)),
                 what="the job's secrets to be dropped at finalize")  # fmt: skip
        assert "".join(job.logs()) == "done\n"

        def flower_tasks() -> str | None:
            tasks = flower.get_json("/api/tasks")
            done = any(t["name"] == "jobgate.logs" and t["state"] == "SUCCESS"
                       for t in tasks.values())  # fmt: skip
            return json.dumps(tasks) if done else None

        places = {
            "job record": record.model_dump_json(),
            "result backend": json.dumps(final),
            "redis values": tenant_values(gateway),
            "worker log": worker.log_text(),
            "flower tasks": wait_for(flower_tasks, what="Flower to see the tasks"),
            "jobgate status": jobgate(gateway, "status", job.id).stdout,
        }
        with pytest.raises(SpecInvalidError) as refused:  # an error text about this very spec
            gateway.submit({**spec.model_dump(), "resources": {"cpus": 0}}, "local")
        places["error text"] = str(refused.value)
        for place, text in places.items():
            assert TOKEN not in text, f"the token leaked into the {place}"
            assert PASSWORD not in text, f"the password leaked into the {place}"
        assert job.id in places["flower tasks"]  # Flower did see the job's tasks
    finally:
        flower.stop()


def test_a_missing_secret_reference_fails_the_job_clearly(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile(policy={"allowed_secret_vars": ["JOBGATE_TEST_UNSET_VAR"]}))
    job = gateway.submit(
        JobSpec(name="nosecret", command="true", secret_env={"X": "env:JOBGATE_TEST_UNSET_VAR"}),
        "local",
    )
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert record.reason == (
        "submit failed: secret_env X: secret reference env:JOBGATE_TEST_UNSET_VAR "
        "points to an unset variable JOBGATE_TEST_UNSET_VAR"
    )


def test_failure_reasons_and_worker_logs_are_scrubbed_of_job_secrets(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    """The secret also appears in the working dir, so the submit error text contains it:
    the recorded reason and the worker's own log lines must show *** instead."""
    worker = start_worker(make_profile())
    job = gateway.submit(
        JobSpec(name="leaky", command="true", env={"API_TOKEN": TOKEN},
                working_dir=f"/nonexistent/{TOKEN}"),
        "local",
    )  # fmt: skip
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert record.reason == "submit failed: cannot start job " + job.id + (
        " in /nonexistent/***: [Errno 2] No such file or directory: '/nonexistent/***'"
    )
    wait_for(lambda: f"submit of job {job.id} failed" in worker.log_text(), what="log line")
    assert "/nonexistent/***" in worker.log_text()
    assert TOKEN not in worker.log_text()
