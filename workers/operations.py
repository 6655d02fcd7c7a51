"""What the client asks of a worker about one job: fresh status, cancel, logs."""

from __future__ import annotations

import codecs
import time
from typing import Any

from celery import Celery

from jobgate.client.models import JobStatus
from jobgate.client.profiles import ClusterProfile
from jobgate.client.store import JobStore, Observation, StatusUpdate
from jobgate.workers.backends import Backend
from jobgate.workers.backends.base import LogChunk, Stream
from jobgate.workers.finalize import finalize
from jobgate.workers.output_tail import keep_output_tails
from jobgate.workers.polling import refresh


def monitor_job(
    store: JobStore, app: Celery, backend: Backend, profile: ClusterProfile, job_id: str
) -> dict[str, Any]:
    """The job's record, after refreshing the cluster's snapshot if it is older than the
    shortest poll interval (one batched query for the whole cluster, never one for this job)."""
    record = store.get(job_id)
    if record.status.is_active and record.backend_id:
        refresh(store, app, backend, profile, max_age_s=profile.poll_interval_min_s)
        record = store.get(job_id)
    return {"record": record.model_dump(mode="json")}


def cancel_job(
    store: JobStore, app: Celery, backend: Backend, profile: ClusterProfile, job_id: str
) -> dict[str, Any]:
    """Stop the job on the cluster, then record it CANCELLED (a finished job stays as it is)."""
    record = store.get(job_id)
    if record.status.is_active:
        backend_id = record.backend_id or backend.find(job_id)
        if backend_id:
            keep_output_tails(store, backend, profile, {job_id: backend_id})
            backend.cancel({job_id: backend_id})
        outcome = store.transition(
            StatusUpdate(
                job_id,
                Observation(
                    JobStatus.CANCELLED,
                    reason="cancelled by user" if backend_id else "cancelled before submission",
                ),
                backend_id=backend_id,
            ),
            observed_at=time.time(),
            retention_s=profile.retention_s,
        )
        if outcome.applied:
            finalize(store, app, job_id, profile)
        record = store.get(job_id)
    return {"record": record.model_dump(mode="json")}


def read_logs(
    store: JobStore,
    backend: Backend,
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
    record = store.get(job_id)
    finished = record.status.is_finished
    if not record.backend_id:
        return {"data": "", "offset": offset, "complete": finished}
    chunk = backend.logs(job_id, record.backend_id, stream, offset, max_bytes, index)
    if finished and not chunk.data and not backend.keeps_output:
        chunk = _from_output_tail(store, job_id, offset, max_bytes)
    at_end = len(chunk.data) < max_bytes
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(chunk.data, final=finished and at_end)
    undecoded = len(decoder.getstate()[0])
    return {
        "data": text,
        "offset": chunk.offset - undecoded,
        "complete": finished and not chunk.data,
    }


def _from_output_tail(store: JobStore, job_id: str, offset: int, max_bytes: int) -> LogChunk:
    """The kept end of the output, once the cluster has deleted the job's own."""
    data = (store.output_tail(job_id) or "").encode()[offset : offset + max_bytes]
    return LogChunk(data, offset + len(data))
