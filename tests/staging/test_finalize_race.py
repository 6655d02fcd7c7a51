"""A finalize that comes while another keeps a job's outputs (a polling step's and a
reconcile's) leaves them to it. Before the outputs lock, the first removed the work
directory (retention 0) while the second still uploaded, and the second's "cannot read
…" replaced the complete report (seen in CI)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.result import AsyncResult

from jobgate.client import Gateway, JobStatus
from jobgate.client.celeryconf import make_celery
from jobgate.client.profile_schema import profile_from_data
from jobgate.workers.backends.local import LocalBackend
from jobgate.workers.context import ClusterContext
from jobgate.workers.finalize import finalize
from jobgate.workers.staging.s3 import JobStorage
from tests.support.records import make_record, move
from tests.support.s3 import S3Bucket
from tests.support.staging import KEY_ENV, SECRET_ENV
from tests.support.waiting import wait_for

BIG_MB = 100


@pytest.fixture
def ctx(
    gateway: Gateway, s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ClusterContext]:
    """The local cluster as a worker process serves it, with storage on the test's bucket."""
    monkeypatch.setenv(KEY_ENV, s3_bucket.access_key)
    monkeypatch.setenv(SECRET_ENV, s3_bucket.secret_key)
    profile = profile_from_data({
        "name": "local", "backend": "local", "local": {"work_dir": str(tmp_path / "jobs")},
        "storage": {"prefix": f"s3://{s3_bucket.bucket}/jobs", "work_dir_retention_s": 0,
                    "endpoint_url": s3_bucket.endpoint_url,
                    "credentials": {"access_key_id": f"env:{KEY_ENV}",
                                    "secret_access_key": f"env:{SECRET_ENV}"}},
    })  # fmt: skip
    assert profile.storage is not None
    app = make_celery(gateway.url, gateway.tenant)
    yield ClusterContext(profile, LocalBackend(profile), gateway.store, gateway.coordination,
                         app, JobStorage(profile.storage, "local"))  # fmt: skip
    app.close()


def test_a_second_finalize_during_the_first_keeps_the_outputs_complete(
    gateway: Gateway, ctx: ClusterContext, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    record = make_record(gateway.store, cluster="local", outputs=["out/**"])
    move(gateway.store, record.id, JobStatus.RUNNING, backend_id=record.id)
    move(gateway.store, record.id, JobStatus.SUCCEEDED, exit_code=0)
    directory = tmp_path / "jobs" / record.id
    (directory / "out").mkdir(parents=True)
    with (directory / "out" / "big.bin").open("wb") as f:
        for _ in range(BIG_MB):
            f.write(b"x" * (1 << 20))  # above the multipart threshold: seen while it goes up
    (directory / f"{record.id}.out").write_text("stdout")
    (directory / f"{record.id}.err").write_text("")

    failures: list[BaseException] = []

    def finalizer() -> None:
        try:
            finalize(ctx, record.id)
        except BaseException as e:
            failures.append(e)

    first, second = threading.Thread(target=finalizer), threading.Thread(target=finalizer)
    first.start()
    s3 = s3_bucket.client()
    wait_for(lambda: s3.list_multipart_uploads(Bucket=s3_bucket.bucket).get("Uploads"),
             what="the first finalize uploading")  # fmt: skip
    second.start()
    for thread in (first, second):
        thread.join(timeout=120)
    assert failures == []
    kept = gateway.store.get(record.id).outputs
    assert kept is not None
    assert kept.complete, kept.reason
    assert [f.path for f in kept.files] == ["out/big.bin"]
    assert [f.path for f in kept.logs] == [f"{record.id}.err", f"{record.id}.out"]
    assert not directory.exists()
    final = AsyncResult(record.result_id, app=ctx.app).get(timeout=10)
    assert final["outputs"]["complete"] is True
    assert record.id not in gateway.store.pending_finalization()
