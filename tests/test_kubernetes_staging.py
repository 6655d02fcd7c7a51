"""Job files on Kubernetes: the manifest's staging containers validate against the API
schema, and the staging program (run as the pod runs it, ``python3 -c <source>``) fetches
and uploads against a real S3 server (SeaweedFS) with the URLs the worker signs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from jobgate.client import JobSpec, JobStatus
from jobgate.client.bundle import collect, write
from jobgate.client.profile_schema import Storage, profile_from_data
from jobgate.workers.backends.kubernetes import render_job_manifest
from jobgate.workers.backends.kubernetes.manifest import (
    STAGER_SOURCE,
    job_labels,
    render_staging_secret,
)
from jobgate.workers.backends.kubernetes.staging import (
    OUTPUTS_MANIFEST,
    _record,
    _Refused,
    _uploaded,
    output_key_parts,
    staging_data,
)
from jobgate.workers.staging.s3 import JobStorage
from tests.support.kubernetes import CLUSTER, NAMESPACE, KubernetesHarness
from tests.support.s3 import S3Bucket

JOB_ID = "01m7zp0000000000000000000b"
PROFILE = profile_from_data({
    "name": "k8s", "backend": "kubernetes", "job_name_prefix": "jg",
    "kubernetes": {"namespace": "jobs", "image": "python:3.12-slim",
                   "volumes": [{"name": "scratch", "mount_path": "/scratch", "pvc": "s"}]},
    "storage": {"prefix": "s3://bucket/jobs"},
})  # fmt: skip
SPEC = JobSpec(name="fit", command="python fit.py", inputs=["./data"], outputs=["results/**"])


def validate(manifest: dict[str, Any], version: str = "1.32") -> None:
    kubernetes_validate.validate(manifest, f"{version}.0", strict=True)


@pytest.mark.parametrize("version", ["1.29", "1.32", "1.34"])
def test_a_staged_job_has_a_fetching_init_container_and_an_uploading_sidecar(
    version: str,
) -> None:
    manifest = render_job_manifest(SPEC, PROFILE, JOB_ID)
    validate(manifest, version)
    pod = manifest["spec"]["template"]["spec"]
    fetch, upload = pod["initContainers"]
    (job,) = pod["containers"]
    assert job["workingDir"] == "/jobgate/work"
    assert {"name": "jobgate-work", "mountPath": "/jobgate/work"} in job["volumeMounts"]
    assert {"name": "jobgate-work", "emptyDir": {}} in pod["volumes"]
    assert fetch["command"] == ["python3", "-c", STAGER_SOURCE, "fetch", "/jobgate/work"]
    assert "restartPolicy" not in fetch
    ready = f"/tmp/jobgate-uploader-ready-jg-{JOB_ID}"
    assert upload["command"][3:] == ["sidecar", "/jobgate/work", ready]
    # started = waiting for SIGTERM: the job's container starts only then
    assert upload["startupProbe"]["exec"]["command"][:2] == ["python3", "-c"]
    assert repr(ready) in upload["startupProbe"]["exec"]["command"][2]
    assert upload["restartPolicy"] == "Always"  # a native sidecar: stopped after the job
    assert upload["volumeMounts"] == [
        {"name": "jobgate-work", "mountPath": "/jobgate/work", "readOnly": True}]  # fmt: skip
    assert pod["terminationGracePeriodSeconds"] == 600
    secret = "jg-01m7zp0000000000000000000b-staging"
    assert [c["env"] for c in (fetch, upload)] == [
        [{"name": "JOBGATE_STAGING",
          "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}]
        for key in ("fetch", "upload")
    ]  # fmt: skip
    assert fetch["image"] == upload["image"] == "python:3.12-slim"


def test_only_the_containers_a_job_needs() -> None:
    inputs = JobSpec(name="a", command="true", inputs=["./x"])
    pod = render_job_manifest(inputs, PROFILE, JOB_ID)["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["jobgate-fetch"]
    assert "terminationGracePeriodSeconds" not in pod
    outputs = JobSpec(name="a", command="true", outputs=["*.log"])
    pod = render_job_manifest(outputs, PROFILE, JOB_ID)["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["jobgate-upload"]
    plain = render_job_manifest(JobSpec(name="a", command="true"), PROFILE, JOB_ID)
    assert "initContainers" not in plain["spec"]["template"]["spec"]


def test_the_urls_go_in_a_secret_never_in_the_job(s3_bucket: S3Bucket, storage: JobStorage) -> None:
    data = staging_data(storage, PROFILE.kubernetes, JOB_ID, SPEC)
    secret = render_staging_secret(
        f"jg-{JOB_ID}", "jobs", job_labels(PROFILE, JOB_ID, "t", "ana"), data
    )
    validate(secret)
    assert sorted(secret["stringData"]) == ["fetch", "upload"]
    text = json.dumps(render_job_manifest(SPEC, PROFILE, JOB_ID))
    assert "X-Amz-Signature" not in text
    assert "x-amz-signature" not in text
    assert s3_bucket.access_key not in text
    assert "X-Amz-Signature" in data["fetch"]
    assert "x-amz-signature" in data["upload"]


# -- the staging program against SeaweedFS -----------------------------------------------


@pytest.fixture
def storage(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> JobStorage:
    monkeypatch.setenv("T_S3_KEY", s3_bucket.access_key)
    monkeypatch.setenv("T_S3_SECRET", s3_bucket.secret_key)
    settings = Storage.model_validate({
        "prefix": f"s3://{s3_bucket.bucket}/jobs", "endpoint_url": s3_bucket.endpoint_url,
        "credentials": {"access_key_id": "env:T_S3_KEY", "secret_access_key": "env:T_S3_SECRET"},
    })  # fmt: skip
    return JobStorage(settings, "k8s")


def run_stager(mode: str, work: Path, config: str) -> subprocess.CompletedProcess[str]:
    """The stager as the pod runs it: python3 -c <source> MODE WORK_DIR."""
    env = {"PATH": os.environ["PATH"], "JOBGATE_STAGING": config}
    return subprocess.run(
        [sys.executable, "-c", STAGER_SOURCE, mode, str(work)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def put_bundle(storage: JobStorage, spec: JobSpec, body: bytes) -> None:
    where = storage.bundle(_record(JOB_ID, spec))
    storage.client.put_object(Bucket=where.bucket, Key=where.key, Body=body)


def pack(tmp_path: Path) -> tuple[JobSpec, bytes]:
    src = tmp_path / "src" / "data"
    (src / "deep" / "er").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "deep" / "er" / "b.bin").write_bytes(os.urandom(3 << 20))
    (src / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "run.sh").chmod(0o755)
    spec = JobSpec(name="fit", command="true", inputs=[str(src), {"src": str(src / "a.txt"),
                                                                 "dest": "top/a.txt"}])  # fmt: skip
    out = io.BytesIO()
    write(collect(spec.inputs), out, job_id=JOB_ID, run_id=JOB_ID, cluster="k8s")
    return spec, out.getvalue()


def test_fetch_unpacks_and_checks_every_file(tmp_path: Path, storage: JobStorage) -> None:
    spec, bundle = pack(tmp_path)
    put_bundle(storage, spec, bundle)
    work = tmp_path / "work"
    work.mkdir()
    done = run_stager(
        "fetch", work, staging_data(storage, PROFILE.kubernetes, JOB_ID, spec)["fetch"]
    )
    assert done.returncode == 0, done.stderr
    assert "fetched 4 file(s)" in done.stderr
    src = tmp_path / "src" / "data"
    for path in ("a.txt", "deep/er/b.bin", "run.sh"):
        assert (work / "data" / path).read_bytes() == (src / path).read_bytes()
    assert (work / "top" / "a.txt").read_text() == "alpha\n"
    assert (work / "data" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in work.iterdir()) == ["data", "top"]  # no temporary left


def test_a_corrupt_bundle_fails_with_the_file_it_concerns(
    tmp_path: Path, storage: JobStorage
) -> None:
    spec, bundle = pack(tmp_path)
    at = bundle.index(b"alpha\n")
    put_bundle(storage, spec, bundle[:at] + b"ALPHA\n" + bundle[at + 6 :])
    work = tmp_path / "work"
    work.mkdir()
    done = run_stager(
        "fetch", work, staging_data(storage, PROFILE.kubernetes, JOB_ID, spec)["fetch"]
    )
    assert done.returncode == 1
    assert "inputs: checksum mismatch for 'data/a.txt'" in done.stderr
    assert not (work / "data" / "a.txt").exists()


def hand_made(members: list[tuple[str, bytes]], manifest: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in [*members, ("manifest.json", json.dumps(manifest).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize(
    ("member", "said"),
    [
        ("files/../../x", "would land outside the work directory"),
        ("files//etc/x", "would land outside the work directory"),
        ("files/y", "is not in its manifest"),
        ("x", "is outside files/"),
    ],
)
def test_a_member_outside_the_rules_is_refused(
    tmp_path: Path, storage: JobStorage, member: str, said: str
) -> None:
    spec = JobSpec(name="a", command="true", inputs=["./z"])
    manifest = {"format": 1, "job_id": JOB_ID, "run_id": JOB_ID, "cluster": "k8s",
                "jobgate_version": "t", "files": []}  # fmt: skip
    put_bundle(storage, spec, hand_made([(member, b"evil")], manifest))
    work = tmp_path / "a" / "work"
    work.mkdir(parents=True)
    done = run_stager(
        "fetch", work, staging_data(storage, PROFILE.kubernetes, JOB_ID, spec)["fetch"]
    )
    assert done.returncode == 1
    assert said in done.stderr
    assert not (tmp_path / "x").exists()
    assert list(work.iterdir()) == []


def test_a_bundle_of_another_job_or_a_missing_one_is_refused(
    tmp_path: Path, storage: JobStorage
) -> None:
    spec, bundle = pack(tmp_path)
    config = json.loads(staging_data(storage, PROFILE.kubernetes, JOB_ID, spec)["fetch"])
    work = tmp_path / "work"
    work.mkdir()
    missing = run_stager("fetch", work, json.dumps(config))
    assert missing.returncode == 1
    assert "downloading the input bundle: HTTP 404 NoSuchKey" in missing.stderr
    put_bundle(storage, spec, bundle)
    other = run_stager("fetch", work, json.dumps({**config, "job_id": "someone-else"}))
    assert other.returncode == 1
    assert f"made for job {JOB_ID}, not someone-else" in other.stderr


def job_outputs(work: Path) -> None:
    (work / "results" / "nested").mkdir(parents=True)
    (work / "results" / "r.txt").write_text("result\n")
    (work / "results" / "nested" / "big.bin").write_bytes(os.urandom(5 << 20))
    (work / "results" / "link").symlink_to("/etc/passwd")
    (work / "other.txt").write_text("not an output\n")


def test_upload_sends_the_matching_files_and_a_manifest_the_worker_checks(
    tmp_path: Path, storage: JobStorage
) -> None:
    spec = JobSpec(name="a", command="true", outputs=["results/**"])
    job_outputs(tmp_path)
    config = staging_data(storage, PROFILE.kubernetes, JOB_ID, spec)["upload"]
    done = run_stager("upload", tmp_path, config)
    assert done.returncode == 0, done.stderr
    record = _record(JOB_ID, spec)
    head, tail = output_key_parts(storage, record)
    assert (head, tail) == (f"jobs/{JOB_ID}/outputs/{JOB_ID}/", "")
    listed = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix="")["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        head + OUTPUTS_MANIFEST,
        head + "results/nested/big.bin",
        head + "results/r.txt",
    ]
    kept = _uploaded(storage, record)
    assert [(f.path, f.key) for f in kept] == [
        ("results/r.txt", head + "results/r.txt"),  # the order of the work directory's walk
        ("results/nested/big.bin", head + "results/nested/big.bin"),
    ]
    assert kept[0].size == 7
    got = storage.client.get_object(Bucket=storage.bucket, Key=kept[1].key)["Body"].read()
    assert got == (tmp_path / "results" / "nested" / "big.bin").read_bytes()


def test_the_policy_allows_only_this_jobs_output_prefix(
    tmp_path: Path, storage: JobStorage
) -> None:
    spec = JobSpec(name="a", command="true", outputs=["*.txt"])
    (tmp_path / "x.txt").write_text("x")
    config = json.loads(staging_data(storage, PROFILE.kubernetes, JOB_ID, spec)["upload"])
    elsewhere = {**config, "key_head": "jobs/other-job/outputs/", "manifest_key": "jobs/m.json"}
    done = run_stager("upload", tmp_path, json.dumps(elsewhere))
    assert done.returncode == 1
    assert "uploading jobs/other-job/outputs/x.txt: HTTP 403" in done.stderr
    assert "Contents" not in storage.client.list_objects_v2(Bucket=storage.bucket)


def test_too_many_outputs_are_reported_not_cut(tmp_path: Path, storage: JobStorage) -> None:
    spec = JobSpec(name="a", command="true", outputs=["*.txt"])
    for n in range(3):
        (tmp_path / f"{n}.txt").write_text("x")
    config = json.loads(staging_data(storage, PROFILE.kubernetes, JOB_ID, spec)["upload"])
    done = run_stager("upload", tmp_path, json.dumps({**config, "max_files": 2}))
    assert done.returncode == 1
    assert "3 files match, more than storage.max_outputs (2)" in done.stderr
    with pytest.raises(_Refused, match=r"uploader failed: 3 files match"):
        _uploaded(storage, _record(JOB_ID, spec))


# -- end to end: gateway, worker, API server emulator (pods as processes), SeaweedFS ------


def start_staging_worker(
    harness: KubernetesHarness, s3_bucket: S3Bucket, tmp_path: Path, **storage: Any
) -> None:
    """A worker whose cluster has storage on SeaweedFS; its pods' emptyDir is a local
    directory (the emulator mounts no volumes), shared by their containers."""
    work = tmp_path / "pod-work"
    work.mkdir()
    block = {
        "prefix": f"s3://{s3_bucket.bucket}/jobs", "endpoint_url": s3_bucket.endpoint_url,
        "credentials": {"access_key_id": "env:T_S3_KEY", "secret_access_key": "env:T_S3_SECRET"},
        **storage,
    }  # fmt: skip
    profile = harness.profile(storage=block, kubernetes={"staging_work_dir": str(work)})
    harness.start_worker(profile, env={"T_S3_KEY": s3_bucket.access_key,
                                       "T_S3_SECRET": s3_bucket.secret_key})  # fmt: skip


def test_a_job_gets_its_inputs_and_gives_back_its_outputs_through_its_pod(
    kubernetes_backend: KubernetesHarness, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    """The client uploads the bundle; the worker puts the Secret and the Job; the emulated
    kubelet runs jobgate-fetch, the uploader sidecar and the job as local processes; at
    finalize the worker checks what the uploader kept; retrieve brings it back."""
    harness, api = kubernetes_backend, kubernetes_backend.api
    start_staging_worker(harness, s3_bucket, tmp_path)
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "n.txt").write_text("21\n")
    command = ("mkdir -p results/deep && n=$(cat data/sub/n.txt) && "
               "echo $((n * 2)) > results/deep/answer.txt && echo done")  # fmt: skip
    spec = JobSpec(name="twice", command=command, inputs=[str(src)], outputs=["results/**"])
    job = harness.gateway.submit(spec, CLUSTER)
    record = job.wait(timeout_s=120)
    assert record.status is JobStatus.SUCCEEDED, record.reason
    assert record.outputs is not None
    assert record.outputs.complete, record.outputs.reason
    assert [f.path for f in job.outputs()] == ["results/deep/answer.txt"]
    got = job.retrieve(tmp_path / "out")
    assert (tmp_path / "out" / "results" / "deep" / "answer.txt").read_text() == "42\n"
    assert (tmp_path / "out" / f"{job.id}.out").read_text() == "done\n"
    assert len(got) == 2
    secret = f"jobgate-{job.id}-staging"
    assert api.secret(NAMESPACE, secret) is None  # deleted at finalize
    (created,) = [r for r in api.requests("POST", r"/namespaces/jobs/secrets$")]
    assert b"X-Amz-Signature" in (created.body or b"")
    (job_post,) = api.requests("POST", r"/namespaces/jobs/jobs$")
    assert b"X-Amz-Signature" not in (job_post.body or b"")
    assert b"x-amz-signature" not in (job_post.body or b"")


def test_an_uploader_that_fails_marks_the_outputs_incomplete_not_the_job(
    kubernetes_backend: KubernetesHarness, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    harness = kubernetes_backend
    start_staging_worker(harness, s3_bucket, tmp_path, max_outputs=1)
    spec = JobSpec(name="many", command="echo a > a.txt; echo b > b.txt", outputs=["*.txt"])
    job = harness.gateway.submit(spec, CLUSTER)
    record = job.wait(timeout_s=120)
    assert record.status is JobStatus.SUCCEEDED, record.reason
    assert record.outputs is not None
    assert not record.outputs.complete
    assert record.outputs.reason == (
        "outputs: the pod's uploader failed: 2 files match, more than storage.max_outputs (1)"
    )
    assert job.outputs() == []
