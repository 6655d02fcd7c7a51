"""The Kubernetes API server emulator in tests/emulators/kubernetes, through the real
``kubernetes`` Python client and the real kubectl, as a backend would use them.

Each test starts its own server on a free loopback port (in a thread of this
process) and stops it in teardown. Waits poll with a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from tests.emulators.kubernetes.kubeemu import (
    KubeApiServer,
    Outcome,
    Rule,
    timefmt,
)
from tests.emulators.kubernetes.kubeemu import selectors as label_selectors
from tests.support.waiting import wait_for

kubernetes = pytest.importorskip("kubernetes", reason="pip install 'kubernetes>=37,<38'")
from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")
NS = "jobs"
DEADLINE_S = 10.0


def job_body(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "job", "image": "busybox:1.36", "command": ["true"]}],
                }
            }
        },
    }


def status_of(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body)
    return body


class Kube:
    """The official client's APIs on one kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.batch = client.BatchV1Api(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    def close(self) -> None:
        self.api_client.close()


@pytest.fixture
def api() -> Iterator[KubeApiServer]:
    with KubeApiServer(gc_delay_s=0.02) as server:
        yield server


@pytest.fixture
def kube(api: KubeApiServer, tmp_path: Path) -> Iterator[Kube]:
    k = Kube(api.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS))
    yield k
    k.close()


@pytest.fixture
def tls_api() -> Iterator[KubeApiServer]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl CLI to make a certificate")
    with KubeApiServer(tls=True, gc_delay_s=0.02) as server:
        yield server


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KUBECACHEDIR": str(kubeconfig.parent / "kube-cache"),
    }
    return subprocess.run(
        [KUBECTL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


# --- Jobs through the official client -------------------------------------------------


def test_create_job_gets_the_fields_an_api_server_sets(kube: Kube) -> None:
    job = kube.batch.create_namespaced_job(NS, job_body("hello", app="jobgate"))
    meta, spec = job.metadata, job.spec
    assert meta.uid
    assert int(meta.resource_version) > 0
    assert meta.generation == 1
    assert meta.creation_timestamp is not None
    assert meta.namespace == NS
    assert meta.labels == {"app": "jobgate"}  # given labels are kept
    assert (spec.completions, spec.parallelism, spec.backoff_limit) == (1, 1, 6)
    assert spec.completion_mode == "NonIndexed"
    assert spec.suspend is False
    assert spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": meta.uid}
    assert spec.template.metadata.labels == {
        "batch.kubernetes.io/controller-uid": meta.uid,
        "batch.kubernetes.io/job-name": "hello",
        "controller-uid": meta.uid,
        "job-name": "hello",
    }
    container = spec.template.spec.containers[0]
    assert container.image_pull_policy == "IfNotPresent"
    assert container.termination_message_path == "/dev/termination-log"
    assert job.status.conditions is None
    assert job.status.active is None

    unlabelled = kube.batch.create_namespaced_job(NS, job_body("bare"))
    assert unlabelled.metadata.labels["job-name"] == "bare"  # empty labels: the template's

    got = kube.batch.read_namespaced_job("hello", NS)
    assert got.metadata.uid == meta.uid


def test_list_jobs_by_label_and_field_selectors(kube: Kube) -> None:
    kube.batch.create_namespaced_job(NS, job_body("a", app="jobgate", tier="x"))
    kube.batch.create_namespaced_job(NS, job_body("b", app="jobgate", tier="y"))
    kube.batch.create_namespaced_job(NS, job_body("c", app="other"))

    def names(**kw: str) -> list[str]:
        listed = kube.batch.list_namespaced_job(NS, **kw)
        assert listed.kind == "JobList"
        assert listed.api_version == "batch/v1"
        assert int(listed.metadata.resource_version) > 0
        return [j.metadata.name for j in listed.items]

    assert names() == ["a", "b", "c"]
    assert names(label_selector="app=jobgate") == ["a", "b"]
    assert names(label_selector="app==jobgate,tier!=x") == ["b"]
    assert names(label_selector="tier in (x, z)") == ["a"]
    assert names(label_selector="tier notin (x)") == ["b", "c"]
    assert names(label_selector="tier") == ["a", "b"]
    assert names(label_selector="!tier") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b", label_selector="app=jobgate") == ["a"]
    page = kube.batch.list_namespaced_job(NS, limit=2)
    assert len(page.items) == 2
    assert page.metadata.remaining_item_count == 1
    rest = kube.batch.list_namespaced_job(NS, limit=2, _continue=page.metadata._continue)
    assert [j.metadata.name for j in rest.items] == ["c"]


def test_raw_list_items_carry_no_kind(api: KubeApiServer, kube: Kube) -> None:
    kube.batch.create_namespaced_job(NS, job_body("raw"))
    resp = kube.batch.list_namespaced_job(NS, _preload_content=False)
    doc = json.loads(resp.data)
    assert doc["kind"] == "JobList"
    assert doc["metadata"]["resourceVersion"]
    assert "kind" not in doc["items"][0]
    assert doc["items"][0]["status"] == {}


def test_errors_are_status_objects(kube: Kube) -> None:
    kube.batch.create_namespaced_job(NS, job_body("dup"))
    with pytest.raises(ApiException) as conflict:
        kube.batch.create_namespaced_job(NS, job_body("dup"))
    assert conflict.value.status == 409
    assert status_of(conflict.value)["reason"] == "AlreadyExists"

    with pytest.raises(ApiException) as missing:
        kube.batch.read_namespaced_job("nope", NS)
    assert missing.value.status == 404
    assert status_of(missing.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'jobs.batch "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "batch", "kind": "jobs"},
        "code": 404,
    }

    with pytest.raises(ApiException) as invalid:
        kube.batch.create_namespaced_job(NS, {**job_body("x"), "metadata": {}})
    assert invalid.value.status == 422
    body = status_of(invalid.value)
    assert body["message"] == (
        'Job.batch "" is invalid: metadata.name: Required value: name or generateName is required'
    )
    assert body["details"]["causes"][0]["field"] == "metadata.name"

    with pytest.raises(ApiException) as bad_name:
        kube.batch.create_namespaced_job(NS, job_body("Not_Valid"))
    assert bad_name.value.status == 422
    assert "RFC 1123" in status_of(bad_name.value)["message"]

    elsewhere = {**job_body("x"), "metadata": {"name": "x", "namespace": "other"}}
    with pytest.raises(ApiException) as mismatch:  # the real API server says 400 here
        kube.batch.create_namespaced_job(NS, elsewhere)
    assert mismatch.value.status == 400
    assert status_of(mismatch.value)["reason"] == "BadRequest"

    with pytest.raises(ApiException) as no_namespace:
        kube.batch.create_namespaced_job("absent", job_body("x"))
    assert status_of(no_namespace.value)["message"] == 'namespaces "absent" not found'

    always = job_body("always")
    always["spec"]["template"]["spec"].pop("restartPolicy")
    with pytest.raises(ApiException) as policy:
        kube.batch.create_namespaced_job(NS, always)
    assert 'Unsupported value: "Always"' in status_of(policy.value)["message"]


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("a=b", {"a": "b"}, True),
        ("a=b", {}, False),
        ("a!=b", {}, True),
        ("a in (x,y),c", {"a": "y", "c": ""}, True),
        ("a notin (x)", {"a": "x"}, False),
        ("!a", {"b": "1"}, True),
        ("n>3", {"n": "4"}, True),
        ("example.com/key=v-1", {"example.com/key": "v-1"}, True),
    ],
)
def test_label_selector_semantics(selector: str, labels: dict[str, str], matches: bool) -> None:
    parsed = label_selectors.parse_labels(selector)
    assert label_selectors.labels_match(parsed, {"metadata": {"labels": labels}}) is matches


