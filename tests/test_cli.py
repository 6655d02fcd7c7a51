"""The `jobgate` command, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess

from jobgate.client import Gateway, JobSpec, JobStatus
from tests.support.cli import JOBGATE, jobgate
from tests.support.waiting import wait_for
from tests.support.workers import ProfileFactory, WorkerFactory


def test_submit_wait_logs_list(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile())
    job_id = jobgate(
        gateway, "submit", "local", "--name", "cli", "--tag", "t1", "--", "echo hi $((1 + 1))"
    ).stdout.strip()
    record = json.loads(jobgate(gateway, "wait", job_id, "--timeout", "60").stdout)
    assert (record["id"], record["status"], record["exit_code"]) == (job_id, "SUCCEEDED", 0)
    assert jobgate(gateway, "logs", job_id).stdout == "hi 2\n"
    listed = jobgate(gateway, "list", "--cluster", "local", "--tag", "t1").stdout
    assert listed.split()[:2] == [job_id, "SUCCEEDED"]
    assert json.loads(jobgate(gateway, "status", job_id).stdout)["name"] == "cli"


def test_submit_with_wait_follows_output(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile())
    out = jobgate(gateway, "submit", "local", "--wait", "--", "echo", "a  b", "c").stdout
    job_id, output, record = out.split("\n", 2)
    assert output == "a  b c"  # argv form: the double space survives, no shell splitting
    assert json.loads(record)["id"] == job_id
    assert json.loads(record)["status"] == "SUCCEEDED"


def test_cancel_takes_jobs_of_several_clusters_and_prints_each_record(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile(), make_profile(name="other"))
    done = gateway.submit(JobSpec(name="done", command="true"), "local")
    assert done.wait(timeout_s=60).status is JobStatus.SUCCEEDED
    sleepers = [gateway.submit(JobSpec(name="s", command="sleep 300"), cluster)
                for cluster in ("local", "other", "local")]  # fmt: skip
    for job in sleepers:
        wait_for(lambda j=job: j.status() is JobStatus.RUNNING, timeout_s=60, what="running")
    ids = [sleepers[0].id, done.id, sleepers[1].id, sleepers[2].id]
    out, decoder, records = jobgate(gateway, "cancel", *ids).stdout, json.JSONDecoder(), []
    while out.strip():
        record, end = decoder.raw_decode(out.lstrip())
        records.append(record)
        out = out.lstrip()[end:]
    assert [(r["id"], r["status"]) for r in records] == [
        (sleepers[0].id, "CANCELLED"), (done.id, "SUCCEEDED"), (sleepers[1].id, "CANCELLED"),
        (sleepers[2].id, "CANCELLED")]  # fmt: skip
    assert [j.wait(timeout_s=60).status for j in sleepers] == [JobStatus.CANCELLED] * 3


def test_errors_are_one_clear_line(gateway: Gateway) -> None:
    bad_id = jobgate(gateway, "status", "nope", check=False)
    assert bad_id.returncode == 1
    assert bad_id.stderr.strip().startswith("jobgate: job id 'nope' is not a jobgate id")
    unknown = jobgate(gateway, "worker", "--profile", "lokal", check=False)
    assert unknown.returncode == 1
    assert "did you mean 'local'" in unknown.stderr
    no_url = subprocess.run(
        [JOBGATE, "list"],
        env={k: v for k, v in os.environ.items() if k != "JOBGATE_URL"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert no_url.returncode == 2
    assert "--url" in no_url.stderr
