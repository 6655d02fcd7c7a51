"""The Kubernetes backend end to end: the gateway, a real worker and the real
`kubernetes` client (or the real kubectl) against the API server emulator in
tests/emulators/kubernetes, where the test plays the Job controller and the kubelet.

What every backend must do is in the contract suite (tests/contract, where the
emulator runs pods as processes); here is what is Kubernetes' own: the manifest,
pending reasons, API faults, RBAC, the kubectl path, credentials, output tails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest

from jobgate.client import Gateway, JobSpec, JobStatus
from jobgate.client.models import JobRecord
from tests.emulators.kubernetes.kubeemu import KubeApiServer, Rule
from tests.support.kubernetes import NAMESPACE, created, k8s_profile, kubectl
from tests.support.records import statuses
from tests.support.waiting import TIMEOUT_S, wait_for
from tests.support.workers import WorkerFactory


@pytest.fixture
def api() -> Iterator[KubeApiServer]:
    with KubeApiServer(tls=True, namespaces=(NAMESPACE,)) as server:
        yield server


def test_the_job_manifest_names_image_command_labels_and_owner(
    gateway: Gateway, api: KubeApiServer, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(k8s_profile(tmp_path, api))
    ok = gateway.submit(JobSpec(name="ok", command="echo hello"), "k8sc")
    name = created(api, ok.id)
    manifest = api.job(NAMESPACE, name)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["command"]) == (
        "busybox:1.36", ["/bin/sh", "-c", "echo hello"])  # fmt: skip
    assert manifest["metadata"]["labels"]["jobgate.io/job-id"] == ok.id
    (sent,) = [r.body for r in api.requests("POST", r"/namespaces/jobs/jobs$")
               if f"jobgate-{ok.id}" in str(r.body)]  # fmt: skip
    kubernetes_validate.validate(json.loads(sent), "1.32.0", strict=True)  # what the worker sent
    owner = ok.record().owner
    assert manifest["metadata"]["labels"]["jobgate.io/owner"] == owner
    assert {"name": "JOBGATE_OWNER", "value": owner} in container["env"]
    api.run_job(NAMESPACE, name, exit_code=0, log="hello\n")
    record = ok.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.exit_code) == (JobStatus.SUCCEEDED, 0)
    assert "".join(ok.logs()) == "hello\n"


def test_pending_reasons_an_image_error_and_a_deadline(
    gateway: Gateway, api: KubeApiServer, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(k8s_profile(tmp_path, api))
    stuck = gateway.submit(JobSpec(name="stuck", command="true"), "k8sc")
    pulled = gateway.submit(JobSpec(name="pull", command="true", image="nope/nope:1"), "k8sc")
    slow = gateway.submit(JobSpec(name="slow", command="true"), "k8sc")
    stuck_pod = api.create_pod_for(NAMESPACE, created(api, stuck.id))
    api.set_pod_unschedulable(stuck_pod)
    wait_for(lambda: stuck.record(fresh=True).reason == "Unschedulable", what="Unschedulable")
    assert stuck.status() is JobStatus.PENDING

    pull_name = created(api, pulled.id)
    api.set_pod_waiting(api.create_pod_for(NAMESPACE, pull_name), "ErrImagePull")
    record = pulled.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert (record.reason or "").startswith("ErrImagePull")
    wait_for(lambda: api.job(NAMESPACE, pull_name) is None, what="the Job to be deleted")

    slow_name = created(api, slow.id)
    api.set_pod_running(api.create_pod_for(NAMESPACE, slow_name))
    wait_for(lambda: slow.status() is JobStatus.RUNNING, what="running")
    api.fail_job(NAMESPACE, slow_name, reason="DeadlineExceeded")
    record = slow.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.reason) == (JobStatus.FAILED, "DeadlineExceeded")


def test_throttling_server_errors_and_dropped_connections_fail_no_job(
    gateway: Gateway, api: KubeApiServer, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    worker = start_worker(k8s_profile(tmp_path, api))
    job = gateway.submit(JobSpec(name="j", command="true"), "k8sc")
    name = created(api, job.id)
    api.fail_next(429, count=2, method="GET", path=r"/namespaces/jobs/jobs$", retry_after=1)
    api.fail_next(503, count=1, method="GET", path=r"/namespaces/jobs/jobs$")
    api.drop_next(count=1, method="GET", path=r"/namespaces/jobs/jobs$")
    wait_for(lambda: len([r for r in api.requests("GET", r"/namespaces/jobs/jobs$")
                          if r.fault]) >= 4, what="four faulty answers")  # fmt: skip
    api.run_job(NAMESPACE, name, log="fine\n")
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert JobStatus.FAILED not in statuses(record)
    log = worker.log_text()
    assert "429 Too many requests, please try again later.; retrying in 1 s" in log


def test_rbac_refusal_is_a_clear_error(
    gateway: Gateway, api: KubeApiServer, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    api.set_rules([Rule(verbs=("get", "list", "watch"))])
    start_worker(k8s_profile(tmp_path, api))
    job = gateway.submit(JobSpec(name="j", command="true"), "k8sc")
    record: JobRecord = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert "RBAC: the worker's account may not create jobs.batch in namespace jobs" in (
        record.reason or "")  # fmt: skip
    assert "kubernetes" not in (record.reason or "").lower().replace("kubernetes/", "")


def test_the_kubectl_path_runs_logs_and_cancels(
    gateway: Gateway, api: KubeApiServer, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    if not any((Path(d) / "kubectl").exists() for d in os.environ["PATH"].split(os.pathsep)):
        pytest.fail("kubectl is not on PATH (.ci/run installs Debian's kubernetes-client)")
    # kubectl caches discovery per server: keep it out of ~/.kube/cache
    env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "kube-cache")}
    start_worker(k8s_profile(tmp_path, api, kubernetes={"use_kubectl": True}), env=env)
    ok = gateway.submit(JobSpec(name="ok", command="echo via kubectl"), "k8sc")
    doomed = gateway.submit(JobSpec(name="doomed", command="sleep 600"), "k8sc")
    api.run_job(NAMESPACE, created(api, ok.id), log="via kubectl\n")
    assert ok.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert "".join(ok.logs()) == "via kubectl\n"
    doomed_name = created(api, doomed.id)
    assert doomed.cancel(timeout_s=TIMEOUT_S).status is JobStatus.CANCELLED
    wait_for(lambda: api.job(NAMESPACE, doomed_name) is None, what="kubectl delete")
    agents = {r.headers.get("user-agent", "").split("/")[0] for r in api.requests("POST")}
    assert agents == {"kubectl"}


def test_a_job_pending_past_the_profiles_timeout_fails_and_is_deleted(
    gateway: Gateway, api: KubeApiServer, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(k8s_profile(tmp_path, api, kubernetes={"pending_timeout_s": 1}))
    job = gateway.submit(JobSpec(name="stuck", command="true"), "k8sc")
    name = created(api, job.id)
    api.set_pod_unschedulable(api.create_pod_for(NAMESPACE, name))
    record = job.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.reason) == (JobStatus.FAILED, "pending for more than 1 s")
    wait_for(lambda: api.job(NAMESPACE, name) is None, what="the Job to be deleted")


def test_rotated_credentials_are_picked_up_by_a_running_worker(
    gateway: Gateway, api: KubeApiServer, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    # one pool process: the one that created the first Job holds the old token
    start_worker(k8s_profile(tmp_path, api), concurrency=1)
    first = gateway.submit(JobSpec(name="a", command="true"), "k8sc")
    api.run_job(NAMESPACE, created(api, first.id))
    assert first.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    # the token is rotated: the kubeconfig gets a new one, the old one stops working
    api.add_user("system:serviceaccount:jobs:rotated", "rotated-token")
    api.write_kubeconfig(tmp_path / "kubeconfig", token="rotated-token", namespace=NAMESPACE)
    api.revoke_token(api.token)
    second = gateway.submit(JobSpec(name="b", command="true"), "k8sc")
    api.run_job(NAMESPACE, created(api, second.id))
    assert second.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    # the old token was refused once (a poll or the create), then the new one used
    assert 401 in [r.status for r in api.requests()]
    (create,) = api.requests("POST", r"/namespaces/jobs/jobs$")[-1:]
    assert (create.status, create.user) == (201, "system:serviceaccount:jobs:rotated")


def test_the_end_of_the_output_outlives_the_job(
    gateway: Gateway, api: KubeApiServer, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    """Kubernetes deletes a finished Job and its logs after ttlSecondsAfterFinished; the
    gateway keeps the end of the output when the job finishes (output_tail_bytes)."""
    start_worker(k8s_profile(tmp_path, api, kubernetes={"output_tail_bytes": 8}))
    job = gateway.submit(JobSpec(name="talk", command="true"), "k8sc")
    name = created(api, job.id)
    api.run_job(NAMESPACE, name, log="line one\nline two\n")
    assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert "".join(job.logs()) == "line one\nline two\n"  # from the pod, while it exists
    kubectl(api, tmp_path, "delete", "job", name, "-n", NAMESPACE)  # as the TTL would
    wait_for(lambda: not api.pods(NAMESPACE, job_name=name), what="the pods to go")
    assert "".join(job.logs()) == "ine two\n"  # the last 8 bytes, kept by the gateway
