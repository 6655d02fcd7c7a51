"""The rules of the gateway's core, in-process: submission, the polling chain, lost jobs,
finalization and reconcile, against a real Redis (and a real Celery app on it) with a
scripted backend instead of a scheduler. Tasks a step sends are read back from the real
broker queue and run here, one by one, as a worker would run them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.result import AsyncResult

from jobgate.client import Gateway, JobRecord, JobSpec, JobStatus, routing
from jobgate.client.celeryconf import make_celery
from jobgate.client.clusters import publish_worker
from jobgate.client.errors import SchedulerUnavailableError
from jobgate.client.models import Observation, StatusUpdate
from jobgate.client.profile_schema import profile_from_data
from jobgate.workers import reconcile, submission
from jobgate.workers.context import ClusterContext
from jobgate.workers.polling import PollOutcome, poll_step, refresh, start_chain
from jobgate.workers.submission import SubmitOutcome
from tests.support.broker import queued_tasks
from tests.support.records import make_record
from tests.support.scripted_backend import ScriptedBackend

CLUSTER = "c1"
LEASE_S = 30


@pytest.fixture
def ctx(gateway: Gateway) -> Iterator[ClusterContext]:
    """Cluster c1 as a worker serves it, with a scripted backend; the gateway sees it served."""
    profile = profile_from_data({
        "name": CLUSTER, "backend": "slurm", "lease_ttl_s": LEASE_S, "lost_grace_s": 3600,
        "resubmit_after_s": 60, "poll_interval_min_s": 1, "poll_interval_max_s": 1,
        "policy": {"warn_missing_walltime": False, "max_cpus": 4},
    })  # fmt: skip
    app = make_celery(gateway.url, gateway.tenant)
    publish_worker(gateway.coordination, "test-worker", [profile], ttl_s=600)
    yield ClusterContext(
        profile, ScriptedBackend(profile), gateway.store, gateway.coordination, app
    )
    app.close()


def scripted(ctx: ClusterContext) -> ScriptedBackend:
    assert isinstance(ctx.backend, ScriptedBackend)
    return ctx.backend


def with_profile(ctx: ClusterContext, **settings: Any) -> ClusterContext:
    """The same cluster under a profile with other settings."""
    return dataclasses.replace(ctx, profile=ctx.profile.model_copy(update=settings))


def submitted(gateway: Gateway, ctx: ClusterContext, **spec: Any) -> JobRecord:
    """A job through the client, then its submit task run here."""
    job = gateway.submit(JobSpec(name="j", command="true", **spec), cluster=CLUSTER)
    assert submission.submit_job(ctx, job.id) is SubmitOutcome.SUBMITTED
    return gateway.store.get(job.id)


def poll_messages(ctx: ClusterContext) -> list[tuple[str, int]]:
    """(token, step) of the poll tasks waiting in the cluster's poll queue."""
    tasks = queued_tasks(ctx.store, routing.poll_queue(CLUSTER))
    assert {t.name for t in tasks} <= {routing.POLL}
    return [(t.args[1], t.args[2]) for t in tasks]


def run_chain_step(ctx: ClusterContext) -> PollOutcome:
    """Take the newest poll message off the queue and run it, as a worker would."""
    token, seq = poll_messages(ctx)[-1]
    return poll_step(ctx, token, seq)


# -- submission ------------------------------------------------------------------------


