"""Kubernetes Job manifests and status, as pure functions; every manifest is validated
against the Kubernetes OpenAPI schema of the profile's target version (strict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from jobgate.client import JobSpec, JobStatus
from jobgate.client.errors import BackendError
from jobgate.client.policy import blocking, evaluate_policy
from jobgate.client.profile_schema import profile_from_data
from jobgate.client.profiles import apply_defaults, load_profile
from jobgate.workers.backends.kubernetes import classify_job, render_job_manifest

ROOT = Path(__file__).resolve().parents[1]
JOB_ID = "01m7zp0000000000000000000a"

PROFILE = profile_from_data({
    "name": "k8s", "backend": "kubernetes", "job_name_prefix": "jg",
    "kubernetes": {
        "namespace": "jobs", "image": "python:3.11-slim", "image_pull_secrets": ["regcred"],
        "service_account": "runner", "node_selector": {"pool": "batch"},
        "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [{"name": "scratch", "mount_path": "/scratch", "pvc": "scratch-pvc"}],
        "namespace_overrides": {"gpu": {"service_account": "gpu-runner",
                                        "image_pull_policy": "Always"}},
        "pod_failure_policy": True,
    },
})  # fmt: skip


def validate(manifest: dict[str, Any], version: str = "1.32") -> None:
    kubernetes_validate.validate(manifest, f"{version}.0", strict=True)


def test_a_full_manifest_is_a_valid_job() -> None:
    spec = JobSpec(
        name="fit", command="python fit.py > out.txt", working_dir="/scratch/run",
        env={"MODE": "fast"}, secret_env={"TOKEN": "k8s:api/token"},
        resources={"cpus": 4, "memory_mb": 8000, "gpus": 2, "walltime_s": 7200},
        kubernetes={
            "limits": {"cpus": 8, "memory_mb": 16000},
            "volumes": [{"name": "cfg", "mount_path": "/etc/fit", "config_map": "fit-cfg",
                         "read_only": True, "sub_path": "fit.yaml"},
                        {"name": "tmp", "mount_path": "/tmp", "empty_dir": True},
                        {"name": "keys", "mount_path": "/keys", "secret": "fit-keys"}],
            "required_labels": {"zone": "a"}, "desired_labels": {"disk": "ssd"},
            "prohibited_labels": {"flaky": "yes"}, "preemptible": True,
            "tolerations": [{"key": "gpu", "operator": "Equal", "value": "yes"}],
        },
    )  # fmt: skip
    manifest = render_job_manifest(spec, PROFILE, JOB_ID, tenant="lab-a", owner="ana@lab")
    validate(manifest)
    assert manifest["metadata"] == {
        "name": f"jg-{JOB_ID}", "namespace": "jobs",
        "labels": {"app.kubernetes.io/managed-by": "jobgate", "jobgate.io/job-id": JOB_ID,
                   "jobgate.io/cluster": "k8s", "jobgate.io/tenant": "lab-a",
                   "jobgate.io/owner": "ana_lab"},
    }  # fmt: skip
    job = manifest["spec"]
    assert (job["backoffLimit"], job["activeDeadlineSeconds"], job["ttlSecondsAfterFinished"]) == (
        0, 7200, 3600)  # fmt: skip
    assert job["podFailurePolicy"]["rules"][0]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}]  # fmt: skip
    pod = job["template"]["spec"]
    assert job["template"]["metadata"]["labels"]["jobgate.io/job-id"] == JOB_ID
    assert (pod["restartPolicy"], pod["serviceAccountName"]) == ("Never", "runner")
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    (container,) = pod["containers"]
    assert container["command"] == ["/bin/sh", "-c", "python fit.py > out.txt"]
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "8000Mi", "nvidia.com/gpu": "2"},
        "limits": {"cpu": "8", "memory": "16000Mi", "nvidia.com/gpu": "2"},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "api", "key": "token"}}
    assert env["JOBGATE_JOB_ID"]["value"] == JOB_ID
    assert [v["name"] for v in pod["volumes"]] == ["scratch", "cfg", "tmp", "keys"]
    assert container["volumeMounts"][1] == {"name": "cfg", "mountPath": "/etc/fit",
                                            "readOnly": True, "subPath": "fit.yaml"}  # fmt: skip
    node = pod["affinity"]["nodeAffinity"]
    required = node["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert required[0]["matchExpressions"] == [
        {"key": "zone", "operator": "In", "values": ["a"]},
        {"key": "flaky", "operator": "NotIn", "values": ["yes"]},
    ]
    preferred = node["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [p["preference"]["matchExpressions"][0]["key"] for p in preferred] == [
        "disk", "cloud.google.com/gke-preemptible"]  # fmt: skip
    assert {"key": "cloud.google.com/gke-preemptible", "operator": "Exists",
            "effect": "NoSchedule"} in pod["tolerations"]  # fmt: skip


@pytest.mark.parametrize("version", ["1.29", "1.32", "1.34"])
def test_minimal_manifests_are_valid_on_every_target_version(version: str) -> None:
    for spec in (
        JobSpec(name="a", command=["python", "-c", "print(1)"], image="python:3.11"),
        JobSpec(name="b", script="#!/usr/bin/env python3\nprint(2)\n"),
        JobSpec(name="c", command="true", kubernetes={"namespace": "gpu", "preemptible": False}),
    ):
        validate(render_job_manifest(spec, PROFILE, JOB_ID), version)


def test_exec_form_scripts_and_namespace_overrides() -> None:
    argv = render_job_manifest(JobSpec(name="a", command=["echo", "a b"]), PROFILE, JOB_ID)
    assert argv["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "a b"]
    script = JobSpec(name="b", script="#!/usr/bin/env python3\nprint(2)\n")
    container = render_job_manifest(script, PROFILE, JOB_ID)["spec"]["template"]["spec"][
        "containers"][0]  # fmt: skip
    assert {"name": "JOBGATE_SCRIPT", "value": script.script} in container["env"]
    gpu = render_job_manifest(
        JobSpec(name="c", command="true", kubernetes={"namespace": "gpu"}), PROFILE, JOB_ID
    )
    assert gpu["metadata"]["namespace"] == "gpu"
    assert gpu["spec"]["template"]["spec"]["serviceAccountName"] == "gpu-runner"
    assert gpu["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_secret_values_never_reach_a_manifest() -> None:
    with pytest.raises(BackendError, match="k8s:<secret name>/<key>"):
        render_job_manifest(JobSpec(name="a", command="true", secret_env={"T": "env:T"}),
                            PROFILE, JOB_ID)  # fmt: skip
    redacted = JobSpec(name="a", command="true", env={"API_TOKEN": "<redacted>"})
    assert "secret-value-on-kubernetes" in [
        f.code for f in blocking(evaluate_policy(redacted, PROFILE))
    ]
    elsewhere = load_profile("local")
    spec = JobSpec(name="a", command="true", secret_env={"T": "k8s:api/token"})
    assert "k8s-secret-elsewhere" in [f.code for f in evaluate_policy(spec, elsewhere)]


def test_the_shipped_profile_renders_a_valid_job() -> None:
    profile = load_profile(str(ROOT / "profiles" / "kubernetes.yaml"))
    spec = apply_defaults(JobSpec(name="a", command="true"), profile)
    assert blocking(evaluate_policy(spec, profile)) == []
    validate(render_job_manifest(spec, profile, JOB_ID), profile.kubernetes.target_version)  # type: ignore[union-attr]


def test_rbac_is_least_privilege_and_valid() -> None:
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "rbac.yaml").read_text()))
    for document in documents:
        validate(document)
    (role,) = [d for d in documents if d["kind"] == "Role"]
    assert {(r["apiGroups"][0], r["resources"][0]): sorted(r["verbs"]) for r in role["rules"]} == {
        ("batch", "jobs"): ["create", "delete", "get", "list", "watch"],
        ("", "pods"): ["get", "list", "watch"],
        ("", "pods/log"): ["get"],
    }


def job(*conditions: tuple[str, str], **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "j"}, "status": {
        "conditions": [{"type": t, "status": "True", "reason": r} for t, r in conditions],
        **status}}  # fmt: skip


def pod(phase: str = "Pending", waiting: str | None = None, unschedulable: bool = False,
        ready: bool = False, created: str = "2026-11-21T20:00:00Z") -> dict[str, Any]:  # fmt: skip
    state: dict[str, Any] = {"waiting": {"reason": waiting, "message": "m"}} if waiting else {}
    conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                   "message": "0/3 nodes are available"}] if unschedulable else []  # fmt: skip
    containers = [{"name": "job", "ready": ready, "state": state}]
    return {"metadata": {"name": "p", "creationTimestamp": created},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": containers}}  # fmt: skip


@pytest.mark.parametrize(
    ("the_job", "pods", "expected"),
    [
        (job(("Complete", "")), [], (JobStatus.SUCCEEDED, None)),
        (job(("SuccessCriteriaMet", "CompletionsReached")), [], (JobStatus.SUCCEEDED, None)),
        (job(("Failed", "BackoffLimitExceeded")), [], (JobStatus.FAILED, "BackoffLimitExceeded")),
        (job(("Failed", "DeadlineExceeded")), [], (JobStatus.FAILED, "DeadlineExceeded")),
        (job(("FailureTarget", "PodFailurePolicy")), [], (JobStatus.FAILED, "PodFailurePolicy")),
        (job(("Suspended", "JobSuspended")), [], (JobStatus.SUSPENDED, "JobSuspended")),
        (job(active=1), [pod("Running", ready=True)], (JobStatus.RUNNING, None)),
        (job(active=1), [pod(waiting="ErrImagePull")], (JobStatus.PENDING, "ErrImagePull")),
        (job(active=1), [pod(waiting="ImagePullBackOff")], (JobStatus.PENDING, "ImagePullBackOff")),
        (job(active=1), [pod(unschedulable=True)], (JobStatus.PENDING, "Unschedulable")),
        (job(), [], (JobStatus.PENDING, None)),
        (job(failed=1, active=1), [pod("Failed"), pod("Running", created="2026-11-21T20:01:00Z")],
         (JobStatus.RUNNING, None)),  # failed > 0 without a terminal condition: retrying
    ],
)  # fmt: skip
def test_classify_job(
    the_job: dict[str, Any], pods: list[dict[str, Any]], expected: tuple[JobStatus, str | None]
) -> None:
    assert classify_job(the_job, pods) == expected