def test_bad_label_selector_is_400(kube: Kube) -> None:
    with pytest.raises(ApiException) as err:
        kube.batch.list_namespaced_job(NS, label_selector="a in (x")
    assert err.value.status == 400


# --- watch ----------------------------------------------------------------------------


def test_watch_from_resource_version(api: KubeApiServer, kube: Kube) -> None:
    start = kube.batch.list_namespaced_job(NS).metadata.resource_version
    seen: list[tuple[str, str]] = []

    def follow() -> None:
        w = watch.Watch()
        for event in w.stream(
            kube.batch.list_namespaced_job,
            NS,
            label_selector="app=w",
            resource_version=start,
            timeout_seconds=2,
        ):
            seen.append((event["type"], event["object"].metadata.name))

    thread = threading.Thread(target=follow)
    thread.start()
    kube.batch.create_namespaced_job(NS, job_body("w1", app="w"))
    kube.batch.create_namespaced_job(NS, job_body("other", app="no"))
    kube.batch.patch_namespaced_job("w1", NS, {"metadata": {"labels": {"extra": "1"}}})
    kube.batch.patch_namespaced_job("w1", NS, {"metadata": {"labels": {"app": "gone"}}})
    began = time.monotonic()
    thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive()
    assert time.monotonic() - began < 5  # timeoutSeconds ended the stream
    # leaving the selector is a DELETED event, as the watch cache sends it
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_without_resource_version_starts_with_added(kube: Kube) -> None:
    kube.batch.create_namespaced_job(NS, job_body("existing"))
    resp = kube.batch.list_namespaced_job(NS, watch=True, timeout_seconds=1, _preload_content=False)
    lines = [json.loads(line) for line in resp.read().splitlines()]
    resp.release_conn()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "existing")]
    assert lines[0]["object"]["kind"] == "Job"


def test_watch_from_a_compacted_resource_version_is_410(tmp_path: Path) -> None:
    with KubeApiServer(watch_history=3) as server:
        k = Kube(server.write_kubeconfig(tmp_path / "kc", namespace=NS))
        try:
            old = k.batch.list_namespaced_job(NS).metadata.resource_version
            for i in range(5):
                k.batch.create_namespaced_job(NS, job_body(f"j{i}"))
            resp = k.batch.list_namespaced_job(
                NS, watch=True, resource_version=old, timeout_seconds=1, _preload_content=False
            )
            events = [json.loads(line) for line in resp.read().splitlines()]
            resp.release_conn()
        finally:
            k.close()
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


# --- pods, the job controller, the kubelet ------------------------------------------------


