"""Job records made in the store directly, and the history of a record in short.

Planting a record (and moving it) uses the store's internal update types; this module
is the one place the tests name them, so that a change of those internals is fixed here.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from jobgate.client import ids
from jobgate.client.models import (
    JobRecord,
    JobSpec,
    JobStatus,
    Observation,
    StatusUpdate,
    Transition,
)
from jobgate.client.store import JobStore

#: Retention of the records moved here (long enough to outlive any test).
RETENTION_S = 3600


def statuses(record: JobRecord) -> list[JobStatus]:
    """The statuses a job went through, in order."""
    return [h.status for h in record.history]


def make_record(
    store: JobStore,
    *,
    created_s: float | None = None,
    cluster: str = "c1",
    owner: str = "ann",
    name: str = "job",
    tags: tuple[str, ...] = (),
    **spec: Any,
) -> JobRecord:
    """A NEW job record written to the store as a submit would write it, with no message
    queued: nothing runs it unless the test says so. `spec` adds JobSpec fields."""
    job_id = ids.new_job_id(created_s)
    at = ids.created_at(job_id)
    record = JobRecord(
        id=job_id,
        cluster=cluster,
        owner=owner,
        name=name,
        tags=sorted(tags),
        spec=JobSpec(name=name, command="true", tags=list(tags), **spec),
        result_id=str(uuid.uuid4()),
        status=JobStatus.NEW,
        created_at=at,
        updated_at=at,
        history=[Transition(status=JobStatus.NEW, at=at)],
    )
    store.create(record)
    return record


def move(
    store: JobStore,
    job_id: str,
    status: JobStatus,
    observed_at: float | None = None,
    *,
    backend_id: str | None = None,
    **details: Any,
) -> str:
    """Apply one observed status to a record, as a poll would; the transition's outcome
    ("applied", "same", "stale", "finished", ...)."""
    update = StatusUpdate(job_id, Observation(status, **details), backend_id=backend_id)
    return store.transition(
        update, observed_at=observed_at or time.time(), retention_s=RETENTION_S
    ).outcome


def plant_submitted(store: JobStore, cluster: str, backend_id: str) -> JobRecord:
    """A job of `cluster` recorded as RUNNING on the scheduler under `backend_id`, though
    no worker submitted it: what the gateway finds when the scheduler forgot a job."""
    record = make_record(store, cluster=cluster)
    move(store, record.id, JobStatus.RUNNING, backend_id=backend_id)
    return store.get(record.id)
