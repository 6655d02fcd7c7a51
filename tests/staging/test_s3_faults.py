"""S3 faults around job files: S3 cut off during an upload and at output time, a part
lost on the way, a bundle whose bytes were altered in S3 or made by hand to climb out of
the work directory. Each ends with a clear reason and nothing silently lost."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery.result import AsyncResult

from jobgate.client import Gateway, JobSpec, JobStatus
from jobgate.client import bundle as bundles
from jobgate.client.errors import StorageError
from jobgate.client.files import InputFile
from tests.support.s3 import S3Bucket
from tests.support.staging import StagedBackend, sha256_of
from tests.support.tcp_proxy import ProxyServer
from tests.support.waiting import gated, wait_for


@pytest.fixture
def proxy(s3_bucket: S3Bucket) -> Iterator[ProxyServer]:
    """A TCP proxy in front of S3, for the worker and (through the URLs it hands out) the
    client: `block()` cuts S3 off for both."""
    port = int(s3_bucket.endpoint_url.rsplit(":", 1)[1])
    with ProxyServer(("127.0.0.1", port)) as server:
        yield server


class Hook:
    """A progress display that runs `at_start` when the upload starts and `at_end` once
    every part is in S3, before the upload is completed: where faults are put in."""

    def __init__(
        self, at_start: Callable[[], None] | None = None, at_end: Callable[[], None] | None = None
    ) -> None:
        self.at_start, self.at_end, self.sent = at_start, at_end, 0

    def start(self, description: str, total_bytes: int) -> None:
        if self.at_start:
            self.at_start()

    def advance(self, nbytes: int) -> None:
        self.sent += nbytes

    def finish(self) -> None:
        if self.at_end:
            self.at_end()


def replace_bundle_upload(bucket: S3Bucket, make: Callable[[str], bytes]) -> None:
    """Put `make(job id)`'s bytes in S3 in place of the client's bundle: its open upload is
    aborted and a new one for the same key holds them as its one part, which the
    worker's `complete` then joins."""
    s3 = bucket.client()
    (upload,) = s3.list_multipart_uploads(Bucket=bucket.bucket)["Uploads"]
    key = upload["Key"]
    s3.abort_multipart_upload(Bucket=bucket.bucket, Key=key, UploadId=upload["UploadId"])
    job_id = key.rsplit("/", 1)[1].removesuffix(".tar")
    upload_id = s3.create_multipart_upload(Bucket=bucket.bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket.bucket, Key=key, UploadId=upload_id, PartNumber=1,
                   Body=make(job_id))  # fmt: skip


def test_s3_cut_off_during_the_upload_fails_it_clearly_and_the_job_is_never_queued(
    staged: StagedBackend, gateway: Gateway, proxy: ProxyServer, tmp_path: Path
) -> None:
    staged.start(endpoint_url=proxy.url)
    (tmp_path / "in.txt").write_text("x" * 1000)
    spec = JobSpec(name="cut", command="true", inputs=[str(tmp_path / "in.txt")])
    with pytest.raises(StorageError, match=r"part 1: S3 is unreachable .*, 5 times") as caught:
        gateway.submit(spec, "local", progress=Hook(at_start=proxy.block))
    assert "X-Amz-Signature" not in str(caught.value)
    (record,) = gateway.list()
    assert record.status is JobStatus.FAILED
    assert record.reason is not None
    assert record.reason.startswith("not queued: inputs: ")
    assert record.backend_id is None


def test_a_part_lost_on_the_way_is_sent_again_and_the_upload_goes_on(
    staged: StagedBackend, gateway: Gateway, proxy: ProxyServer, tmp_path: Path
) -> None:
    staged.start(endpoint_url=proxy.url)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (40 * 4096))  # 40 MiB: three parts of 16 MiB
    spec = JobSpec(name="resumed", command="sha256sum big.bin", inputs=[str(big)])
    job = gateway.submit(spec, "local", progress=Hook(at_start=lambda: proxy.drop_next(1)))
    assert job.wait(timeout_s=60).status is JobStatus.SUCCEEDED
    assert "".join(job.logs()).split()[0] == sha256_of(big)