def test_job_pods_and_status_follow_the_controller(api: KubeApiServer, kube: Kube) -> None:
    job = kube.batch.create_namespaced_job(NS, job_body("run"))
    pod_name = api.create_pod_for(NS, "run")
    pod = kube.core.read_namespaced_pod(pod_name, NS)
    assert pod_name.startswith("run-")
    assert len(pod_name) == len("run-") + 5
    assert pod.metadata.labels["job-name"] == "run"
    assert pod.metadata.labels["batch.kubernetes.io/controller-uid"] == job.metadata.uid
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Job",
        "run",
        job.metadata.uid,
        True,
    )
    assert pod.metadata.finalizers == ["batch.kubernetes.io/job-tracking"]
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None
    listed = kube.core.list_namespaced_pod(NS, label_selector="job-name=run")
    assert [p.metadata.name for p in listed.items] == [pod_name]
    status = kube.batch.read_namespaced_job("run", NS).status
    assert status.active == 1
    assert status.ready == 0
    assert status.start_time is not None

    api.set_pod_unschedulable(pod_name)
    scheduled = kube.core.read_namespaced_pod(pod_name, NS).status.conditions
    assert [(c.type, c.status, c.reason) for c in scheduled] == [
        ("PodScheduled", "False", "Unschedulable")
    ]

    api.set_pod_waiting(pod_name, "ErrImagePull")
    waiting = kube.core.read_namespaced_pod(pod_name, NS).status
    assert waiting.phase == "Pending"
    assert waiting.host_ip
    state = waiting.container_statuses[0].state.waiting
    assert state.reason == "ErrImagePull"
    assert "failed to pull" in state.message

    api.set_pod_running(pod_name)
    running = kube.core.read_namespaced_pod(pod_name, NS).status
    assert running.phase == "Running"
    assert running.container_statuses[0].ready
    assert running.container_statuses[0].state.running.started_at is not None
    assert kube.batch.read_namespaced_job("run", NS).status.ready == 1

    api.finish_pod(pod_name, 137, "OOMKilled")
    done = kube.core.read_namespaced_pod(pod_name, NS)
    terminated = done.status.container_statuses[0].state.terminated
    assert done.status.phase == "Failed"
    assert (terminated.exit_code, terminated.reason) == (137, "OOMKilled")
    assert terminated.started_at is not None
    assert terminated.finished_at is not None
    assert done.metadata.finalizers is None  # counted: the controller dropped its finalizer
    counted = kube.batch.read_namespaced_job("run", NS).status
    assert counted.failed == 1
    assert counted.active is None

    api.fail_job(NS, "run", "BackoffLimitExceeded")
    failed = kube.batch.read_namespaced_job("run", NS).status
    assert [(c.type, c.status, c.reason) for c in failed.conditions] == [
        ("FailureTarget", "True", "BackoffLimitExceeded"),
        ("Failed", "True", "BackoffLimitExceeded"),
    ]
    assert failed.conditions[1].message == "Job has reached the specified backoff limit"
    assert failed.conditions[1].last_transition_time is not None
    assert failed.completion_time is None


def test_complete_and_suspend_jobs(api: KubeApiServer, kube: Kube) -> None:
    kube.batch.create_namespaced_job(NS, job_body("ok"))
    pod = api.run_job(NS, "ok", log="done\n")
    status = kube.batch.read_namespaced_job("ok", NS).status
    assert [(c.type, c.reason) for c in status.conditions] == [
        ("SuccessCriteriaMet", "CompletionsReached"),
        ("Complete", "CompletionsReached"),
    ]
    assert status.succeeded == 1
    assert status.completion_time is not None
    assert kube.core.read_namespaced_pod(pod, NS).status.phase == "Succeeded"

    kube.batch.create_namespaced_job(NS, job_body("late"))
    api.suspend_job(NS, "late")
    suspended = kube.batch.read_namespaced_job("late", NS)
    assert suspended.spec.suspend is True
    assert suspended.metadata.generation == 2
    assert [(c.type, c.status, c.reason) for c in suspended.status.conditions] == [
        ("Suspended", "True", "JobSuspended")
    ]
    api.fail_job(NS, "late", "DeadlineExceeded")
    reason = kube.batch.read_namespaced_job("late", NS).status.conditions[-1]
    assert reason.message == "Job was active longer than specified deadline"


def test_pod_logs_as_text(api: KubeApiServer, kube: Kube) -> None:
    kube.batch.create_namespaced_job(NS, job_body("logs"))
    pod = api.create_pod_for(NS, "logs")
    # not scheduled yet: the API server has no kubelet to ask, and streams nothing
    assert kube.core.read_namespaced_pod_log(pod, NS) == ""
    api.set_pod_waiting(pod, "ContainerCreating")
    with pytest.raises(ApiException) as waiting:
        kube.core.read_namespaced_pod_log(pod, NS, container="job")
    assert waiting.value.status == 400
    assert status_of(waiting.value)["message"] == (
        f'container "job" in pod "{pod}" is waiting to start: ContainerCreating'
    )
    api.set_pod_running(pod)
    an_hour_ago = timefmt.now() - timedelta(hours=1)
    api.append_log(pod, "old line\n", at=an_hour_ago)
    api.append_log(pod, "one\ntwo\n")
    raw = kube.core.read_namespaced_pod_log(pod, NS, _preload_content=False)
    assert raw.data == b"old line\none\ntwo\n"
    assert raw.headers["Content-Type"].startswith("text/plain")
    assert kube.core.read_namespaced_pod_log(pod, NS, tail_lines=1) == "two\n"
    assert kube.core.read_namespaced_pod_log(pod, NS, since_seconds=60) == "one\ntwo\n"
    resp = kube.core.read_namespaced_pod_log(pod, NS, _preload_content=False, limit_bytes=3)
    assert resp.data == b"old"
    stamped = kube.core.read_namespaced_pod_log(pod, NS, timestamps=True, tail_lines=1)
    stamp, _, text = stamped.partition(" ")
    assert text == "two\n"
    assert stamp.endswith("Z")
    assert len(stamp.split(".")[1]) == 10
    # client 35 sends Python's "True"; the API server parses either (strconv.ParseBool)
    assert api.requests(path="/log$")[-1].param("timestamps").lower() == "true"
    api.finish_pod(pod, 0)
    assert kube.core.read_namespaced_pod_log(pod, NS, tail_lines=1) == "two\n"
    with pytest.raises(ApiException) as gone:
        kube.core.read_namespaced_pod_log("no-such-pod", NS)
    assert gone.value.status == 404


