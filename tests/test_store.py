"""The Redis job store, against a real redis-server: transitions, indexes, events, retention."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from jobgate.client import Gateway, ids
from jobgate.client import store as store_module
from jobgate.client.files import OutputsReport
from jobgate.client.models import (
    ElementState,
    JobQuery,
    JobRecord,
    JobStatus,
    Observation,
    StatusUpdate,
)
from jobgate.client.store import JobStore
from tests.support.records import RETENTION_S, make_record, move


@pytest.fixture
def store(gateway: Gateway) -> JobStore:
    return gateway.store


def test_record_round_trips(store: JobStore) -> None:
    record = make_record(store, tags=("exp1", "a"))
    assert store.get(record.id) == record


def test_transitions_follow_the_rules(store: JobStore) -> None:
    job = make_record(store).id
    t0 = time.time()
    assert move(store, job, JobStatus.PENDING, t0, backend_id="b1") == "applied"
    assert move(store, job, JobStatus.PENDING, t0 + 1, backend_id="b1") == "same"
    assert move(store, job, JobStatus.RUNNING, t0 + 2) == "applied"
    assert move(store, job, JobStatus.PENDING, t0 + 1.5) == "stale"  # older observation
    assert (
        move(store, job, JobStatus.FAILED, t0 + 3, exit_code=3, reason="exit code 3") == "applied"
    )
    assert move(store, job, JobStatus.RUNNING, t0 + 4) == "finished"  # late poll
    assert move(store, job, JobStatus.SUCCEEDED, t0 + 5) == "finished"

    record = store.get(job)
    assert record.status is JobStatus.FAILED
    assert (record.exit_code, record.reason, record.backend_id) == (3, "exit code 3", "b1")
    assert [h.status for h in record.history] == [
        JobStatus.NEW,
        JobStatus.PENDING,
        JobStatus.RUNNING,
        JobStatus.FAILED,
    ]
    assert [h.exit_code for h in record.history][-1] == 3


def test_an_update_bound_to_a_status_applies_only_in_it(store: JobStore) -> None:
    job = make_record(store).id
    pending = Observation(JobStatus.PENDING)
    first = store.transition(
        StatusUpdate(job, pending, backend_id="b", only_from=JobStatus.NEW),
        observed_at=time.time(),
        retention_s=RETENTION_S,
    )
    assert first.outcome == "applied"
    move(store, job, JobStatus.RUNNING)
    late = store.transition(
        StatusUpdate(job, pending, backend_id="b", only_from=JobStatus.NEW),
        observed_at=time.time() + 1,
        retention_s=RETENTION_S,
    )
    assert (late.outcome, late.previous) == ("moved on", JobStatus.RUNNING)
    assert statuses_of(store, job) == ["NEW", "PENDING", "RUNNING"]


def statuses_of(store: JobStore, job_id: str) -> list[str]:
    return [h.status.value for h in store.get(job_id).history]


def test_active_map_and_finalize_set_follow_transitions(store: JobStore) -> None:
    job = make_record(store).id
    move(store, job, JobStatus.PENDING, backend_id="b7")
    assert store.active("c1") == {job: "b7"}
    assert store.pending_finalization() == []
    move(store, job, JobStatus.SUCCEEDED, exit_code=0)
    assert store.active("c1") == {}
    assert store.pending_finalization() == [job]
    store.mark_finalized(job)
    assert store.pending_finalization() == []


def test_element_details_update_without_a_status_change(store: JobStore) -> None:
    job = make_record(store).id
    move(store, job, JobStatus.RUNNING, backend_id="b")
    elements = [
        ElementState(index=0, status=JobStatus.SUCCEEDED, exit_code=0),
        ElementState(index=1, status=JobStatus.RUNNING),
    ]
    assert move(store, job, JobStatus.RUNNING, elements=elements) == "updated"
    assert move(store, job, JobStatus.RUNNING, elements=elements) == "same"
    assert store.get(job).elements == elements
    assert len(store.get(job).history) == 2


def test_every_transition_is_an_event_on_stream_and_channel(store: JobStore) -> None:
    job = make_record(store).id
    pubsub = store.redis.pubsub()
    pubsub.subscribe(store.keys.channel)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    start = store.last_event_id(job)
    move(store, job, JobStatus.PENDING, backend_id="b")
    move(store, job, JobStatus.RUNNING)
    events = store.read_events(job, start, block_ms=1000)
    assert [e["status"] for _, e in events] == ["PENDING", "RUNNING"]
    published = [json.loads(pubsub.get_message(timeout=2)["data"]) for _ in range(2)]  # type: ignore[index]
    assert [(p["id"], p["status"]) for p in published] == [(job, "PENDING"), (job, "RUNNING")]
    pubsub.close()


def test_event_read_blocks_until_a_transition(store: JobStore) -> None:
    job = make_record(store).id
    start = store.last_event_id(job)
    assert store.read_events(job, start, block_ms=50) == []


def test_a_retired_job_answers_events_from_its_history_and_a_late_report_adds_no_stream(
    store: JobStore,
) -> None:
    job = make_record(store).id
    move(store, job, JobStatus.RUNNING, backend_id="b")
    move(store, job, JobStatus.FAILED, exit_code=2, reason="exit code 2")
    streamed = store.read_events(job, "0", block_ms=1000)
    store.retire([job])
    assert not store.redis.exists(store.keys.events(job), store.keys.secrets(job))
    assert job not in store.pending_finalization()

    store.record_outputs(job, OutputsReport(complete=False, reason="S3 down"))
    assert not store.redis.exists(store.keys.events(job))
    assert store.get(job).outputs == OutputsReport(complete=False, reason="S3 down")
    from_history = store.read_events(job, "0", block_ms=1000)
    assert [e for _, e in from_history] == [e for _, e in streamed]
    assert [event_id for event_id, _ in from_history] == ["0-1", "0-2", "0-3"]
    assert store.read_events(job, "0-2", block_ms=1000) == from_history[2:]
    assert store.read_events(job, streamed[-1][0], block_ms=1000) == []


def _commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name: int(v["calls"]) for name, v in stats.items()}  # type: ignore[union-attr]


def test_list_filters_and_paginates_through_indexes(store: JobStore) -> None:
    base = time.time() - 1000
    made: list[JobRecord] = []
    rng = random.Random(7)
    for i in range(120):
        made.append(
            make_record(
                store,
                created_s=base + i,
                cluster=rng.choice(["c1", "c2"]),
                owner=rng.choice(["ann", "bob"]),
                name=rng.choice(["fit", "plot"]),
                tags=tuple(rng.sample(["exp1", "exp2", "big"], rng.randint(0, 2))),
            )
        )
    for r in made[::3]:
        move(store, r.id, JobStatus.RUNNING, backend_id="b")
    for r in made[::5]:
        move(store, r.id, JobStatus.FAILED, exit_code=1)
    current = {r.id: store.get(r.id) for r in made}
    before = _commandstats(store.redis)

    def expect(pred: object, reverse: bool = False) -> list[str]:
        assert callable(pred)
        chosen = [r.id for r in made if pred(current[r.id])]
        return chosen[::-1] if reverse else chosen

    assert [r.id for r in store.list_records(JobQuery(limit=500))] == expect(lambda r: True)
    running = {JobStatus.RUNNING}
    assert [
        r.id for r in store.list_records(JobQuery(statuses=running, cluster="c1", limit=500))
    ] == expect(lambda r: r.status is JobStatus.RUNNING and r.cluster == "c1")
    two = {JobStatus.RUNNING, JobStatus.FAILED}
    assert store.list_ids(JobQuery(statuses=two, owner="bob", reverse=True, limit=500)) == expect(
        lambda r: r.status in two and r.owner == "bob", reverse=True
    )
    assert store.list_ids(JobQuery(tags={"exp1", "big"}, limit=500)) == expect(
        lambda r: {"exp1", "big"} <= set(r.tags)
    )
    assert store.list_ids(JobQuery(name="plot", cluster="c2", limit=500)) == expect(
        lambda r: r.name == "plot" and r.cluster == "c2"
    )
    since = ids.created_at(made[40].id)
    until = ids.created_at(made[59].id)
    assert store.list_ids(JobQuery(since=since, until=until, limit=500)) == [
        r.id for r in made[40:60]
    ]
    assert store.list_ids(JobQuery(statuses=set(), limit=10)) == []

    pages: list[str] = []
    after = None
    while True:
        page = store.list_ids(JobQuery(cluster="c1", limit=7, after=after, reverse=True))
        if not page:
            break
        pages += page
        after = page[-1]
    assert pages == expect(lambda r: r.cluster == "c1", reverse=True)

    after_stats = _commandstats(store.redis)
    for command in ("cmdstat_keys", "cmdstat_scan"):
        assert after_stats.get(command, 0) == before.get(command, 0), f"{command} was used"


def test_list_continues_when_the_scan_budget_runs_out(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = [make_record(store, owner="ann" if i % 10 == 0 else "bob") for i in range(60)]
    monkeypatch.setattr(store_module, "LIST_BUDGET", 4)
    ann = store.list_ids(
        JobQuery(owner="ann", statuses={JobStatus.NEW, JobStatus.RUNNING}, limit=100)
    )
    assert ann == [r.id for r in made if r.owner == "ann"]


def test_purge_removes_records_past_retention_with_their_index_entries(store: JobStore) -> None:
    old = make_record(store, tags=("t",))
    kept = make_record(store, tags=("t",))
    now, done = time.time(), Observation(JobStatus.SUCCEEDED)
    store.transition(StatusUpdate(old.id, done), observed_at=now - 100, retention_s=60)
    store.transition(StatusUpdate(kept.id, done), observed_at=now, retention_s=60)
    assert store.purge_expired(now) == 1
    assert store.get_many([old.id, kept.id])[0] is None
    assert store.list_ids(JobQuery(tags={"t"})) == [kept.id]
    assert store.list_ids(JobQuery(statuses={JobStatus.SUCCEEDED})) == [kept.id]
    k = store.keys
    for index in (
        k.index_all,
        k.index_cluster("c1"),
        k.index_owner("ann"),
        k.index_name("job"),
        k.index_status(JobStatus.SUCCEEDED),
        k.index_tag("t"),
        k.expiry,
    ):
        assert store.redis.zscore(index, old.id) is None, index
        assert store.redis.zscore(index, kept.id) is not None, index
    assert not store.redis.exists(store.keys.history(old.id), store.keys.events(old.id))


def test_since_and_until_are_inclusive(store: JobStore) -> None:
    record = make_record(store, created_s=1_800_000_000.123)
    at = ids.created_at(record.id)
    assert store.list_ids(JobQuery(since=at, until=at)) == [record.id]
    assert store.list_ids(JobQuery(since=at + timedelta(milliseconds=1))) == []
    assert store.list_ids(JobQuery(until=at - timedelta(milliseconds=1))) == []
    assert at == datetime.fromtimestamp(1_800_000_000.123, tz=UTC).replace(microsecond=123000)
