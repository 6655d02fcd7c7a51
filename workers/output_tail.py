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
from jobgate.client.profile_schema import KubernetesProfile
from jobgate.workers.backends.base import LogRange
from jobgate.workers.context import ClusterContext

log = logging.getLogger(__name__)
#: Read at most this much of a log to find its end.
READ_LIMIT_BYTES = 64 << 20


def keep_output_tails(ctx: ClusterContext, jobs: Mapping[str, str]) -> None:
    """Save the end of the output of these finished jobs (jobgate id -> backend id)."""
    profile = ctx.profile
    limit = profile.kubernetes.output_tail_bytes if isinstance(profile, KubernetesProfile) else 0
    if ctx.backend.keeps_output or not limit:
        return
    for job_id, backend_id in jobs.items():
        try:
            chunk = ctx.backend.logs(job_id, backend_id, LogRange("stdout", 0, READ_LIMIT_BYTES))
        except JobgateError as e:
            log.warning("job %s: could not keep the end of its output: %s", job_id, e)
            continue
        tail = chunk.data[-limit:].decode("utf-8", errors="replace")
        ctx.store.save_output_tail(job_id, tail, profile.retention_s)
