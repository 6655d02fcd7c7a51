"""A job's inputs: the client's upload of its bundle, and unpacking it before submission.

The client uploads the bundle in parts to URLs presigned here (``jobgate.stage``):
`begin` opens the multipart upload of the job's bundle key, or finds the one a
redelivered `begin` opened, and presigns its parts; `complete` joins the parts S3 holds;
`abort` drops them. Before the job is submitted, the worker downloads the bundle into
the job's directory, checks it and unpacks it there (client.bundle.unpack); any
problem fails the job with a reason starting ``inputs:``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from jobgate.client import bundle, routing
from jobgate.client.bundle import BundleError
from jobgate.client.errors import SpecInvalidError, StorageError
from jobgate.client.models import JobRecord
from jobgate.workers.backends.jobfiles import FileBackend
from jobgate.workers.staging.s3 import MAX_PARTS, JobStorage, part_size

log = logging.getLogger(__name__)


class InputsError(StorageError):
    """The job's inputs cannot be staged; its reason starts with ``inputs:``."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(f"inputs: {message}", transient=transient)


def stage(storage: JobStorage, record: JobRecord, step: str, size: int) -> dict[str, Any]:
    """One step of the client's upload of the job's bundle (see module docstring)."""
    if not record.spec.inputs:
        raise SpecInvalidError(f"job {record.id} has no inputs to upload")
    if record.backend_id or record.status.is_finished:
        raise SpecInvalidError(f"job {record.id} is {record.status.value}: too late for inputs")
    where = storage.bundle(record)
    if step == routing.STAGE_BEGIN:
        return _begin(storage, where, size)
    if step == routing.STAGE_COMPLETE:
        return _complete(storage, where, size)
    for upload_id in storage.uploads(where):
        storage.call(
            f"aborting the upload of {where}",
            "abort_multipart_upload",
            Bucket=where.bucket,
            Key=where.key,
            UploadId=upload_id,
        )
    return {}


def _begin(storage: JobStorage, where: Any, size_bound: int) -> dict[str, Any]:
    chunk = part_size(size_bound)
    parts = max(1, math.ceil(size_bound / chunk))
    if parts > MAX_PARTS:
        raise SpecInvalidError(f"inputs of {size_bound} bytes are more than S3 takes in one object")
    upload_id = next(iter(storage.uploads(where)), None)
    if upload_id is None:
        reply = storage.call(
            f"starting the upload of {where}",
            "create_multipart_upload",
            Bucket=where.bucket,
            Key=where.key,
        )
        upload_id = reply["UploadId"]
    urls = {
        str(n): storage.presign(
            "upload_part", Bucket=where.bucket, Key=where.key, UploadId=upload_id, PartNumber=n
        )
        for n in range(1, parts + 1)
    }
    return {"part_size": chunk, "parts": urls}


def _complete(storage: JobStorage, where: Any, parts: int) -> dict[str, Any]:
    upload_id = next(iter(storage.uploads(where)), None)
    if upload_id is None:
        raise StorageError(f"no upload of {where} is open: begin it first")
    held: list[dict[str, Any]] = []
    marker = 0
    while True:
        reply = storage.call(
            f"listing the parts of {where}",
            "list_parts",
            Bucket=where.bucket,
            Key=where.key,
            UploadId=upload_id,
            PartNumberMarker=marker,
        )
        held += reply.get("Parts", [])
        if not reply.get("IsTruncated"):
            break
        marker = int(reply["NextPartNumberMarker"])
    # A part the client sent again (after a lost answer) is listed twice by some S3
    # servers (SeaweedFS); both copies hold the same bytes, so either may be joined.
    latest: dict[int, dict[str, Any]] = {}
    for part in held:
        if int(part["PartNumber"]) <= parts:
            latest[int(part["PartNumber"])] = part
    missing = sorted(set(range(1, parts + 1)) - set(latest))
    if missing:
        raise StorageError(f"the upload of {where} lacks part(s) {missing[:10]}")
    chosen = [latest[n] for n in range(1, parts + 1)]
    storage.call(
        f"completing the upload of {where}",
        "complete_multipart_upload",
        Bucket=where.bucket,
        Key=where.key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": int(p["PartNumber"]), "ETag": p["ETag"]} for p in chosen]
        },
    )
    return {"parts": parts}


def unpack_inputs(storage: JobStorage, backend: FileBackend[Any], record: JobRecord) -> int:
    """Download the job's bundle into its directory, check it and unpack it there;
    returns how many files landed. InputsError says what is wrong."""
    directory = backend.job_directory(record.id)
    where = storage.bundle(record)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise InputsError(f"cannot make the job's directory {directory}: {e.strerror}") from e
    local = directory / f"{record.id}.bundle"
    try:
        try:
            storage.client.download_file(where.bucket, where.key, str(local))
        except Exception as e:
            error = storage.error(f"downloading {where}", e)
            if "404" in str(e) or "Not Found" in str(e):
                error = StorageError(f"bundle {where} does not exist (was the upload finished?)")
            raise InputsError(str(error), transient=error.transient) from e
        try:
            manifest = bundle.unpack(
                local, directory, record.id, lambda path: backend.is_own_file(record.id, path)
            )
        except BundleError as e:
            raise InputsError(str(e)) from e
        except OSError as e:
            raise InputsError(f"cannot unpack into {directory}: {e}") from e
    finally:
        Path(local).unlink(missing_ok=True)
    log.info("job %s: %d input file(s) unpacked into %s", record.id, len(manifest.files), directory)
    return len(manifest.files)
