"""Profiles served by live workers, policy preflight in the client, enforcement by the worker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jobgate.client import (
    ClusterNotServedWarning,
    Gateway,
    JobSpec,
    JobStatus,
    PolicyBlockedError,
    PolicyLevel,
    ProfileNotFoundError,
    load_profile,
)
from tests.support.cli import JOBGATE, jobgate
from tests.support.waiting import TIMEOUT_S
from tests.support.workers import ProfileFactory, WorkerFactory

BIG = JobSpec(name="big", command="echo ran", resources={"cpus": 4, "walltime_s": 60})


def test_workers_publish_the_clusters_they_serve(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    path = make_profile(policy={"max_cpus": 2})
    worker = start_worker(path)
    served = gateway.clusters()
    assert list(served) == ["local"]
    assert served["local"].workers == (worker.hostname,)
    assert served["local"].profile == load_profile(str(path))
    assert jobgate(gateway, "clusters").stdout.split() == ["local", "local", worker.hostname]
    worker.stop()
    assert gateway.clusters() == {}  # a clean stop withdraws the heartbeat


def test_submitting_to_a_cluster_no_worker_serves_warns_and_queues(gateway: Gateway) -> None:
    with pytest.warns(ClusterNotServedWarning, match="no live worker serves cluster 'nowhere'"):
        job = gateway.submit(JobSpec(name="w", command="true"), cluster="nowhere")
    assert job.status() is JobStatus.NEW


def test_preflight_and_submit_check_the_live_profile(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile(policy={"max_cpus": 2}))
    findings = gateway.preflight(BIG, "local", include_passes=True)
    assert {f.code: f.level for f in findings}["cpus-over-max"] is PolicyLevel.BLOCK
    with pytest.raises(PolicyBlockedError) as info:
        gateway.submit(BIG, "local")
    assert "cpus-over-max: asks for 4 cpus; cluster local allows 2" in str(info.value)
    assert "this profile allows no override" in str(info.value)
    with pytest.raises(PolicyBlockedError):
        gateway.submit(BIG, "local", allow_policy_risk=True)  # the profile allows no override
    assert gateway.list() == []  # nothing was recorded, nothing queued

    with pytest.raises(ProfileNotFoundError, match="pass profile=load_profile"):
        gateway.preflight(BIG, "elsewhere")
    assert gateway.preflight(BIG, "elsewhere", profile=load_profile("slurm")) == []


def test_the_worker_enforces_policy_whatever_the_client_did(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, work_dir: Path
) -> None:
    path = make_profile(policy={"max_cpus": 2})
    with pytest.warns(ClusterNotServedWarning):  # no worker yet: the client cannot check
        job = gateway.submit(BIG, "local")
    start_worker(path)
    record = job.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.reason) == (JobStatus.FAILED, "policy blocked")
    blocked = [(f.code, f.level) for f in record.findings if f.level is PolicyLevel.BLOCK]
    assert blocked == [("cpus-over-max", PolicyLevel.BLOCK)]
    assert not record.policy_override
    assert not (work_dir / job.id).exists()  # nothing reached the backend


def test_allow_policy_risk_overrides_where_the_profile_allows_it(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile(policy={"max_cpus": 1, "allow_overrides": True}))
    with pytest.raises(PolicyBlockedError, match="submit with allow_policy_risk=True"):
        gateway.submit(BIG, "local")
    job = gateway.submit(BIG, "local", allow_policy_risk=True)
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert record.allow_policy_risk
    assert record.policy_override
    assert "cpus-over-max" in {f.code for f in record.findings if f.level is PolicyLevel.BLOCK}
    assert "".join(job.logs()) == "ran\n"


def test_cli_preflight_and_spec_file_submission(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker(make_profile(policy={"max_cpus": 2}))
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: cli-spec\ncommand: sleep infinity\nresources:\n  cpus: 1\n")
    blocked = jobgate(gateway, "preflight", str(spec), "--cluster", "local", check=False)
    assert blocked.returncode == 3
    assert "BLOCK  never-ending-command" in blocked.stdout
    assert blocked.stdout.splitlines()[-1] == "preflight: BLOCK"

    spec.write_text("name: cli-spec\ncommand: echo from-spec\nresources:\n  walltime_s: 60\n")
    fine = jobgate(gateway, "preflight", str(spec), "--cluster", "local", "--all")
    assert "PASS   cpus-over-max" in fine.stdout
    assert fine.stdout.splitlines()[-1] == "preflight: PASS"
    job_id = jobgate(gateway, "submit", "local", "--spec", str(spec)).stdout.strip()
    assert gateway.job(job_id).wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert "".join(gateway.job(job_id).logs()) == "from-spec\n"


def test_cli_profiles_ls_and_show(gateway: Gateway) -> None:
    listed = jobgate(gateway, "profiles", "ls").stdout.splitlines()
    kinds = ["kubernetes", "local", "lsf", "slurm"]
    assert [line.split()[:2] for line in listed] == [[kind, kind] for kind in kinds]
    shown = jobgate(gateway, "profiles", "show", "kubernetes").stdout
    assert "API_TOKEN: <redacted>" in shown
    assert "JOBGATE_JOBS_API_TOKEN" not in shown
    assert "namespace: jobs" in shown
    missing = subprocess.run(
        [JOBGATE, "profiles", "show", "kubernets"], capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "did you mean 'kubernetes'" in missing.stderr
