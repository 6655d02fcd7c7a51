"""Only workers hold S3 keys, and presigned URLs go to the client alone: neither shows in
the worker log, Flower's task pages, the job record, the final result or Redis."""

from __future__ import annotations

import json
from pathlib import Path

from celery.result import AsyncResult

from jobgate.client import Gateway, JobSpec, JobStatus, routing
from scripts import devstack
from tests.support.redis_dump import tenant_values
from tests.support.s3 import S3Bucket
from tests.support.staging import StagedBackend
from tests.support.waiting import wait_for
from tests.support.workers import wait_for_task_events

SIGNS_OF_A_URL = ("X-Amz-Signature", "X-Amz-Credential", "Signature=", "AWSAccessKeyId")


def test_no_s3_key_or_presigned_url_shows_anywhere_but_the_client(
    staged: StagedBackend, gateway: Gateway, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    flower = devstack.Flower(
        tmp_path / "flower", gateway.url, tenant=gateway.tenant, basic_auth="ops:pw"
    ).start()
    try:
        worker = staged.start()
        wait_for_task_events(worker)
        (tmp_path / "in.txt").write_text("in")
        job = gateway.submit(
            JobSpec(name="keyless", command="cp in.txt out.txt", inputs=[str(tmp_path / "in.txt")],
                    outputs=["out.txt"]), "local"
        )  # fmt: skip
        record = job.wait(timeout_s=60)
        assert record.status is JobStatus.SUCCEEDED
        assert [p.name for p in job.retrieve(tmp_path / "got", logs=False)] == ["out.txt"]
        final = AsyncResult(job.result_id, app=gateway.celery).get(timeout=30)
        assert final["outputs"]["files"][0]["path"] == "out.txt"  # the result lists them

        def flower_tasks() -> str | None:
            tasks = flower.get_json("/api/tasks").values()
            names = {t["name"] for t in tasks if t["state"] == "SUCCESS"}
            return json.dumps(list(tasks)) if {routing.STAGE, routing.RETRIEVE} <= names else None

        places = {
            "job record": job.record().model_dump_json(),
            "result backend": json.dumps(final),
            "redis values": tenant_values(gateway),
            "worker log": worker.log_text(),
            "flower tasks": wait_for(flower_tasks, what="Flower to see stage and retrieve"),
        }
        for place, text in places.items():
            assert s3_bucket.access_key not in text, f"the access key leaked into the {place}"
            assert s3_bucket.secret_key not in text, f"the secret key leaked into the {place}"
            for sign in SIGNS_OF_A_URL:
                assert sign not in text, f"a presigned URL leaked into the {place}"
        assert job.id in places["flower tasks"]
    finally:
        flower.stop()
