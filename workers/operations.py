"""What the client asks of a worker about one job: fresh status, cancel, logs, the
upload of its inputs and the download of its outputs."""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Any

from jobgate.client.errors import (
    ConfigurationError,
    JobNotFoundError,
    OutputsIncompleteError,
    SpecInvalidError,
)
from jobgate.client.models import JobRecord, JobStatus, Observation, StatusUpdate
from jobgate.client.store import JobStore
from jobgate.workers.backends.base import CANCELLED_BY_USER, LogChunk, LogRange, Stream
from jobgate.workers.context import ClusterContext
from jobgate.workers.output_tail import keep_output_tails
from jobgate.workers.polling import refresh
from jobgate.workers.staging.inputs import stage
from jobgate.workers.staging.outputs import presigned_downloads, read_kept_log
from jobgate.workers.staging.s3 import JobStorage


def monitor_job(ctx: ClusterContext, job_id: str) -> dict[str, Any]:
    """The job's record, after refreshing the cluster's snapshot if it is older than the
    shortest poll interval (one batched query for the whole cluster, never one for this job)."""
    record = ctx.store.get(job_id)
    if record.status.is_active and record.backend_id:
        refresh(ctx, max_age_s=ctx.profile.poll_interval_min_s)
        record = ctx.store.get(job_id)
    return {"record": record.model_dump(mode="json")}


def cancel_job(ctx: ClusterContext, job_id: str) -> dict[str, Any]:
    """Stop the job on the cluster, then record it CANCELLED (a finished job stays as it is)."""
    (record,) = _cancel(ctx, [ctx.store.get(job_id)])
    return {"record": record.model_dump(mode="json")}


def cancel_jobs(ctx: ClusterContext, job_ids: Sequence[str]) -> dict[str, Any]:
    """`cancel_job` for many jobs of this cluster at once: one cancel command per chunk of
    backend ids (scancel/bkill take many), one round trip to record them all. The
    records come back in the order of `job_ids`."""
    records = []
    for job_id, record in zip(job_ids, ctx.store.get_many(job_ids), strict=True):
        if record is None:
            raise JobNotFoundError(f"no job {job_id} in tenant {ctx.tenant!r}")
        if record.cluster != ctx.name:
            raise SpecInvalidError(f"job {job_id} is on cluster {record.cluster}, not {ctx.name}")
        records.append(record)
    return {"records": [r.model_dump(mode="json") for r in _cancel(ctx, records)]}


def _cancel(ctx: ClusterContext, records: list[JobRecord]) -> list[JobRecord]:
    """Stop the active ones of these jobs on the cluster and record them CANCELLED; their
    records as they are now. A job the scheduler never heard of is cancelled all the same."""
    active = [r for r in records if r.status.is_active]
    if not active:
        return records
    backend_ids = {r.id: r.backend_id for r in active if r.backend_id}
    unknown = [r.id for r in active if not r.backend_id]
    if unknown:
        backend_ids.update(ctx.backend.discover(unknown))
    if backend_ids:
        keep_output_tails(ctx, backend_ids)
        ctx.backend.cancel(backend_ids)
    updates = []
    for r in active:
        backend_id = backend_ids.get(r.id)
        reason = CANCELLED_BY_USER if backend_id else "cancelled before submission"
        cancelled = Observation(JobStatus.CANCELLED, reason=reason)
        updates.append(StatusUpdate(r.id, cancelled, backend_id=backend_id))
    outcomes = ctx.record(updates)
    applied = [u.job_id for u, o in zip(updates, outcomes, strict=True) if o.applied]
    finished = ctx.finalize_many(applied)
    now = {r.id: r for r in finished}
    rest = [r.id for r in active if r.id not in now]  # it finished meanwhile: a poll saw it end
    now.update((r.id, r) for r in ctx.store.get_many(rest) if r is not None)
    return [now.get(r.id, r) for r in records]


def read_logs(
    ctx: ClusterContext,
    job_id: str,
    stream: Stream,
    offset: int,
    index: int | None,
    max_bytes: int,
) -> dict[str, Any]:
    """A chunk of output as text from byte `offset`.

    The chunk ends on a whole UTF-8 character, so a character split by the chunk
    size arrives whole in the next one. `complete` means the job had finished
    before this read and nothing is left: no more output will come.
    """
    record = ctx.store.get(job_id)
    finished = record.status.is_finished
    if not record.backend_id:
        return {"data": "", "offset": offset, "complete": finished}
    chunk = ctx.backend.logs(job_id, record.backend_id, LogRange(stream, offset, max_bytes, index))
    if finished and not chunk.data and not ctx.backend.keeps_output:
        chunk = _from_output_tail(ctx.store, job_id, offset, max_bytes)
    if finished and not chunk.data and record.outputs and ctx.storage:
        chunk = _from_kept_log(ctx.storage, record, stream, index, offset, max_bytes)
    at_end = len(chunk.data) < max_bytes
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(chunk.data, final=finished and at_end)
    undecoded = len(decoder.getstate()[0])
    return {
        "data": text,
        "offset": chunk.offset - undecoded,
        "complete": finished and not chunk.data,
    }


def _from_kept_log(
    storage: JobStorage,
    record: JobRecord,
    stream: Stream,
    index: int | None,
    offset: int,
    max_bytes: int,
) -> LogChunk:
    """The job's log as kept in S3, once its work directory is gone."""
    assert record.outputs is not None
    if index is None and record.elements:
        index = record.elements[0].index
    name = f"{record.id}{'' if index is None else f'.{index}'}.{stream[3:]}"
    kept = {f.path: f.key for f in record.outputs.logs}
    if name not in kept:
        return LogChunk(b"", offset)
    data = read_kept_log(storage, kept[name], offset, max_bytes)
    return LogChunk(data, offset + len(data))


def stage_inputs(ctx: ClusterContext, job_id: str, step: str, size: int) -> dict[str, Any]:
    """A step of the client's upload of the job's input bundle (staging.inputs.stage)."""
    return stage(_storage(ctx), ctx.store.get(job_id), step, size)


def retrieve_outputs(ctx: ClusterContext, job_id: str) -> dict[str, Any]:
    """Presigned download URLs of the job's kept outputs and logs, by object key."""
    record = ctx.store.get(job_id)
    if record.outputs is None:
        raise OutputsIncompleteError(f"job {job_id} has no outputs kept")
    return {"urls": presigned_downloads(_storage(ctx), record.outputs)}


def _storage(ctx: ClusterContext) -> JobStorage:
    if ctx.storage is None:
        raise ConfigurationError(
            f"cluster {ctx.name} has no storage: its profile needs a storage block"
        )
    return ctx.storage


def _from_output_tail(store: JobStore, job_id: str, offset: int, max_bytes: int) -> LogChunk:
    """The kept end of the output, once the cluster has deleted the job's own."""
    data = (store.output_tail(job_id) or "").encode()[offset : offset + max_bytes]
    return LogChunk(data, offset + len(data))