def test_a_submit_delivered_twice_submits_once_and_starts_one_chain(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    job = gateway.submit(JobSpec(name="j", command="true"), cluster=CLUSTER)
    assert submission.submit_job(ctx, job.id) is SubmitOutcome.SUBMITTED
    assert submission.submit_job(ctx, job.id) is SubmitOutcome.ALREADY_SUBMITTED
    assert scripted(ctx).calls_of("submit") == [(job.id,)]
    record = gateway.store.get(job.id)
    assert (record.status, record.backend_id) == (JobStatus.PENDING, f"b-{job.id}")
    (chain,) = poll_messages(ctx)
    assert chain[1] == 0


def test_a_submit_finding_the_lock_of_a_dead_holder_waits_for_it_and_submits(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    """The lock as a holder killed mid-submit leaves it (taken, no longer renewed): the
    next delivery waits until it expires instead of giving the job up."""
    job = gateway.submit(JobSpec(name="j", command="true"), cluster=CLUSTER)
    gateway.store.redis.set(gateway.keys.submit_lock(job.id), "dead-holder", px=500)
    assert submission.submit_job(ctx, job.id) is SubmitOutcome.SUBMITTED
    assert scripted(ctx).calls_of("submit") == [(job.id,)]


def test_a_submit_lock_outlives_its_ttl_while_its_holder_works(gateway: Gateway) -> None:
    coordination, ttl_s = gateway.coordination, 0.3
    with coordination.submit_lock("j1", ttl_s, wait_s=0) as taken:
        assert taken
        time.sleep(3 * ttl_s)  # a submit three times slower than the lock's ttl
        with coordination.submit_lock("j1", ttl_s, wait_s=0) as second:
            assert not second
    with coordination.submit_lock("j1", ttl_s, wait_s=0) as after:
        assert after


def test_the_backend_is_told_who_submitted_the_job_and_for_which_tenant(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    record = submitted(gateway, ctx)
    (job,) = scripted(ctx).submissions
    assert (job.job_id, job.owner, job.tenant) == (record.id, "tester", gateway.tenant)
    assert "JOBGATE_OWNER" not in job.spec.env  # the owner travels on its own


def test_the_workers_policy_blocks_what_the_client_let_through(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    job = gateway.submit(JobSpec(name="big", command="true", resources={"cpus": 2}), CLUSTER)
    strict = with_profile(ctx, policy=ctx.profile.policy.model_copy(update={"max_cpus": 1}))
    assert submission.submit_job(strict, job.id) is SubmitOutcome.POLICY_BLOCKED
    record = gateway.store.get(job.id)
    assert (record.status, record.reason) == (JobStatus.FAILED, "policy blocked")
    assert [f.code for f in record.findings] == ["cpus-over-max"]
    assert scripted(ctx).calls_of("submit") == []
    final = AsyncResult(record.result_id, app=ctx.app).get(timeout=10)
    assert final["status"] == "FAILED"


def test_a_failed_dependency_fails_the_job_without_submitting_it(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    first = submitted(gateway, ctx)
    ctx.settle(StatusUpdate(first.id, Observation(JobStatus.FAILED, reason="exit code 1")))
    job = gateway.submit(JobSpec(name="then", command="true", depends_on=[first.id]), CLUSTER)
    assert submission.submit_job(ctx, job.id) is SubmitOutcome.DEPENDENCY_FAILED
    record = gateway.store.get(job.id)
    assert (record.status, record.reason) == (JobStatus.FAILED, "dependency failed")
    assert scripted(ctx).calls_of("submit") == [(first.id,)]


def test_a_job_cancelled_while_it_was_being_submitted_is_stopped_on_the_scheduler(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    job = gateway.submit(JobSpec(name="j", command="true"), cluster=CLUSTER)
    cancelled = StatusUpdate(job.id, Observation(JobStatus.CANCELLED, reason="cancelled by user"))
    # The cancel task runs while the scheduler is taking the job.
    scripted(ctx).on_submit = lambda: ctx.settle(cancelled)
    assert submission.submit_job(ctx, job.id) is SubmitOutcome.CANCELLED
    assert scripted(ctx).calls_of("cancel") == [((job.id, f"b-{job.id}"),)]
    record = gateway.store.get(job.id)
    assert (record.status, record.backend_id) == (JobStatus.CANCELLED, f"b-{job.id}")


# -- the polling chain -------------------------------------------------------------------


def test_a_second_chain_is_refused_while_the_lease_is_held(ctx: ClusterContext) -> None:
    assert start_chain(ctx) is True
    assert start_chain(ctx) is False
    assert len(poll_messages(ctx)) == 1


def test_a_redelivered_step_and_another_chains_step_are_superseded(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    submitted(gateway, ctx)
    ((token, seq),) = poll_messages(ctx)
    assert poll_step(ctx, token, seq) is PollOutcome.CONTINUED
    assert poll_step(ctx, token, seq) is PollOutcome.SUPERSEDED  # the same message again
    assert poll_step(ctx, "another-chain", seq + 1) is PollOutcome.SUPERSEDED
    assert poll_messages(ctx)[-1] == (token, seq + 1)  # only the live step queued its next
    assert run_chain_step(ctx) is PollOutcome.CONTINUED
    stats = gateway.store.query_stats(CLUSTER)
    assert (stats["polls_continued"], stats["polls_superseded"]) == (2, 2)


def test_a_chain_whose_lease_expired_is_replaced_by_a_new_one(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    submitted(gateway, ctx)
    ((dead, _),) = poll_messages(ctx)
    gateway.store.redis.delete(gateway.keys.poll_lease(CLUSTER))  # as when the lease expires
    report = reconcile.reconcile(ctx)
    assert report.chain_started
    tokens = {token for token, _ in poll_messages(ctx)}
    (fresh,) = tokens - {dead}
    assert poll_step(ctx, fresh, 0) is PollOutcome.CONTINUED
    assert poll_step(ctx, dead, 0) is PollOutcome.SUPERSEDED


def test_one_query_per_step_for_every_active_job(gateway: Gateway, ctx: ClusterContext) -> None:
    jobs = [submitted(gateway, ctx) for _ in range(5)]
    assert run_chain_step(ctx) is PollOutcome.CONTINUED
    (queried,) = scripted(ctx).calls_of("query")
    assert queried == (tuple(sorted(j.id for j in jobs)),)
    assert gateway.store.query_stats(CLUSTER)["jobs_queried"] == 5


def test_the_chain_ends_when_nothing_is_active_and_the_next_submit_starts_another(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    job = submitted(gateway, ctx)
    scripted(ctx).show(job.backend_id, Observation(JobStatus.RUNNING))
    assert run_chain_step(ctx) is PollOutcome.CONTINUED
    scripted(ctx).show(job.backend_id, Observation(JobStatus.SUCCEEDED, exit_code=0))
    ended = poll_messages(ctx)
    assert run_chain_step(ctx) is PollOutcome.ENDED
    assert poll_messages(ctx) == ended  # no next step was queued
    assert gateway.store.redis.get(gateway.keys.poll_lease(CLUSTER)) is None
    submitted(gateway, ctx)
    assert len({token for token, _ in poll_messages(ctx)}) == 2  # a new chain


def test_a_failing_query_leaves_the_jobs_and_the_chain_alone(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    job = submitted(gateway, ctx)
    scripted(ctx).fail_queries = SchedulerUnavailableError("squeue timed out")
    assert run_chain_step(ctx) is PollOutcome.CONTINUED
    assert gateway.store.get(job.id).status is JobStatus.PENDING
    scripted(ctx).fail_queries = None
    scripted(ctx).show(job.backend_id, Observation(JobStatus.RUNNING))
    assert run_chain_step(ctx) is PollOutcome.CONTINUED
    assert gateway.store.get(job.id).status is JobStatus.RUNNING


def test_a_job_the_scheduler_should_stop_is_cancelled_there_once_recorded(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    job = submitted(gateway, ctx)
    stop = Observation(JobStatus.FAILED, reason="dependency failed", stop_on_scheduler=True)
    scripted(ctx).show(job.backend_id, stop)
    refresh(ctx)
    assert scripted(ctx).calls_of("cancel") == [((job.id, job.backend_id),)]
    assert gateway.store.get(job.id).reason == "dependency failed"
    refresh(ctx)  # finished: no longer queried, not cancelled again
    assert len(scripted(ctx).calls_of("cancel")) == 1


# -- lost jobs ----------------------------------------------------------------------------


def test_a_job_the_scheduler_does_not_know_is_unknown_until_the_grace_then_lost(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    job = submitted(gateway, ctx)
    unknown = Observation(JobStatus.UNKNOWN, reason="not in squeue or sacct")
    scripted(ctx).show(job.backend_id, unknown)
    refresh(ctx)
    refresh(ctx)
    assert gateway.store.get(job.id).status is JobStatus.UNKNOWN  # within the hour of grace
    refresh(with_profile(ctx, lost_grace_s=0))
    record = gateway.store.get(job.id)
    assert (record.status, record.reason) == (JobStatus.FAILED, "lost: not in squeue or sacct")
    assert [h.status for h in record.history][-2:] == [JobStatus.UNKNOWN, JobStatus.FAILED]


def test_a_job_seen_again_within_the_grace_is_not_lost(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    job = submitted(gateway, ctx)
    scripted(ctx).show(job.backend_id, Observation(JobStatus.UNKNOWN))
    refresh(ctx)
    scripted(ctx).show(job.backend_id, Observation(JobStatus.RUNNING))
    refresh(with_profile(ctx, lost_grace_s=0))
    assert gateway.store.get(job.id).status is JobStatus.RUNNING


# -- finalization -------------------------------------------------------------------------


def test_a_finished_job_is_finalized_once_with_its_final_record(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    job = submitted(gateway, ctx)
    scripted(ctx).show(job.backend_id, Observation(JobStatus.SUCCEEDED, exit_code=0))
    refresh(ctx)
    record = gateway.store.get(job.id)
    assert record.status is JobStatus.SUCCEEDED
    final = AsyncResult(record.result_id, app=ctx.app).get(timeout=10)
    assert JobRecord.model_validate(final) == record
    assert gateway.store.pending_finalization() == []
    late = ctx.settle(StatusUpdate(job.id, Observation(JobStatus.FAILED, reason="late")))
    assert late.outcome == "finished"
    assert AsyncResult(record.result_id, app=ctx.app).get(timeout=10)["status"] == "SUCCEEDED"


def test_reconcile_finalizes_what_a_dead_worker_left_unfinalized(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    job = submitted(gateway, ctx)
    # A worker recorded the end and died before it stored the result.
    ctx.record([StatusUpdate(job.id, Observation(JobStatus.SUCCEEDED, exit_code=0))])
    assert gateway.store.pending_finalization() == [job.id]
    assert AsyncResult(job.result_id, app=ctx.app).state == "PENDING"
    assert reconcile.reconcile(ctx).finalized == 1
    assert AsyncResult(job.result_id, app=ctx.app).get(timeout=10)["status"] == "SUCCEEDED"
    assert reconcile.reconcile(ctx).finalized == 0


# -- reconcile of jobs stuck in NEW --------------------------------------------------------


def test_reconcile_adopts_a_job_the_scheduler_has_and_resends_one_it_lacks_once(
    gateway: Gateway, ctx: ClusterContext
) -> None:
    long_ago = time.time() - 2 * max(LEASE_S, ctx.profile.resubmit_after_s)
    orphan = make_record(gateway.store, cluster=CLUSTER, created_s=long_ago)  # sbatch ran
    lost = make_record(gateway.store, cluster=CLUSTER, created_s=long_ago)  # message lost
    fresh = make_record(gateway.store, cluster=CLUSTER)  # its submit may be in flight
    scripted(ctx).submitted[orphan.id] = "b-orphan"
    report = reconcile.reconcile(ctx)
    assert (report.adopted, report.resent) == (1, 1)
    adopted = gateway.store.get(orphan.id)
    assert (adopted.status, adopted.backend_id) == (JobStatus.PENDING, "b-orphan")
    assert adopted.history[-1].reason == "adopted by reconcile"
    resent = [t.args for t in queued_tasks(gateway.store, routing.queue(CLUSTER))]
    assert [lost.id, CLUSTER] in resent  # with its cluster, as clients send it
    assert all(fresh.id not in args for args in resent)
    assert gateway.store.get(fresh.id).status is JobStatus.NEW
    assert reconcile.reconcile(ctx).resent == 0  # re-sent once per resubmit_after_s
