"""The Redis key schema. Every key and channel of a tenant starts with ``jobgate:<tenant>:``.

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

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def history(self, job_id: str) -> str:
        return f"{self.job(job_id)}:history"

    def events(self, job_id: str) -> str:
        """Capped stream of one job's transitions, read by ``Job.wait()``."""
        return f"{self.job(job_id)}:events"

    @property
    def channel(self) -> str:
        """Pub/sub channel on which every transition of the tenant is published."""
        return f"{self.prefix}events"

    @property
    def index_all(self) -> str:
        return f"{self.prefix}idx:all"

    def index_status(self, status: JobStatus) -> str:
        return f"{self.prefix}idx:status:{status.value}"

    def index_cluster(self, cluster: str) -> str:
        return f"{self.prefix}idx:cluster:{cluster}"

    def index_owner(self, owner: str) -> str:
        return f"{self.prefix}idx:owner:{owner}"

    def index_name(self, name: str) -> str:
        return f"{self.prefix}idx:name:{name}"

    def index_tag(self, tag: str) -> str:
        return f"{self.prefix}idx:tag:{tag}"

    def active(self, cluster: str) -> str:
        """Hash job id -> backend id of a cluster's submitted, unfinished jobs."""
        return f"{self.prefix}active:{cluster}"

    @property
    def finalize_pending(self) -> str:
        """Sorted set of finished jobs whose final result is not yet stored."""
        return f"{self.prefix}finalize"

    @property
    def expiry(self) -> str:
        """Sorted set of finished jobs scored by when their record may be purged."""
        return f"{self.prefix}expiry"

    def poll_lease(self, cluster: str) -> str:
        return f"{self.prefix}poll:{cluster}:lease"

    def query_lock(self, cluster: str) -> str:
        return f"{self.prefix}poll:{cluster}:querying"

    def reconcile_lock(self, cluster: str) -> str:
        return f"{self.prefix}reconcile:{cluster}"

    def submit_lock(self, job_id: str) -> str:
        return f"{self.prefix}submitting:{job_id}"

    def stats(self, cluster: str) -> str:
        """Hash of counters: scheduler queries, polls, jobs queried, last query time."""
        return f"{self.prefix}stats:{cluster}"
