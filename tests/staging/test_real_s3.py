"""The round trip against a real S3 endpoint of the operator's choice, when asked for:

    JOBGATE_S3_E2E=1 JOBGATE_S3_BUCKET=my-bucket [JOBGATE_S3_ENDPOINT=https://...] \\
    [JOBGATE_S3_REGION=eu-west-1] AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \\
    .venv/bin/pytest tests/staging/test_real_s3.py

Objects go under ``jobgate-e2e/`` in the bucket; the test deletes what it wrote."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from jobgate.client import Gateway, JobSpec, JobStatus
from tests.support.local import LocalHarness

pytestmark = pytest.mark.skipif(
    os.environ.get("JOBGATE_S3_E2E") != "1", reason="set JOBGATE_S3_E2E=1 and the S3 settings"
)


def test_inputs_and_outputs_round_trip_through_a_real_s3_endpoint(
    local_backend: LocalHarness, gateway: Gateway, tmp_path: Path
) -> None:
    bucket = os.environ["JOBGATE_S3_BUCKET"]
    run_id = f"e2e-{uuid.uuid4().hex[:12]}"
    storage = {"prefix": f"s3://{bucket}/jobgate-e2e", "work_dir_retention_s": 0}
    if endpoint := os.environ.get("JOBGATE_S3_ENDPOINT"):
        storage["endpoint_url"] = endpoint
    if region := os.environ.get("JOBGATE_S3_REGION"):
        storage["region"] = region
    keys = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    local_backend.start_worker(local_backend.profile(storage=storage), env=keys)
    source = tmp_path / "in.txt"
    source.write_text("real s3\n")
    job = gateway.submit(
        JobSpec(name="real", command="tr a-z A-Z < in.txt > out.txt", run_id=run_id,
                inputs=[str(source)], outputs=["out.txt"]), "local"
    )  # fmt: skip
    try:
        assert job.wait(timeout_s=300).status is JobStatus.SUCCEEDED
        (path,) = job.retrieve(tmp_path / "got", logs=False)
        assert path.read_text() == "REAL S3\n"
    finally:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint or None, region_name=region or None)
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"jobgate-e2e/{run_id}/")
        for item in listed.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
