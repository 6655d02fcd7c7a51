"""Job files on Kubernetes: the pod stages them itself, the gateway hands it URLs.

Before the Job is created the worker puts a per-job Secret (`staging_secret`) holding
what the pod's staging containers need (manifest.py adds them; stager.py is their
program): a presigned GET URL of the input bundle, and a presigned POST policy whose
only condition on the key is ``starts-with`` this job's output prefix, so the pod can
write nowhere else in the bucket. At finalize the worker reads the outputs manifest the
uploader wrote, checks it against a (capped) listing of the prefix, keeps the pod's log
as ``<job id>.out`` and deletes the Secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from jobgate.client.errors import JobgateError, StorageError
from jobgate.client.files import OutputFile, OutputsReport, check_relative_path
from jobgate.client.models import JobRecord, JobSpec
from jobgate.client.profile_schema import KubernetesSettings
from jobgate.workers.backends.base import LogRange
from jobgate.workers.staging.outputs import Kept
from jobgate.workers.staging.s3 import JobStorage

if TYPE_CHECKING:
    from jobgate.workers.context import ClusterContext

log = logging.getLogger(__name__)

#: Where the uploader puts its outputs manifest, under the job's output prefix.
OUTPUTS_MANIFEST = ".jobgate-outputs.json"
#: SigV4 presigned URLs and policies work at most this long.
MAX_EXPIRES_S = 7 * 24 * 3600
#: How much of the pod's log is kept as ``<job id>.out``.
LOG_LIMIT_BYTES = 64 << 20
_MARK = "JOBGATEPATHMARK"


def _not_kept(reason: str, *, retry: bool = False) -> Kept:
    return Kept(OutputsReport(complete=False, reason=f"outputs: {reason}"), retry)


def _record(job_id: str, spec: JobSpec) -> JobRecord:
    """Enough of a record for the storage's key templates (job id and run id)."""
    return JobRecord.model_construct(id=job_id, spec=spec)


def output_key_parts(storage: JobStorage, record: JobRecord) -> tuple[str, str]:
    """The output key of `path` is head + path + tail (tail: what the template puts
    after {filename}, usually nothing); head ends with ``<job id>/``."""
    head, _, tail = storage.output(record, _MARK).key.partition(_MARK)
    return head, tail


def staging_data(
    storage: JobStorage, settings: KubernetesSettings, job_id: str, spec: JobSpec
) -> dict[str, str]:
    """The Secret's values: ``fetch`` and ``upload`` configurations of the stager."""
    record = _record(job_id, spec)
    data: dict[str, str] = {}
    get_s = settings.staging_url_expires_s
    if spec.inputs:
        bundle = storage.bundle(record)
        url = storage.presigner.generate_presigned_url(
            "get_object", Params={"Bucket": bundle.bucket, "Key": bundle.key}, ExpiresIn=get_s
        )
        data["fetch"] = json.dumps({"job_id": job_id, "bundle_url": url})
    if spec.outputs:
        head, tail = output_key_parts(storage, record)
        post_s = min(MAX_EXPIRES_S, get_s + (spec.resources.walltime_s or MAX_EXPIRES_S))
        try:
            policy = storage.presigner.generate_presigned_post(
                storage.bucket,
                head + "${filename}",
                Conditions=[["starts-with", "$key", head]],
                ExpiresIn=post_s,
            )
        except Exception as e:
            raise storage.error(f"signing the upload policy of job {job_id}", e) from e
        data["upload"] = json.dumps({
            "job_id": job_id, "globs": list(spec.outputs), "key_head": head, "key_tail": tail,
            "manifest_key": head + OUTPUTS_MANIFEST, "max_files": storage.settings.max_outputs,
            "policy": {"url": policy["url"], "fields": policy["fields"]},
        })  # fmt: skip
    return data


def keep_outputs(ctx: ClusterContext, record: JobRecord) -> Kept:
    """What the pod's uploader kept, checked against S3; the pod's log kept too."""
    storage = ctx.storage
    if storage is None:
        return _not_kept(f"cluster {ctx.name} has no storage")
    try:
        files = _uploaded(storage, record) if record.spec.outputs else []
        logs = _keep_log(ctx, storage, record)
    except _Missing as e:
        return _not_kept(str(e), retry=_still_hoping(ctx, record))
    except StorageError as e:
        log.warning("job %s: outputs not read (retried later): %s", record.id, e)
        return _not_kept(str(e), retry=True)
    except _Refused as e:
        return _not_kept(str(e))
    _drop_secret(ctx, record)
    return Kept(OutputsReport(complete=True, files=files, logs=logs))