# --- deletion -----------------------------------------------------------------------------


def test_delete_propagation(api: KubeApiServer, kube: Kube) -> None:
    for name in ("bg", "fg", "orphan", "default"):
        kube.batch.create_namespaced_job(NS, job_body(name))
        api.set_pod_running(api.create_pod_for(NS, name))

    answer = raw_json(kube.batch.delete_namespaced_job(
        "bg", NS, propagation_policy="Background", _preload_content=False))  # fmt: skip
    # a delete answers a Status (Background) or the object (Foreground, Orphan)
    assert answer["status"] == "Success"
    assert answer["details"] == {"name": "bg", "group": "batch", "kind": "jobs", "uid": ANY}
    assert api.job(NS, "bg") is None
    wait_for(
        lambda: not api.pods(NS, job_name="bg"), DEADLINE_S, "the background GC to delete bg's pod"
    )

    # the answer is the object, still there until the GC has deleted its dependents
    marked = raw_json(kube.batch.delete_namespaced_job(
        "fg", NS, propagation_policy="Foreground", _preload_content=False))  # fmt: skip
    assert marked["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert marked["metadata"]["deletionTimestamp"]
    wait_for(lambda: api.job(NS, "fg") is None, DEADLINE_S, "the foreground deletion to finish")
    assert not api.pods(NS, job_name="fg")

    marked = raw_json(kube.batch.delete_namespaced_job(
        "orphan", NS, propagation_policy="Orphan", _preload_content=False))  # fmt: skip
    assert marked["metadata"]["finalizers"] == ["orphan"]
    wait_for(lambda: api.job(NS, "orphan") is None, DEADLINE_S, "the orphaning deletion to finish")
    (kept,) = api.pods(NS, job_name="orphan")
    assert "ownerReferences" not in kept["metadata"]

    # batch/v1's default is Orphan, with a warning naming propagationPolicy
    resp = kube.batch.delete_namespaced_job("default", NS, _preload_content=False)
    assert "child pods are preserved by default" in resp.headers["Warning"]
    wait_for(lambda: api.job(NS, "default") is None, DEADLINE_S, "the default deletion to finish")
    assert len(api.pods(NS, job_name="default")) == 1


# --- patch ------------------------------------------------------------------------------


def raw_json(response: Any) -> Any:
    return json.loads(response.data)


def patch_as(kube: Kube, name: str, body: Any, content_type: str) -> Any:
    """A PATCH with an explicit content type (the client picks strategic merge itself)."""
    response = kube.batch.api_client.call_api(
        f"/apis/batch/v1/namespaces/{NS}/jobs/{name}", "PATCH",
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body, auth_settings=["BearerToken"], _preload_content=False,
    )  # fmt: skip
    return json.loads(response[0].data)


def test_patch_labels_and_immutable_template(kube: Kube) -> None:
    kube.batch.create_namespaced_job(NS, job_body("p", app="a"))
    patched = kube.batch.patch_namespaced_job(
        "p", NS, {"metadata": {"labels": {"app": None, "new": "1"}}}
    )
    assert patched.metadata.labels == {"new": "1"}
    assert patched.metadata.generation == 1
    merged = patch_as(kube, "p", {"spec": {"backoffLimit": 2}}, "application/merge-patch+json")
    assert merged["spec"]["backoffLimit"] == 2
    assert merged["metadata"]["generation"] == 2
    add = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]
    json_patched = patch_as(kube, "p", add, "application/json-patch+json")
    assert json_patched["metadata"]["annotations"] == {"a": "b"}
    stale = kube.batch.read_namespaced_job("p", NS)
    kube.batch.patch_namespaced_job("p", NS, {"metadata": {"labels": {"newer": "1"}}})
    with pytest.raises(ApiException) as conflict:  # PUT with an old resourceVersion
        kube.batch.replace_namespaced_job("p", NS, stale)
    assert conflict.value.status == 409
    assert status_of(conflict.value)["reason"] == "Conflict"
    # the status subresource changes status only; the main resource ignores status
    kube.batch.patch_namespaced_job_status("p", NS, {"status": {"active": 3}})
    kube.batch.patch_namespaced_job("p", NS, {"status": {"active": 9}})
    assert kube.batch.read_namespaced_job_status("p", NS).status.active == 3
    image = {"spec": {"template": {"spec": {"containers": [{"name": "job", "image": "other"}]}}}}
    with pytest.raises(ApiException) as immutable:
        kube.batch.patch_namespaced_job("p", NS, image)
    assert immutable.value.status == 422
    assert "spec.template: Invalid value" in status_of(immutable.value)["message"]
    assert "field is immutable" in status_of(immutable.value)["message"]


# --- faults, auth, request log --------------------------------------------------------------


