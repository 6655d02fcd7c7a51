"""A job reads only the worker variables its cluster's profile allows: never the worker's
own Redis URL, Flower password or cloud keys by way of ``secret_env: {X: env:NAME}``."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobgate.client import Gateway, JobSpec, JobStatus, PolicyBlockedError
from jobgate.client.models import PolicyLevel
from jobgate.client.policy import evaluate_policy
from jobgate.client.profile_schema import profile_from_data
from tests.support.waiting import TIMEOUT_S
from tests.support.workers import ProfileFactory, WorkerFactory

WORKER_OWN = ["JOBGATE_URL", "CELERY_BROKER_URL", "FLOWER_BASIC_AUTH", "AWS_SECRET_ACCESS_KEY",
              "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_CLIENT_SECRET", "REDIS_URL",
              "jobgate_url"]  # fmt: skip


def refusals(ref: str, **policy: object) -> list[str]:
    profile = profile_from_data({"name": "c", "backend": "slurm", "policy": policy})
    spec = JobSpec(name="x", command="true", secret_env={"X": ref})
    return [f.message for f in evaluate_policy(spec, profile) if f.code == "secret-env-not-allowed"
            and f.level is PolicyLevel.BLOCK]  # fmt: skip


def test_no_worker_variable_is_readable_by_default() -> None:
    (message,) = refusals("env:LAB_DB_PASSWORD")
    assert message == (
        "secret_env X (env:LAB_DB_PASSWORD): the cluster profile does not let jobs read "
        "worker variable LAB_DB_PASSWORD: add it (or a pattern matching it) to "
        "policy.allowed_secret_vars"
    )


@pytest.mark.parametrize("name", WORKER_OWN)
def test_the_workers_own_variables_need_their_exact_name(name: str) -> None:
    (message,) = refusals(f"env:{name}", allowed_secret_vars=["*", "J*", "[A-Z]*"])
    assert f"{name} is one of the worker's own variables" in message
    assert "only its exact name in the cluster profile's policy.allowed_secret_vars" in message
    assert refusals(f"env:{name}", allowed_secret_vars=[name]) == []


def test_patterns_and_the_profiles_own_references_allow() -> None:
    assert refusals("env:LAB_DB_PASSWORD", allowed_secret_vars=["LAB_*"]) == []
    assert refusals("env:LAB_DB_PASSWORD", allowed_secret_vars=["lab_*"]) != []  # case counts
    profile = profile_from_data(
        {
            "name": "c",
            "backend": "slurm",
            "defaults": {"env": {"API_TOKEN": "env:JOBGATE_JOB_TOKEN"}},
        }
    )
    spec = JobSpec(name="x", command="true", secret_env={"T": "env:JOBGATE_JOB_TOKEN"})
    assert "secret-env-not-allowed" not in {f.code for f in evaluate_policy(spec, profile)}


def test_the_client_refuses_before_anything_is_recorded(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile())
    spec = JobSpec(name="steal", command="true", secret_env={"X": "env:JOBGATE_URL"})
    with pytest.raises(PolicyBlockedError, match=r"policy\.allowed_secret_vars"):
        gateway.submit(spec, "local")
    assert gateway.list() == []


def test_the_worker_refuses_even_when_blocks_may_be_overridden(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    """An override of BLOCK findings (allow_policy_risk on a profile that allows overrides)
    lets a job ask for more CPUs, never read the worker's own secrets."""
    seen = tmp_path / "seen"
    path = make_profile(policy={"allow_overrides": True, "allowed_secret_vars": ["*"]})
    start_worker(path, env={"JOBGATE_URL": "redis://:worker-pw-LEAK@10.0.0.1/0"})
    spec = JobSpec(name="steal", command=f'echo "$X" > {seen}', secret_env={"X": "env:JOBGATE_URL"})
    record = gateway.submit(spec, "local", allow_policy_risk=True).wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert not seen.exists()  # the job never ran
    assert record.reason is not None
    assert "secret_env X (env:JOBGATE_URL): JOBGATE_URL is one of the worker's own" in record.reason
    assert "worker-pw-LEAK" not in record.model_dump_json()


def test_the_workers_storage_credentials_need_their_exact_name() -> None:
    data = {
        "name": "c",
        "backend": "slurm",
        "policy": {"allowed_secret_vars": ["LAB_*"]},
        "storage": {
            "prefix": "s3://bucket/jobs",
            "credentials": {
                "access_key_id": "env:LAB_S3_KEY_ID",
                "secret_access_key": "env:LAB_S3_SECRET",
            },
        },
    }
    spec = JobSpec(name="x", command="true", secret_env={"S": "env:LAB_S3_SECRET"})
    (found,) = [f for f in evaluate_policy(spec, profile_from_data(data))
                if f.code == "secret-env-not-allowed"]  # fmt: skip
    assert found.level is PolicyLevel.BLOCK
    assert "LAB_S3_SECRET holds the worker's own storage credentials" in found.message
    data["policy"] = {"allowed_secret_vars": ["LAB_S3_SECRET"]}
    assert "secret-env-not-allowed" not in {
        f.code
        for f in evaluate_policy(spec, profile_from_data(data))
        if f.level is PolicyLevel.BLOCK
    }


def test_values_marked_secret_are_refused_on_kubernetes_before_they_are_recorded() -> None:
    """On Kubernetes a value would be written into the Job: the client's preflight, which
    sees the spec before its secrets are redacted, already blocks a marked one."""
    profile = profile_from_data({"name": "k", "backend": "kubernetes"})
    spec = JobSpec(name="x", command="true", image="python:3.12", env={"DB_PASS": "pw"},
                   secret_names=["DB_PASS"])  # fmt: skip
    (found,) = [f for f in evaluate_policy(spec, profile) if f.code == "secret-value-on-kubernetes"]
    assert found.level is PolicyLevel.BLOCK
    assert found.message.startswith("DB_PASS: secret values would be written into the Job")
