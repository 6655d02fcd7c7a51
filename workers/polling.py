"""The polling chain: one per cluster, one batched scheduler query per interval.

The lease key holds ``<token>:<seq>``. Every poll task carries its chain's token
and its step number; running it claims the lease by moving it to ``seq + 1``.
A duplicated or redelivered message (same step) finds the lease moved on and
stops, and so does a chain started by someone else (other token). If the chain
dies with its worker, the lease expires and reconcile starts a new chain.
When a cluster has no active job the chain ends, atomically with that check,
and the next submit starts a new one.
"""

from __future__ import annotations

import logging
import time
import uuid

from celery import Celery

from jobgate.client import routing
from jobgate.client.errors import JobgateError
from jobgate.client.models import JobStatus
from jobgate.client.profiles import ClusterProfile
from jobgate.client.store import JobStore, Observation, StatusUpdate
from jobgate.workers.backends import Backend
from jobgate.workers.finalize import finalize
from jobgate.workers.locks import held
from jobgate.workers.output_tail import keep_output_tails

log = logging.getLogger(__name__)

QUERY_LOCK_S = 120

_CLAIM = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] .. ':' .. ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. (tonumber(ARGV[2]) + 1), 'PX', ARGV[3])
  return 1
end
return 0
"""

_END_IF_IDLE = """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def start_chain(store: JobStore, app: Celery, profile: ClusterProfile) -> bool:
    """Start the cluster's polling chain unless one holds the lease; True if started."""
    token = uuid.uuid4().hex
    lease_ms = int(profile.effective_lease_ttl_s * 1000)
    if not store.redis.set(store.keys.poll_lease(profile.name), f"{token}:0", nx=True, px=lease_ms):
        return False
    app.send_task(
        routing.POLL, args=[profile.name, token, 0], queue=routing.poll_queue(profile.name)
    )
    log.info("started polling chain %s for cluster %s", token, profile.name)
    return True


def claim_step(store: JobStore, profile: ClusterProfile, token: str, seq: int) -> bool:
    """Claim step `seq` of chain `token`; False means this message must stop."""
    lease_ms = int(profile.effective_lease_ttl_s * 1000)
    claimed = store.redis.eval(_CLAIM, 1, store.keys.poll_lease(profile.name), token, seq, lease_ms)
    return bool(claimed)


def end_if_idle(store: JobStore, cluster: str, token: str, next_seq: int) -> bool:
    """End the chain if the cluster has no active job (atomic with that check)."""
    ended = store.redis.eval(
        _END_IF_IDLE,
        2,
        store.keys.poll_lease(cluster),
        store.keys.active(cluster),
        f"{token}:{next_seq}",
    )
    return bool(ended)


def refresh(
    store: JobStore,
    app: Celery,
    backend: Backend,
    profile: ClusterProfile,
    *,
    max_age_s: float | None = None,
) -> int:
    """Query the scheduler once for all active jobs of the cluster and apply every change.

    Skipped when another query of this cluster is under way, or when the last one
    is younger than `max_age_s`. Returns the number of jobs queried.
    """
    cluster = profile.name
    if max_age_s is not None:
        last = store.query_stats(cluster).get("last_query_at", 0.0)
        if time.time() - last < max_age_s:
            return 0
    with held(store.redis, store.keys.query_lock(cluster), QUERY_LOCK_S) as taken:
        active = store.active(cluster) if taken else {}
        if not active:
            return 0
        observed_at = time.time()
        observations = backend.query(active)
        store.count_query(cluster, len(active), observed_at)
        observations.update(_lost(store, profile, observations, observed_at))
        updates = [StatusUpdate(job_id, seen) for job_id, seen in observations.items()]
        outcomes = store.transition_many(
            updates, observed_at=observed_at, retention_s=profile.retention_s
        )
    if any(o.outcome in ("applied", "updated") for o in outcomes):
        store.mark_change(cluster, observed_at)
    applied = [u for u, o in zip(updates, outcomes, strict=True) if o.applied]
    finished = {u.job_id: active[u.job_id] for u in applied if u.seen.status.is_finished}
    keep_output_tails(store, backend, profile, finished)  # before a cancel deletes the output
    to_stop = {u.job_id: active[u.job_id] for u in applied if u.seen.stop_on_scheduler}
    if to_stop:
        backend.cancel(to_stop)
    for update in applied:
        if update.seen.status.is_finished:
            finalize(store, app, update.job_id, profile)
    return len(active)


def _lost(
    store: JobStore, profile: ClusterProfile, seen: dict[str, Observation], now: float
) -> dict[str, Observation]:
    """Jobs UNKNOWN to the backend for longer than the profile's grace: FAILED, lost."""
    unknown = [job_id for job_id, o in seen.items() if o.status is JobStatus.UNKNOWN]
    lost = {}
    for record in filter(None, store.get_many(unknown)):
        since = record.history[-1].at.timestamp() if record.history else now
        if record.status is JobStatus.UNKNOWN and now - since > profile.lost_grace_s:
            why = seen[record.id].reason or "the scheduler does not know it"
            lost[record.id] = Observation(JobStatus.FAILED, reason=f"lost: {why}")
    return lost


def poll_step(
    store: JobStore, app: Celery, backend: Backend, profile: ClusterProfile, token: str, seq: int
) -> str:
    """One step of the chain: claim, refresh, then continue or end. Returns what it did."""
    outcome = _step(store, app, backend, profile, token, seq)
    store.count_poll(profile.name, outcome)
    return outcome


def _step(
    store: JobStore, app: Celery, backend: Backend, profile: ClusterProfile, token: str, seq: int
) -> str:
    if not claim_step(store, profile, token, seq):
        return "superseded"
    started = time.monotonic()
    try:
        refresh(store, app, backend, profile)
    except JobgateError as e:
        log.warning("poll of cluster %s failed; the chain goes on: %s", profile.name, e)
    except Exception:  # the chain must outlive any one failed query
        log.exception("poll of cluster %s failed; the chain goes on", profile.name)
    if end_if_idle(store, profile.name, token, seq + 1):
        log.info("polling chain %s for cluster %s ended: no active jobs", token, profile.name)
        return "ended"
    # The next step is due one interval after this one began, however long the query took.
    elapsed = time.monotonic() - started
    quiet_s = time.time() - store.query_stats(profile.name).get("last_change_at", 0.0)
    app.send_task(
        routing.POLL,
        args=[profile.name, token, seq + 1],
        queue=routing.poll_queue(profile.name),
        countdown=max(0.0, poll_interval_s(profile, quiet_s) - elapsed),
    )
    return "continued"


def poll_interval_s(profile: ClusterProfile, quiet_s: float) -> float:
    """The polling cadence after `quiet_s` seconds without a change in the cluster's jobs:
    the shortest interval while things change, stretching to the longest after a quiet
    spell of four longest intervals."""
    low, high = profile.poll_interval_min_s, profile.poll_interval_max_s
    return min(high, max(low, quiet_s / 4))