def test_s3_down_at_output_time_leaves_outputs_incomplete_until_reconcile_keeps_them(
    staged: StagedBackend, gateway: Gateway, proxy: ProxyServer, tmp_path: Path
) -> None:
    staged.start(endpoint_url=proxy.url)
    gate = tmp_path / "gate"
    job = gateway.submit(
        JobSpec(name="later", command=gated("echo result > r.txt", gate), outputs=["r.txt"]),
        "local",
    )
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
    proxy.block()
    gate.touch()
    record = job.wait(timeout_s=90)
    assert record.status is JobStatus.SUCCEEDED  # the job's own status stands
    assert record.outputs is not None
    assert not record.outputs.complete
    assert record.outputs.reason is not None
    assert record.outputs.reason.startswith("outputs: uploading s3://")
    assert "unreachable" in record.outputs.reason

    proxy.unblock()
    kept = wait_for(lambda: (o := job.record().outputs) and o.complete and o, timeout_s=90,
                    what="outputs kept by reconcile")  # fmt: skip
    assert [f.path for f in kept.files] == ["r.txt"]
    (path,) = job.retrieve(tmp_path / "got", logs=False)
    assert path.read_text() == "result\n"
    # The stored final result follows: Celery's store_result left the first one in place.
    final = AsyncResult(job.result_id, app=gateway.celery).get(timeout=10)
    assert final["outputs"]["complete"] is True


def test_a_bundle_altered_in_s3_fails_the_job_with_a_checksum_mismatch(
    staged: StagedBackend, gateway: Gateway, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    staged.start()
    data = tmp_path / "data.txt"
    data.write_text("MARKER-ORIGINAL")

    def altered(job_id: str) -> bytes:
        out = io.BytesIO()
        members = bundles.collect([InputFile(src=str(data))])
        bundles.write(members, out, job_id=job_id, run_id=job_id, cluster="local")
        return out.getvalue().replace(b"MARKER-ORIGINAL", b"MARKER-ALTERED!")

    hook = Hook(at_end=lambda: replace_bundle_upload(s3_bucket, altered))
    job = gateway.submit(JobSpec(name="altered", command="cat data.txt", inputs=[str(data)]),
                         "local", progress=hook)  # fmt: skip
    record = job.wait(timeout_s=60)
    assert record.status is JobStatus.FAILED
    assert record.reason is not None
    assert record.reason.startswith("inputs: checksum mismatch for 'data.txt'")
    assert record.backend_id is None  # never submitted


def test_a_hand_made_bundle_climbing_out_of_the_work_directory_is_refused(
    staged: StagedBackend, gateway: Gateway, s3_bucket: S3Bucket, work_dir: Path, tmp_path: Path
) -> None:
    staged.start()
    (tmp_path / "x").write_text("harmless")
    content = b"escaped"

    def climbing(job_id: str) -> bytes:
        entry = {"path": "x", "size": len(content), "mode": 420,
                 "sha256": hashlib.sha256(content).hexdigest()}  # fmt: skip
        manifest = {"job_id": job_id, "run_id": job_id, "cluster": "local",
                    "jobgate_version": "0", "files": [entry]}  # fmt: skip
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for name, data in (("files/../../escaped.txt", content),
                               ("manifest.json", json.dumps(manifest).encode())):  # fmt: skip
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return out.getvalue()

    hook = Hook(at_end=lambda: replace_bundle_upload(s3_bucket, climbing))
    job = gateway.submit(JobSpec(name="climb", command="true", inputs=[str(tmp_path / "x")]),
                         "local", progress=hook)  # fmt: skip
    record = job.wait(timeout_s=60)
    assert record.status is JobStatus.FAILED
    assert record.reason == (
        "inputs: bundle member '../../escaped.txt' would land outside the work directory"
    )
    assert not list(work_dir.parent.rglob("escaped.txt"))
