"""The polling chain: one per cluster, one batched scheduler query per interval.

The lease holds ``<token>:<seq>``. Every poll task carries its chain's token
and its step number; running it claims the lease by moving it to ``seq + 1``.
A duplicated or redelivered message (same step) finds the lease moved on and
stops, and so does a chain started by someone else (other token). If the chain
dies with its worker, the lease expires and reconcile starts a new chain.
When a cluster has no active job the chain ends, atomically with that check,
and the next submit starts a new one. A step renews its lease while it runs, so one
held up by a slow scheduler (a command hung until its timeout) is not taken for
dead. (The lease lives in client/coordination.py.)
"""

from __future__ import annotations

import logging
import time
import uuid
from enum import StrEnum

from jobgate.client import routing
from jobgate.client.errors import JobgateError
from jobgate.client.models import JobStatus, Observation, StatusUpdate
from jobgate.client.profile_schema import ClusterProfile
from jobgate.client.store import observation_digest
from jobgate.workers.context import ClusterContext
from jobgate.workers.output_tail import keep_output_tails

log = logging.getLogger(__name__)

#: The query lock's time to live: renewed by its holder while it queries, so a pool
#: child killed mid-query stops the cluster's polling for this long at most.
QUERY_LOCK_S = 10.0


class PollOutcome(StrEnum):
    """What one step of a polling chain did."""

    CONTINUED = "continued"  # queried, and queued the next step
    ENDED = "ended"  # no active job left: the chain ended
    SUPERSEDED = "superseded"  # a duplicate, a redelivery or another chain's: stopped


def start_chain(ctx: ClusterContext) -> bool:
    """Start the cluster's polling chain unless one holds the lease; True if started."""
    token = uuid.uuid4().hex
    if not ctx.coordination.open_chain(ctx.name, token, ctx.profile.effective_lease_ttl_s):
        return False
    ctx.send(routing.POLL, ctx.name, token, 0, poll_queue=True)
    log.info("started polling chain %s for cluster %s", token, ctx.name)
    return True


def refresh(ctx: ClusterContext, *, max_age_s: float | None = None) -> int:
    """Query the scheduler once for all active jobs of the cluster and apply every change.

    Skipped when another query of this cluster is under way, or when the last one
    is younger than `max_age_s`. Returns the number of jobs queried.
    """
    store, cluster = ctx.store, ctx.name
    if max_age_s is not None:
        last = store.query_stats(cluster).get("last_query_at", 0.0)
        if store.now() - last < max_age_s:
            return 0
    with ctx.coordination.query_lock(cluster, QUERY_LOCK_S) as taken:
        active = store.active(cluster) if taken else {}
        if not active:
            return 0
        observed_at = store.now()  # Redis's clock orders observations of every worker
        observations = ctx.backend.query(active)
        store.count_query(cluster, len(active), observed_at)
        observations.update(_lost(ctx, observations, observed_at))
        # What equals the last observation recorded would change nothing: left unsent, so a
        # step at 10,000 quiet jobs costs one query, not 10,000 transitions. (Its record's
        # observed_at stays older; queries of a cluster are serialized by the query lock.)
        recorded = store.seen(cluster)
        updates = [
            StatusUpdate(job_id, seen)
            for job_id, seen in observations.items()
            if recorded.get(job_id) != observation_digest(seen)
        ]
        outcomes = ctx.record(updates, observed_at=observed_at) if updates else []
    if any(o.changed for o in outcomes):
        store.mark_change(cluster, observed_at)
    applied = [u for u, o in zip(updates, outcomes, strict=True) if o.applied]
    finished = {u.job_id: active[u.job_id] for u in applied if u.seen.status.is_finished}
    keep_output_tails(ctx, finished)  # before a cancel deletes the output
    to_stop = {u.job_id: active[u.job_id] for u in applied if u.seen.stop_on_scheduler}
    if to_stop:
        ctx.backend.cancel(to_stop)
    if finished:
        ctx.finalize_many(list(finished))
    return len(active)


def _lost(ctx: ClusterContext, seen: dict[str, Observation], now: float) -> dict[str, Observation]:
    """Jobs UNKNOWN to the backend for longer than the profile's grace: FAILED, lost."""
    unknown = [job_id for job_id, o in seen.items() if o.status is JobStatus.UNKNOWN]
    lost = {}
    for record in filter(None, ctx.store.get_many(unknown)):
        since = record.history[-1].at.timestamp() if record.history else now
        if record.status is JobStatus.UNKNOWN and now - since > ctx.profile.lost_grace_s:
            why = seen[record.id].reason or "the scheduler does not know it"
            lost[record.id] = Observation(JobStatus.FAILED, reason=f"lost: {why}")
    return lost


def poll_step(ctx: ClusterContext, token: str, seq: int) -> PollOutcome:
    """One step of the chain: claim, refresh, then continue or end. Returns what it did."""
    outcome = _step(ctx, token, seq)
    ctx.store.count_poll(ctx.name, outcome)
    return outcome


def _step(ctx: ClusterContext, token: str, seq: int) -> PollOutcome:
    cluster, lease_s = ctx.name, ctx.profile.effective_lease_ttl_s
    if not ctx.coordination.claim_step(cluster, token, seq, lease_s):
        return PollOutcome.SUPERSEDED
    started = time.monotonic()
    try:
        with ctx.coordination.step_kept(cluster, token, seq + 1, lease_s):
            refresh(ctx)
    except JobgateError as e:
        log.warning("poll of cluster %s failed; the chain goes on: %s", cluster, e)
    except Exception:  # the chain must outlive any one failed query
        log.exception("poll of cluster %s failed; the chain goes on", cluster)
    if ctx.coordination.end_chain_if_idle(cluster, token, seq + 1):
        log.info("polling chain %s for cluster %s ended: no active jobs", token, cluster)
        return PollOutcome.ENDED
    # The next step is due one interval after this one began, however long the query took.
    elapsed = time.monotonic() - started
    quiet_s = ctx.store.now() - ctx.store.query_stats(cluster).get("last_change_at", 0.0)
    countdown = max(0.0, poll_interval_s(ctx.profile, quiet_s) - elapsed)
    ctx.send(routing.POLL, cluster, token, seq + 1, poll_queue=True, countdown=countdown)
    return PollOutcome.CONTINUED


def poll_interval_s(profile: ClusterProfile, quiet_s: float) -> float:
    """The polling cadence after `quiet_s` seconds without a change in the cluster's jobs:
    the shortest interval while things change, stretching to the longest after a quiet
    spell of four longest intervals."""
    low, high = profile.poll_interval_min_s, profile.poll_interval_max_s
    return min(high, max(low, quiet_s / 4))
