"""Keeping the end of a finished job's output where the cluster deletes it by itself.

On Kubernetes the Job, its pods and their logs go when `ttlSecondsAfterFinished`
runs out (or when jobgate deletes a failed Job). When such a job finishes, the
gateway reads its log once and keeps the last `output_tail_bytes` in Redis, for
the record's retention; `jobgate.logs` serves it once the cluster has nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from jobgate.client.errors import JobgateError
from jobgate.client.profile_schema import ClusterProfile
from jobgate.client.store import JobStore
from jobgate.workers.backends.base import Backend

log = logging.getLogger(__name__)
#: Read at most this much of a log to find its end.
READ_LIMIT_BYTES = 64 << 20


def keep_output_tails(
    store: JobStore, backend: Backend, profile: ClusterProfile, jobs: Mapping[str, str]
) -> None:
    """Save the end of the output of these finished jobs (jobgate id -> backend id)."""
    limit = profile.kubernetes.output_tail_bytes if profile.kubernetes else 0
    if backend.keeps_output or not limit:
        return
    for job_id, backend_id in jobs.items():
        try:
            chunk = backend.logs(job_id, backend_id, "stdout", 0, READ_LIMIT_BYTES, None)
        except JobgateError as e:
            log.warning("job %s: could not keep the end of its output: %s", job_id, e)
            continue
        tail = chunk.data[-limit:].decode("utf-8", errors="replace")
        store.save_output_tail(job_id, tail, profile.retention_s)
