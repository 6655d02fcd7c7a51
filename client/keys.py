"""The Redis key schema. Every key and channel of a tenant starts with ``jobgate:<tenant>:``.

This module is the only place key names are spelt: the Lua scripts receive full
keys and key prefixes from it as arguments.

Celery's own keys (queues, ``unacked``, results, pidbox, events) get the same
prefix through kombu's ``global_keyprefix``, so a Redis ACL on that prefix
confines a tenant. jobgate's own keys never start with ``celery``, ``_kombu``,
``unacked`` or ``jobgate.`` (Celery's queue names), so the two never collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobgate.client.errors import ConfigurationError
from jobgate.client.models import JobStatus

HISTORY_SUFFIX = ":history"
EVENTS_SUFFIX = ":events"
SECRETS_SUFFIX = ":secrets"
OUTPUT_TAIL_SUFFIX = ":output-tail"
TENANT_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def check_tenant(tenant: str) -> str:
    if not TENANT_PATTERN.match(tenant):
        raise ConfigurationError(
            f"tenant {tenant!r} must be an RFC 1123 label (lowercase letters, digits, '-')"
        )
    return tenant


@dataclass(frozen=True)
class Keys:
    """Key names for one tenant."""

    tenant: str

    @property
    def prefix(self) -> str:
        return f"jobgate:{self.tenant}:"

    @property
    def job_prefix(self) -> str:
        return f"{self.prefix}job:"

    def job(self, job_id: str) -> str:
        return f"{self.job_prefix}{job_id}"

    def history(self, job_id: str) -> str:
        return f"{self.job(job_id)}{HISTORY_SUFFIX}"

    def events(self, job_id: str) -> str:
        """Capped stream of one job's transitions, read by ``Job.wait()``."""
        return f"{self.job(job_id)}{EVENTS_SUFFIX}"

    def secrets(self, job_id: str) -> str:
        """Hash of a job's secret env values, kept out of its record; gone at finalize."""
        return f"{self.job(job_id)}{SECRETS_SUFFIX}"

    def output_tail(self, job_id: str) -> str:
        """The end of a finished job's output, for backends whose cluster deletes it."""
        return f"{self.job(job_id)}{OUTPUT_TAIL_SUFFIX}"

    @property
    def workers(self) -> str:
        """Set of the hostnames of workers that published a heartbeat."""
        return f"{self.prefix}workers"

    def worker(self, hostname: str) -> str:
        """A worker's heartbeat: the profiles it serves; expires when it stops beating."""
        return f"{self.prefix}worker:{hostname}"

    @property
    def channel(self) -> str:
        """Pub/sub channel on which every transition of the tenant is published."""
        return f"{self.prefix}events"

    def index_prefix(self, kind: str) -> str:
        """Prefix of the index sorted sets of one kind: status, cluster, owner, name, tag."""
        return f"{self.prefix}idx:{kind}:"

    @property
    def index_all(self) -> str:
        return f"{self.prefix}idx:all"

    def index_status(self, status: JobStatus) -> str:
        return f"{self.index_prefix('status')}{status.value}"

    def index_cluster(self, cluster: str) -> str:
        return f"{self.index_prefix('cluster')}{cluster}"

    def index_owner(self, owner: str) -> str:
        return f"{self.index_prefix('owner')}{owner}"

    def index_name(self, name: str) -> str:
        return f"{self.index_prefix('name')}{name}"

    def index_tag(self, tag: str) -> str:
        return f"{self.index_prefix('tag')}{tag}"

    @property
    def active_prefix(self) -> str:
        return f"{self.prefix}active:"

    def active(self, cluster: str) -> str:
        """Hash job id -> backend id of a cluster's submitted, unfinished jobs."""
        return f"{self.active_prefix}{cluster}"

    @property
    def seen_prefix(self) -> str:
        return f"{self.prefix}seen:"

    def seen(self, cluster: str) -> str:
        """Hash job id -> digest of the last observation recorded, for unfinished jobs."""
        return f"{self.seen_prefix}{cluster}"

    @property
    def finalize_pending(self) -> str:
        """Sorted set of finished jobs whose final result is not yet stored."""
        return f"{self.prefix}finalize"

    def outputs_retry(self, cluster: str) -> str:
        """Sorted set of a cluster's finished jobs whose outputs upload failed, scored by
        when to try again."""
        return f"{self.prefix}outputs-retry:{cluster}"

    def work_dir_removal(self, cluster: str) -> str:
        """Sorted set of a cluster's jobs whose work directory goes, scored by when."""
        return f"{self.prefix}work-dir-removal:{cluster}"

    @property
    def expiry(self) -> str:
        """Sorted set of finished jobs scored by when their record may be purged."""
        return f"{self.prefix}expiry"

    def poll_lease(self, cluster: str) -> str:
        """``<chain token>:<next step>`` of the cluster's one live polling chain."""
        return f"{self.prefix}poll:{cluster}:lease"

    def query_lock(self, cluster: str) -> str:
        """Held while a worker queries the cluster's scheduler, so queries never overlap."""
        return f"{self.prefix}poll:{cluster}:querying"

    def reconcile_turn(self, cluster: str) -> str:
        """Set by the worker whose turn it is to send this interval's reconcile."""
        return f"{self.prefix}reconcile:{cluster}"

    def submit_queue(self, cluster: str) -> str:
        """Sorted set of a cluster's recorded jobs waiting for a worker to submit them,
        scored by when they were queued (see submit_queue.py)."""
        return f"{self.prefix}submit-queue:{cluster}"

    def submit_claims(self, cluster: str) -> str:
        """Sorted set of the queued jobs a worker took, scored by when its claim lapses."""
        return f"{self.prefix}submit-claims:{cluster}"

    def submit_drainer(self, cluster: str, slot: int) -> str:
        """Set while a ``jobgate.drain_submits`` of that slot is queued or running."""
        return f"{self.prefix}submit-drainer:{cluster}:{slot}"

    def submit_lock(self, job_id: str) -> str:
        return f"{self.prefix}submitting:{job_id}"

    def outputs_lock(self, job_id: str) -> str:
        return f"{self.prefix}keeping-outputs:{job_id}"

    def submit_attempts(self, job_id: str) -> str:
        """How many deliveries of a job's submit started and have not ended."""
        return f"{self.submit_lock(job_id)}:attempts"

    def resent_marker(self, job_id: str) -> str:
        """Set when reconcile re-sent a stuck job's submit, so it does so once a while."""
        return f"{self.submit_lock(job_id)}:resent"

    def stats(self, cluster: str) -> str:
        """Hash of counters: scheduler queries, polls, jobs queried, last query time."""
        return f"{self.prefix}stats:{cluster}"
