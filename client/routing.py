"""Task names and queue names: the wire contract between client and workers."""

from __future__ import annotations

SUBMIT = "jobgate.submit"
SUBMIT_BATCH = "jobgate.submit_batch"
DRAIN_SUBMITS = "jobgate.drain_submits"
POLL = "jobgate.poll"
MONITOR = "jobgate.monitor"
CANCEL = "jobgate.cancel"
CANCEL_MANY = "jobgate.cancel_many"
LOGS = "jobgate.logs"
RETRIEVE = "jobgate.retrieve"
STAGE = "jobgate.stage"
RECONCILE = "jobgate.reconcile"

#: The most jobs one ``jobgate.submit_batch`` message may carry.
SUBMIT_BATCH_MAX = 100

#: The message header of a client-facing task: when (epoch seconds on Redis's clock) its
#: caller stops waiting. Celery's own `expires` is on the sender's clock, read by the
#: worker's: a worker whose clock runs minutes ahead would drop every call as expired.
EXPIRES_AT_HEADER = "jobgate_expires_at"

#: The most output one ``jobgate.logs`` answer carries (its `max_bytes`); the client
#: reads a larger output in chunks of this size.
LOGS_MAX_BYTES = 1 << 20


#: The most job ids one ``jobgate.cancel_many(cluster, job_ids)`` carries; the client sends
#: more in several.
CANCEL_MANY_MAX_JOBS = 10_000


#: Steps of ``jobgate.stage(job_id, step, size)``, the upload of a job's input bundle.
STAGE_BEGIN, STAGE_COMPLETE, STAGE_ABORT = "begin", "complete", "abort"


def queue(cluster: str) -> str:
    """Queue of the client-facing tasks of a cluster (submit, monitor, cancel, logs)."""
    return f"jobgate.{cluster}"


def poll_queue(cluster: str) -> str:
    """Queue of a cluster's polling chain and reconcile, so countdowns never delay a submit."""
    return f"jobgate.{cluster}.poll"