def test_faults_reach_the_client(api: KubeApiServer, kube: Kube) -> None:
    api.fail_next(429, method="POST", retry_after=2)
    with pytest.raises(ApiException) as throttled:
        kube.batch.create_namespaced_job(NS, job_body("f"))
    assert throttled.value.status == 429
    assert throttled.value.headers["Retry-After"] == "2"
    assert status_of(throttled.value)["details"] == {"retryAfterSeconds": 2}

    # urllib3's default Retry repeats an idempotent GET that got a Retry-After
    api.fail_next(429, method="GET", path="/jobs$", retry_after=0)
    kube.batch.list_namespaced_job(NS)
    assert [r.status for r in api.requests("GET", "/jobs$")] == [429, 200]

    api.fail_next(500, path="/jobs/f$")
    with pytest.raises(ApiException) as internal:
        kube.batch.read_namespaced_job("f", NS)
    assert internal.value.status == 500
    assert status_of(internal.value)["reason"] == "InternalError"

    for code, reason in ((503, "ServiceUnavailable"), (504, "Timeout")):
        api.fail_next(code, method="POST")
        with pytest.raises(ApiException) as err:
            kube.batch.create_namespaced_job(NS, job_body("f"))
        assert err.value.status == code
        assert status_of(err.value)["reason"] == reason

    api.drop_next(method="POST")
    with pytest.raises(kubernetes_exceptions()):
        kube.batch.create_namespaced_job(NS, job_body("f"))
    assert api.requests("POST")[-1].status is None

    api.set_latency(0.3)
    began = time.monotonic()
    kube.batch.create_namespaced_job(NS, job_body("f"))
    assert time.monotonic() - began >= 0.3
    api.clear_faults()


def kubernetes_exceptions() -> tuple[type[BaseException], ...]:
    import urllib3

    return (urllib3.exceptions.ProtocolError, urllib3.exceptions.MaxRetryError)


def test_unauthorized_and_forbidden(api: KubeApiServer, tmp_path: Path) -> None:
    stranger = Kube(api.write_kubeconfig(tmp_path / "bad", token="wrong", namespace=NS))
    nobody = Kube(api.write_kubeconfig(tmp_path / "none", token=None, namespace=NS))
    reader = Kube(api.write_kubeconfig(tmp_path / "reader", token="reader-token", namespace=NS))
    try:
        for k in (stranger, nobody):
            with pytest.raises(ApiException) as unauthorized:
                k.batch.list_namespaced_job(NS)
            assert unauthorized.value.status == 401
            assert status_of(unauthorized.value)["reason"] == "Unauthorized"

        user = "system:serviceaccount:jobs:reader"
        api.add_user(user, "reader-token", [Rule(verbs=("get", "list", "watch"))])
        assert reader.batch.list_namespaced_job(NS).items == []
        with pytest.raises(ApiException) as forbidden:
            reader.batch.create_namespaced_job(NS, job_body("x"))
        assert forbidden.value.status == 403
        assert status_of(forbidden.value)["message"] == (
            f'jobs.batch is forbidden: User "{user}" cannot create resource "jobs" in API '
            f'group "batch" in the namespace "{NS}"'
        )
        api.set_rules([Rule(verbs=("get",), resources=("pods",), api_groups=("",))], user)
        with pytest.raises(ApiException) as no_logs:
            reader.core.read_namespaced_pod_log("p", NS)
        assert status_of(no_logs.value)["message"] == (
            f'pods "p" is forbidden: User "{user}" cannot get resource "pods/log" in API '
            f'group "" in the namespace "{NS}"'
        )
    finally:
        for k in (stranger, nobody, reader):
            k.close()


def test_request_log_counts_list_calls(api: KubeApiServer, kube: Kube) -> None:
    for _ in range(3):
        kube.batch.list_namespaced_job(NS, label_selector="app=jobgate")
    lists = [
        r
        for r in api.requests("GET", f"^/apis/batch/v1/namespaces/{NS}/jobs$")
        if r.param("watch") is None
    ]
    assert len(lists) == 3
    assert lists[0].param("labelSelector") == "app=jobgate"
    assert lists[0].user == api.user
    assert lists[0].status == 200


def test_load_kube_config_and_default_clients(api: KubeApiServer, tmp_path: Path) -> None:
    path = api.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    config.load_kube_config(config_file=str(path))
    batch = client.BatchV1Api()
    try:
        assert batch.list_namespaced_job(NS).items == []
    finally:
        batch.api_client.close()


# --- automatic mode -------------------------------------------------------------------------


def test_automatic_mode_runs_jobs(api: KubeApiServer, kube: Kube) -> None:
    def decide(job: dict[str, Any], attempt: int) -> Outcome:
        failing = job["metadata"]["name"].startswith("bad")
        return Outcome(exit_code=1 if failing else 0, log=f"attempt {attempt}\n", run_s=0.05)

    api.start_auto(decide)
    kube.batch.create_namespaced_job(NS, job_body("good"))
    bad = job_body("bad")
    bad["spec"]["backoffLimit"] = 1
    kube.batch.create_namespaced_job(NS, bad)

    def finished(name: str) -> str | None:
        for c in kube.batch.read_namespaced_job(name, NS).status.conditions or []:
            if c.type in ("Complete", "Failed") and c.status == "True":
                return str(c.type)
        return None

    assert wait_for(lambda: finished("good"), DEADLINE_S, "job good to finish") == "Complete"
    assert wait_for(lambda: finished("bad"), DEADLINE_S, "job bad to finish") == "Failed"
    (pod,) = api.pods(NS, job_name="good")
    assert kube.core.read_namespaced_pod_log(pod["metadata"]["name"], NS) == "attempt 0\n"
    assert len(api.pods(NS, job_name="bad")) == 2  # backoffLimit 1: two pods ran
    assert kube.batch.read_namespaced_job("bad", NS).status.failed == 2


# --- process mode: pods run their command as local processes --------------------------------


def process_job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    """A Job whose container runs ``/bin/sh -c script``; ``spec`` adds Job spec fields."""
    body = job_body(name)
    body["spec"]["template"]["spec"]["containers"][0]["command"] = ["/bin/sh", "-c", script]
    body["spec"].update(spec)
    return body


