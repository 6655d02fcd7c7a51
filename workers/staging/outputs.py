"""A finished job's outputs and logs: into S3, into its record, handed out, cleaned up.

At finalize, the files of the job's work directory that match its `outputs` globs (at
most the profile's ``storage.max_outputs``; more is an error, never a cut) and its
stdout/stderr files go to S3 through boto3's transfer manager (multipart, concurrent,
retried), each with its size and sha256 in the record's `OutputsReport`. An upload
that fails leaves the report incomplete with the reason, keeps the work directory and
puts the job on the cluster's retry list, which reconcile works through. Once the
report is complete the work directory is removed after ``storage.work_dir_retention_s``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobgate.client.errors import StorageError
from jobgate.client.files import OutputFile, OutputsReport, matching
from jobgate.client.models import JobRecord
from jobgate.workers.backends.jobfiles import FileBackend
from jobgate.workers.staging.s3 import MIB, JobStorage

if TYPE_CHECKING:
    from jobgate.workers.context import ClusterContext

log = logging.getLogger(__name__)

UPLOAD_CONCURRENCY = 8
MULTIPART_THRESHOLD = 64 * MIB


def stages_files(record: JobRecord) -> bool:
    """Whether the job's files go through S3: it declared inputs or outputs and ran."""
    return bool(record.backend_id and (record.spec.inputs or record.spec.outputs))


@dataclass(frozen=True)
class Kept:
    """What an attempt to keep a job's outputs gave, and whether to try again later."""

    report: OutputsReport
    retry: bool = False


def _not_kept(reason: str, *, retry: bool = False) -> Kept:
    return Kept(OutputsReport(complete=False, reason=f"outputs: {reason}"), retry)


def keep_outputs(ctx: ClusterContext, record: JobRecord) -> Kept:
    """Upload the job's outputs and logs and say what was kept (or why not)."""
    storage, backend = ctx.storage, ctx.backend
    if storage is None:
        return _not_kept(f"cluster {ctx.name} has no storage")
    if not isinstance(backend, FileBackend):
        keep = getattr(backend, "keep_outputs", None)  # a backend whose jobs stage their own
        if keep is None:
            return _not_kept(f"the {backend.kind} backend does not keep outputs in S3")
        kept: Kept = keep(ctx, record)
        return kept
    directory = backend.job_directory(record.id)
    if not directory.is_dir():
        return _not_kept(f"the job's directory {directory} is gone")
    own, theirs = _files(directory, lambda path: backend.is_own_file(record.id, path))
    chosen = matching(theirs, record.spec.outputs)
    limit = storage.settings.max_outputs
    if len(chosen) > limit:
        return _not_kept(
            f"{len(chosen)} files match, more than storage.max_outputs ({limit}); none were kept"
        )
    stream_file = re.compile(rf"^{re.escape(record.id)}(\.\d+)?\.(out|err)\Z")
    logs = sorted(p for p in own if stream_file.match(p))
    try:
        files = _upload(storage, directory, [(p, storage.output(record, p)) for p in chosen])
        kept_logs = _upload(storage, directory, [(p, storage.log(record, p)) for p in logs])
    except StorageError as e:
        log.warning("job %s: outputs not kept (retried later): %s", record.id, e)
        return _not_kept(str(e), retry=True)
    return Kept(OutputsReport(complete=True, files=files, logs=kept_logs))


def _files(directory: Path, own: Any) -> tuple[list[str], list[str]]:
    """Regular files under `directory` by relative path: jobgate's own and the job's.
    Symlinks are not followed: a job cannot make the worker upload what is outside."""
    mine: list[str] = []
    theirs: list[str] = []
    for here, subdirs, names in os.walk(directory, followlinks=False):
        subdirs.sort()
        for name in sorted(names):
            path = Path(here) / name
            if path.is_symlink() or not path.is_file() or name.endswith(".part"):
                continue
            relative = path.relative_to(directory).as_posix()
            (mine if own(relative) else theirs).append(relative)
    return mine, theirs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _upload(storage: JobStorage, directory: Path, items: list[tuple[str, Any]]) -> list[OutputFile]:
    """Upload (relative path, Location) items with one transfer manager; all or an error."""
    if not items:
        return []
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    config = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=16 * MIB,
        max_concurrency=UPLOAD_CONCURRENCY,
    )
    kept: list[OutputFile] = []
    with create_transfer_manager(storage.client, config) as manager:
        futures = []
        for relative, where in items:
            path = directory / relative
            try:
                size, sha = path.stat().st_size, _sha256(path)
            except OSError as e:
                raise StorageError(f"cannot read {path}: {e.strerror}") from e
            kept.append(OutputFile(path=relative, size=size, sha256=sha, key=where.key))
            futures.append((where, manager.upload(str(path), where.bucket, where.key)))
        for where, future in futures:
            try:
                future.result()
            except Exception as e:
                raise storage.error(f"uploading {where}", e) from e
    return kept


def presigned_downloads(storage: JobStorage, report: OutputsReport) -> dict[str, str]:
    """A presigned GET URL for every kept output and log, by object key."""
    return {
        f.key: storage.presign("get_object", Bucket=storage.bucket, Key=f.key)
        for f in [*report.files, *report.logs]
    }


def read_kept_log(storage: JobStorage, key: str, offset: int, max_bytes: int) -> bytes:
    """Bytes of a log kept in S3 from `offset` (its work directory is gone)."""
    what = f"reading s3://{storage.bucket}/{key}"
    head = storage.call(what, "head_object", Bucket=storage.bucket, Key=key)
    if offset >= int(head["ContentLength"]):
        return b""
    reply = storage.call(
        what,
        "get_object",
        Bucket=storage.bucket,
        Key=key,
        Range=f"bytes={offset}-{offset + max_bytes - 1}",
    )
    data: bytes = reply["Body"].read()
    return data


def remove_work_dir(ctx: ClusterContext, job_id: str) -> None:
    """Remove a finished job's work directory (its outputs and logs are in S3)."""
    if isinstance(ctx.backend, FileBackend):
        directory = ctx.backend.job_directory(job_id)
        shutil.rmtree(directory, ignore_errors=True)
        log.info("job %s: removed its work directory %s", job_id, directory)