class _Missing(Exception):
    """The uploader's manifest is not (yet) there."""


class _Refused(Exception):
    """The uploader said it failed, or what it wrote does not hold up."""


def _still_hoping(ctx: ClusterContext, record: JobRecord) -> bool:
    """Retry while the pod may still be uploading (its grace period, and as long again);
    after that the manifest will not come and the Secret goes."""
    settings = getattr(ctx.profile, "kubernetes", None)
    grace_s = 2 * settings.staging_upload_grace_s if settings else 0
    finished = record.finished_at.timestamp() if record.finished_at else 0.0
    if ctx.store.now() - finished < grace_s:
        return True
    _drop_secret(ctx, record)
    return False


def _uploaded(storage: JobStorage, record: JobRecord) -> list[OutputFile]:
    head, _ = output_key_parts(storage, record)
    where = f"s3://{storage.bucket}/{head}{OUTPUTS_MANIFEST}"
    try:
        body = storage.client.get_object(Bucket=storage.bucket, Key=head + OUTPUTS_MANIFEST)
        report = json.loads(body["Body"].read())
    except ValueError as e:
        raise _Refused(f"the uploader's manifest {where} is not JSON") from e
    except Exception as e:
        code = getattr(e, "response", {}).get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404"):
            raise _Missing(
                f"the pod's uploader wrote no manifest at {where} (it did not run, was "
                "killed, or S3 failed it: see its log, container jobgate-upload)"
            ) from e
        raise storage.error(f"reading {where}", e) from e
    if not isinstance(report, dict) or report.get("job_id") != record.id:
        raise _Refused(f"{where} is not this job's outputs manifest")
    if not report.get("complete"):
        raise _Refused(f"the pod's uploader failed: {str(report.get('reason'))[:500]}")
    return _checked(storage, record, report.get("files"), where)


def _checked(storage: JobStorage, record: JobRecord, files: Any, where: str) -> list[OutputFile]:
    """The manifest's files, each at its key with its size in a listing of the prefix."""
    limit = storage.settings.max_outputs
    if not isinstance(files, list) or len(files) > limit:
        raise _Refused(f"{where}: no list of files, or more than storage.max_outputs ({limit})")
    head, _ = output_key_parts(storage, record)
    listed: dict[str, int] = {}
    pages = storage.client.get_paginator("list_objects_v2").paginate(
        Bucket=storage.bucket, Prefix=head, PaginationConfig={"PageSize": 1000}
    )
    try:
        for page in pages:
            listed.update({o["Key"]: int(o["Size"]) for o in page.get("Contents", [])})
            if len(listed) > limit + 1:
                raise _Refused(f"more than {limit} objects under s3://{storage.bucket}/{head}")
    except _Refused:
        raise
    except Exception as e:
        raise storage.error(f"listing s3://{storage.bucket}/{head}", e) from e
    kept = []
    for entry in files:
        try:
            path = check_relative_path(str(entry["path"]))
            key = storage.output(record, path).key
            item = OutputFile(path=path, size=entry["size"], sha256=entry["sha256"], key=key)
        except (KeyError, TypeError, ValueError) as e:
            raise _Refused(f"{where}: an invalid entry: {e}") from e
        if listed.get(key) != item.size:
            raise _Missing(f"{path} is in {where} but not in S3 with its {item.size} bytes")
        kept.append(item)
    return kept


def _keep_log(ctx: ClusterContext, storage: JobStorage, record: JobRecord) -> list[OutputFile]:
    """The pod's log (the job's container) as ``<job id>.out``: read from the cluster, or
    the tail the gateway kept once the cluster deleted it."""
    assert record.backend_id is not None  # the job ran (stages_files)
    try:
        data = ctx.backend.logs(
            record.id, record.backend_id, LogRange("stdout", 0, LOG_LIMIT_BYTES)
        ).data
    except JobgateError as e:
        tail = ctx.store.output_tail(record.id)
        if tail is None:
            log.info("job %s: no log to keep: %s", record.id, e)
            return []
        data = tail.encode()
    name = f"{record.id}.out"
    where = storage.log(record, name)
    storage.call(f"uploading {where}", "put_object", Bucket=where.bucket, Key=where.key, Body=data)
    digest = hashlib.sha256(data).hexdigest()
    return [OutputFile(path=name, size=len(data), sha256=digest, key=where.key)]


def _drop_secret(ctx: ClusterContext, record: JobRecord) -> None:
    drop = getattr(ctx.backend, "drop_staging_secret", None)
    if drop is not None and record.backend_id:
        try:
            drop(record.backend_id)
        except JobgateError as e:
            log.warning("job %s: its staging Secret stays: %s", record.id, e)