def container_of(body: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = body["spec"]["template"]["spec"]["containers"][0]
    return container


def job_finished(kube: Kube, name: str) -> tuple[str, str] | None:
    """(Complete or Failed, reason) once the Job has finished."""
    for c in kube.batch.read_namespaced_job(name, NS).status.conditions or []:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return str(c.type), str(c.reason)
    return None


def only_pod(api: KubeApiServer, job: str) -> str:
    """The name of the Job's one pod, once it exists."""
    pods = wait_for(lambda: api.pods(NS, job_name=job), DEADLINE_S, f"a pod for {job}")
    assert len(pods) == 1
    return str(pods[0]["metadata"]["name"])


def pod_log(kube: Kube, pod: str) -> str:
    """The log as the server sent it (the client would parse a log like "7\\n" as JSON)."""
    return bytes(kube.core.read_namespaced_pod_log(pod, NS, _preload_content=False).data).decode()


def wait_for_log(kube: Kube, pod: str, text: str) -> None:
    """Wait until the pod runs and its log so far is ``text``."""
    wait_for(
        lambda: kube.core.read_namespaced_pod(pod, NS).status.phase == "Running",
        DEADLINE_S,
        f"{pod} to run",
    )
    wait_for(
        lambda: pod_log(kube, pod) == text,
        DEADLINE_S,
        f"{text!r} in the log of {pod}",
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pid_from(path: Path) -> int:
    text = wait_for(lambda: path.exists() and path.read_text().strip(), DEADLINE_S, str(path))
    return int(text)


# writes its pid (the container's main process, as exec keeps it) and waits for good; a real
# kubelet would turn "$$" into "$" (kubeemu runs commands as written, see its README)
SLEEPER = "echo $$ > pid; echo started; exec sleep 600"


def test_process_output_is_streamed_while_it_runs(
    api: KubeApiServer, kube: Kube, tmp_path: Path
) -> None:
    api.start_processes(work_dir=tmp_path)
    script = "echo first; echo oops >&2; while [ ! -e go ]; do sleep 0.05; done; echo second"
    kube.batch.create_namespaced_job(NS, process_job("stream", script))
    pod = only_pod(api, "stream")
    wait_for_log(kube, pod, "first\noops\n")  # stdout and stderr, as they are written
    running = kube.core.read_namespaced_pod(pod, NS).status
    assert running.phase == "Running"
    assert running.container_statuses[0].state.running.started_at is not None
    assert kube.batch.read_namespaced_job("stream", NS).status.ready == 1
    follow = kube.core.read_namespaced_pod_log(
        pod, NS, follow=True, _preload_content=False, _request_timeout=DEADLINE_S
    )
    (tmp_path / "go").touch()
    assert follow.data == b"first\noops\nsecond\n"  # follow ends when the container stops
    assert wait_for(lambda: job_finished(kube, "stream"), DEADLINE_S, "stream to finish") == (
        "Complete",
        "CompletionsReached",
    )
    done = kube.core.read_namespaced_pod(pod, NS).status
    terminated = done.container_statuses[0].state.terminated
    assert done.phase == "Succeeded"
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert kube.batch.read_namespaced_job("stream", NS).status.succeeded == 1


@pytest.mark.parametrize("backoff_limit", [0, 1])
def test_process_exit_code_fails_the_job(
    api: KubeApiServer, kube: Kube, backoff_limit: int
) -> None:
    api.start_processes()
    kube.batch.create_namespaced_job(
        NS, process_job("three", "echo trying; exit 3", backoffLimit=backoff_limit)
    )
    finished = wait_for(lambda: job_finished(kube, "three"), DEADLINE_S, "three to fail")
    assert finished == ("Failed", "BackoffLimitExceeded")
    assert kube.batch.read_namespaced_job("three", NS).status.failed == backoff_limit + 1
    pods = kube.core.list_namespaced_pod(NS, label_selector="job-name=three").items
    assert len(pods) == backoff_limit + 1  # a new pod per retry
    for pod in pods:
        terminated = pod.status.container_statuses[0].state.terminated
        assert pod.status.phase == "Failed"
        assert (terminated.exit_code, terminated.reason) == (3, "Error")
        assert pod_log(kube, pod.metadata.name) == "trying\n"


def test_a_command_that_cannot_start_is_a_start_error(api: KubeApiServer, kube: Kube) -> None:
    api.start_processes()
    body = job_body("missing")
    body["spec"]["backoffLimit"] = 0
    container_of(body)["command"] = ["kubeemu-no-such-program"]
    kube.batch.create_namespaced_job(NS, body)
    assert wait_for(lambda: job_finished(kube, "missing"), DEADLINE_S, "missing to fail") == (
        "Failed",
        "BackoffLimitExceeded",
    )
    pod = kube.core.read_namespaced_pod(only_pod(api, "missing"), NS)
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (128, "StartError")
    assert 'exec: "kubeemu-no-such-program": executable file not found' in terminated.message


def test_process_gets_env_and_working_dir(api: KubeApiServer, kube: Kube, tmp_path: Path) -> None:
    default_dir, working_dir = tmp_path / "default", tmp_path / "wd"
    default_dir.mkdir()
    working_dir.mkdir()
    api.start_processes(env={"PATH": os.environ["PATH"], "BASE": "b"}, work_dir=default_dir)
    script = 'pwd; echo "$BASE $FROM_SPEC [$EMPTY] ${SECRET-unset} ${HOME-no home}"'
    for name, where in (("here", str(working_dir)), ("elsewhere", str(tmp_path / "absent"))):
        body = process_job(name, script)
        container_of(body)["workingDir"] = where
        container_of(body)["env"] = [
            {"name": "FROM_SPEC", "value": "spec"},
            {"name": "EMPTY"},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ]
        kube.batch.create_namespaced_job(NS, body)
    for name, cwd in (("here", working_dir), ("elsewhere", default_dir)):
        assert wait_for(lambda n=name: job_finished(kube, n), DEADLINE_S, f"{name} to finish")
        log = pod_log(kube, only_pod(api, name))
        # HOME: only the env given; SECRET: valueFrom entries are left out
        assert log == f"{cwd.resolve()}\nb spec [] unset no home\n"


@pytest.mark.parametrize("policy", ["Background", "Foreground", "Orphan"])
def test_deleting_a_job_kills_its_process(
    api: KubeApiServer, kube: Kube, tmp_path: Path, policy: str
) -> None:
    api.start_processes(work_dir=tmp_path)
    kube.batch.create_namespaced_job(NS, process_job("doomed", SLEEPER))
    pid = pid_from(tmp_path / "pid")
    pod = only_pod(api, "doomed")
    wait_for_log(kube, pod, "started\n")
    assert alive(pid)
    kube.batch.delete_namespaced_job("doomed", NS, propagation_policy=policy)
    wait_for(lambda: not alive(pid), DEADLINE_S, f"process {pid} to be killed")
    wait_for(lambda: api.job(NS, "doomed") is None, DEADLINE_S, "the Job to be deleted")
    if policy == "Orphan":  # the pod stays; its container was stopped by SIGTERM
        terminated = wait_for(
            lambda: (api.pod(pod) or {})["status"]["containerStatuses"][0]["state"].get(
                "terminated"
            ),
            DEADLINE_S,
            "the orphaned pod's container to be terminated",
        )
        assert terminated["exitCode"] == 128 + 15
    else:
        wait_for(lambda: api.pod(pod) is None, DEADLINE_S, "the pod to be deleted")
    assert api.pods(NS, job_name="doomed") == ([] if policy != "Orphan" else [ANY])


def test_a_process_that_ignores_sigterm_is_killed(
    api: KubeApiServer, kube: Kube, tmp_path: Path
) -> None:
    api.start_processes(work_dir=tmp_path)
    script = "trap '' TERM; echo $$ > pid; echo started; while :; do sleep 1; done"
    body = process_job("stubborn", script)
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 1
    kube.batch.create_namespaced_job(NS, body)
    pid = pid_from(tmp_path / "pid")
    pod = only_pod(api, "stubborn")
    wait_for_log(kube, pod, "started\n")
    kube.batch.delete_namespaced_job("stubborn", NS, propagation_policy="Orphan")
    wait_for(lambda: not alive(pid), DEADLINE_S, f"process {pid} to be killed")
    terminated = wait_for(
        lambda: (api.pod(pod) or {})["status"]["containerStatuses"][0]["state"].get("terminated"),
        DEADLINE_S,
        "the orphaned pod's container to be terminated",
    )
    assert terminated["exitCode"] == 128 + 9  # SIGKILL after the grace period


def test_deleting_the_pod_kills_its_process_and_counts_as_a_failure(
    api: KubeApiServer, kube: Kube, tmp_path: Path
) -> None:
    api.start_processes(work_dir=tmp_path)
    kube.batch.create_namespaced_job(NS, process_job("podkill", SLEEPER, backoffLimit=0))
    pid = pid_from(tmp_path / "pid")
    kube.core.delete_namespaced_pod(only_pod(api, "podkill"), NS)
    wait_for(lambda: not alive(pid), DEADLINE_S, f"process {pid} to be killed")
    assert wait_for(lambda: job_finished(kube, "podkill"), DEADLINE_S, "podkill to fail") == (
        "Failed",
        "BackoffLimitExceeded",
    )
    assert kube.batch.read_namespaced_job("podkill", NS).status.failed == 1


def test_active_deadline_kills_the_process(api: KubeApiServer, kube: Kube, tmp_path: Path) -> None:
    api.start_processes(work_dir=tmp_path)
    kube.batch.create_namespaced_job(
        NS, process_job("late", SLEEPER, activeDeadlineSeconds=1, backoffLimit=3)
    )
    pid = pid_from(tmp_path / "pid")
    finished = wait_for(lambda: job_finished(kube, "late"), DEADLINE_S, "late to fail")
    assert finished == ("Failed", "DeadlineExceeded")
    assert not alive(pid)  # the process group is killed before the Job is marked Failed
    condition = kube.batch.read_namespaced_job("late", NS).status.conditions[-1]
    assert condition.message == "Job was active longer than specified deadline"
    assert api.pods(NS, job_name="late") == []  # the controller deletes the running pod


def test_many_process_jobs_each_log_their_own_output(api: KubeApiServer, kube: Kube) -> None:
    api.start_processes()
    count = 30
    for i in range(count):
        kube.batch.create_namespaced_job(NS, process_job(f"echo-{i}", f"echo {i}"))

    def completed() -> bool:
        jobs = kube.batch.list_namespaced_job(NS).items
        return sum(1 for j in jobs if j.status.succeeded == 1) == count

    wait_for(completed, DEADLINE_S * 3, f"{count} jobs to complete")
    for i in range(count):
        assert job_finished(kube, f"echo-{i}") == ("Complete", "CompletionsReached")
        assert pod_log(kube, only_pod(api, f"echo-{i}")) == f"{i}\n"


def test_stop_kills_and_reaps_what_still_runs(tmp_path: Path) -> None:
    with KubeApiServer() as server:
        server.create_namespace(NS)
        server.start_processes(work_dir=tmp_path)
        server.create_job(NS, process_job("left", SLEEPER))
        pid = pid_from(tmp_path / "pid")
        assert alive(pid)
    assert not alive(pid)  # killed and reaped by stop(), not later


def test_process_mode_and_automatic_mode_exclude_each_other(api: KubeApiServer) -> None:
    api.start_processes()
    with pytest.raises(RuntimeError, match="mutually exclusive"):
        api.start_auto()
    api.stop_auto()  # ends either mode
    api.start_auto(Outcome())
    with pytest.raises(RuntimeError, match="mutually exclusive"):
        api.start_processes()


# --- kubectl ---------------------------------------------------------------------------------


@needs_kubectl
@needs_openssl
def test_kubectl_apply_get_logs_delete(tls_api: KubeApiServer, tmp_path: Path) -> None:
    kc = tls_api.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    manifest = json.dumps(job_body("kc", app="jobgate", run="r1"))
    created = kubectl(kc, "apply", "-f", "-", stdin=manifest)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "job.batch/kc created"
    again = kubectl(kc, "apply", "-f", "-", stdin=manifest.replace('"r1"', '"r2"'))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "job.batch/kc configured"
    assert (tls_api.job(NS, "kc") or {})["metadata"]["labels"]["run"] == "r2"
    assert all("authorization" in r.headers for r in tls_api.requests() if r.path != "/version")

    pod = tls_api.create_pod_for(NS, "kc")
    tls_api.set_pod_running(pod)
    tls_api.append_log(pod, "old\n", at=timefmt.now() - timedelta(hours=1))
    tls_api.append_log(pod, "hello from kc\n")
    listed = kubectl(kc, "get", "jobs", "-l", "app=jobgate", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert [item["metadata"]["name"] for item in doc["items"]] == ["kc"]
    assert doc["items"][0]["status"]["active"] == 1

    logs = kubectl(kc, "logs", pod)
    assert (logs.returncode, logs.stdout) == (0, "old\nhello from kc\n"), logs.stderr
    since = timefmt.rfc3339(timefmt.now() - timedelta(minutes=5))
    recent = kubectl(kc, "logs", pod, f"--since-time={since}", "--timestamps")
    assert recent.returncode == 0, recent.stderr
    assert recent.stdout.endswith("Z hello from kc\n")
    assert "old" not in recent.stdout
    assert tls_api.requests(path="/log$")[-1].param("sinceTime") == since
    table = kubectl(kc, "get", "jobs")
    assert table.stdout.split()[:5] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]

    tls_api.set_pod_waiting(pod, "ImagePullBackOff")
    waiting = kubectl(kc, "logs", pod)
    assert waiting.returncode == 1
    assert "is waiting to start: trying and failing to pull image" in waiting.stderr

    deleted = kubectl(kc, "delete", "job", "kc", "--ignore-not-found")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == 'job.batch "kc" deleted'
    delete_body = json.loads(tls_api.requests("DELETE")[-1].body)
    assert delete_body["propagationPolicy"] == "Background"
    absent = kubectl(kc, "delete", "job", "kc", "--ignore-not-found")
    assert (absent.returncode, absent.stdout) == (0, ""), absent.stderr
    wait_for(lambda: not tls_api.pods(NS), DEADLINE_S, "kc's pod to be garbage-collected")


@needs_kubectl
def test_kubectl_sends_no_token_over_plain_http(api: KubeApiServer, tmp_path: Path) -> None:
    kc = api.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    refused = kubectl(kc, "get", "jobs", "-o", "json")
    assert refused.returncode == 1
    assert "You must be logged in to the server" in refused.stderr
    assert not any("authorization" in r.headers for r in api.requests())


@needs_kubectl
def test_kubectl_over_plain_http_as_anonymous(tmp_path: Path) -> None:
    with KubeApiServer(anonymous=True) as server:
        kc = server.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
        created = kubectl(kc, "apply", "-f", "-", stdin=json.dumps(job_body("anon")))
        assert created.returncode == 0, created.stderr
        assert server.requests("POST")[-1].user == "system:anonymous"


@needs_kubectl
@needs_openssl
def test_kubectl_runs_logs_and_deletes_a_process_job(
    tls_api: KubeApiServer, tmp_path: Path
) -> None:
    kc = tls_api.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    work = tmp_path / "work"
    work.mkdir()
    tls_api.start_processes(work_dir=tmp_path)
    body = process_job("kp", "echo hello from kubectl; " + SLEEPER)
    container_of(body)["workingDir"] = str(work)
    created = kubectl(kc, "apply", "-f", "-", stdin=json.dumps(body))
    assert created.returncode == 0, created.stderr
    pid = pid_from(work / "pid")
    pod = only_pod(tls_api, "kp")

    def logs() -> str:
        return kubectl(kc, "logs", pod).stdout

    assert wait_for(lambda: logs() == "hello from kubectl\nstarted\n", DEADLINE_S, "kubectl logs")
    by_job = kubectl(kc, "logs", "job/kp")
    assert (by_job.returncode, by_job.stdout) == (0, "hello from kubectl\nstarted\n"), by_job.stderr
    assert alive(pid)
    deleted = kubectl(kc, "delete", "job", "kp")  # propagationPolicy Background
    assert deleted.returncode == 0, deleted.stderr
    wait_for(lambda: not alive(pid), DEADLINE_S, f"process {pid} to be killed")
    wait_for(lambda: not tls_api.pods(NS), DEADLINE_S, "kp's pod to be garbage-collected")
