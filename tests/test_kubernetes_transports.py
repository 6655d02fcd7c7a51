"""The two transports, the official client and kubectl, give the same answers and the
same errors against the API server emulator."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobgate.client.errors import BackendError
from jobgate.client.profile_schema import KubernetesSettings
from jobgate.workers.backends.kubernetes.api import ClientApi, ClusterApi, KubectlApi
from tests.emulators.kubernetes.kubeemu import KubeApiServer

NAMESPACE = "jobs"


def manifest(name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    container = {"name": "job", "image": "busybox"}
    pod = {"restartPolicy": "Never", "containers": [container]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": {"t": "1"}},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"t": "1"}}, "spec": pod}},
    }


@pytest.fixture(params=["client", "kubectl"])
def transport(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ClusterApi, KubeApiServer]]:
    monkeypatch.setenv("KUBECACHEDIR", str(tmp_path / "kube-cache"))  # not ~/.kube/cache
    with KubeApiServer(tls=True, namespaces=(NAMESPACE,)) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
        settings = KubernetesSettings(namespace=NAMESPACE, kubeconfig=str(kubeconfig),
                                      request_attempts=2)  # fmt: skip
        yield (ClientApi(settings) if request.param == "client" else KubectlApi(settings)), api


def test_create_list_log_and_idempotent_delete(transport: tuple[ClusterApi, KubeApiServer]) -> None:
    cluster, api = transport
    assert cluster.create_job(NAMESPACE, manifest("a")) == "a"
    assert cluster.create_job(NAMESPACE, manifest("a")) == "a"  # again: the same Job
    assert [j["metadata"]["name"] for j in cluster.list_jobs(NAMESPACE, "t=1")] == ["a"]
    pod = api.create_pod_for(NAMESPACE, "a")
    api.set_pod_running(pod)
    api.append_log(pod, "out\n")
    assert [p["metadata"]["name"] for p in cluster.list_pods(NAMESPACE, "job-name=a")] == [pod]
    assert cluster.pod_log(NAMESPACE, pod, "job") == b"out\n"
    cluster.delete_job(NAMESPACE, "a")
    cluster.delete_job(NAMESPACE, "a")  # already gone: fine
    assert api.job(NAMESPACE, "a") is None


def test_same_refusals(transport: tuple[ClusterApi, KubeApiServer]) -> None:
    cluster, api = transport
    with pytest.raises(BackendError, match="namespace 'elsewhere' is not the backend's 'jobs'"):
        cluster.create_job(NAMESPACE, manifest("b", namespace="elsewhere"))
    bad = manifest("c")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(BackendError, match="invalid"):
        cluster.create_job(NAMESPACE, bad)
    api.set_rules([])
    with pytest.raises(BackendError, match="RBAC: the worker's account may not list"):
        cluster.list_jobs(NAMESPACE, "t=1")


def test_a_secret_is_created_replaced_and_deleted(
    transport: tuple[ClusterApi, KubeApiServer],
) -> None:
    cluster, api = transport
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "s-staging", "namespace": NAMESPACE},
              "stringData": {"fetch": '{"url": "one"}'}}  # fmt: skip
    cluster.put_secret(NAMESPACE, secret)
    cluster.put_secret(NAMESPACE, {**secret, "stringData": {"fetch": "two"}})  # a retried submit
    stored = api.secret(NAMESPACE, "s-staging")
    assert stored is not None
    assert "stringData" not in stored
    assert base64.b64decode(stored["data"]["fetch"]) == b"two"
    assert stored["metadata"].get("annotations") is None  # no last-applied copy of the values
    cluster.delete_secret(NAMESPACE, "s-staging")
    cluster.delete_secret(NAMESPACE, "s-staging")  # already gone: fine
    assert api.secret(NAMESPACE, "s-staging") is None
