"""The job store in Redis: records, atomic transitions, list indexes and events.

A record is a hash (``job:<id>``) beside its history list and a capped event
stream. Every write that touches more than one key runs as one Lua script, so a
finished job can never be moved back by a late poll, and indexes never disagree
with records. The store, not Celery's result backend, is the source of truth.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import redis

from jobgate.client import ids, lua
from jobgate.client.clock import ServerClock
from jobgate.client.connection import guarded
from jobgate.client.errors import JobNotFoundError
from jobgate.client.files import OutputsReport
from jobgate.client.keys import EVENTS_SUFFIX, HISTORY_SUFFIX, SECRETS_SUFFIX, Keys
from jobgate.client.models import (
    ElementState,
    JobQuery,
    JobRecord,
    JobSpec,
    JobStatus,
    Observation,
    PolicyFinding,
    StatusUpdate,
    Transition,
    TransitionOutcome,
    TransitionResult,
)

EVENT_STREAM_MAXLEN = 64
#: The to-do lists of `schedule`/`due`/`done`.
OUTPUTS_RETRY = "outputs-retry"
WORK_DIR_REMOVAL = "work-dir-removal"
LIST_BUDGET = 5000


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class JobStore:
    """Records of one tenant's jobs in one Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, url: str) -> None:
        """`url` is only used in error messages, with its password masked."""
        #: The raw client: only the store modules (this one and coordination) use it;
        #: tests reach it to look under the hood.
        self.redis = client
        self.keys = keys
        self.url = url
        #: Redis's clock, which every time the store writes or compares is read from.
        self.clock = ServerClock(client)
        self._create = client.register_script(lua.load("create"))
        self._transition = client.register_script(lua.load("transition"))
        self._list = client.register_script(lua.load("list"))
        self._purge = client.register_script(lua.load("purge"))

    def close(self) -> None:
        self.redis.close()

    @guarded
    def now(self) -> float:
        """Now on Redis's clock (epoch seconds): see client/clock.py."""
        return self.clock.now()

    # -- records ---------------------------------------------------------------

    @guarded
    def create(self, record: JobRecord, secrets: Mapping[str, str] | None = None) -> None:
        """Store a new record (state NEW) with its indexes and first event.

        `secrets` (env name -> value) go to a hash of their own, not into the record.
        The spec is stored with only the fields its author set, so that profile
        defaults can still fill the others.
        """
        if not self._create(args=self._create_args(record, secrets)):
            raise ValueError(f"job {record.id} already exists")

    @guarded
    def create_many(self, records: Sequence[tuple[JobRecord, Mapping[str, str]]]) -> None:
        """`create` for many (record, secrets) pairs in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for record, secrets in records:
            self._create(args=self._create_args(record, secrets), client=pipe)
        for (record, _), created in zip(records, pipe.execute(), strict=True):
            if not created:
                raise ValueError(f"job {record.id} already exists")

    def _create_args(self, record: JobRecord, secrets: Mapping[str, str] | None) -> list[str | int]:
        """create.lua's ARGV for one new record."""
        fields = {
            "id": record.id,
            "cluster": record.cluster,
            "owner": record.owner,
            "name": record.name,
            "tags": json.dumps(record.tags),
            "spec": record.spec.model_dump_json(exclude_unset=True),
            "findings": json.dumps([f.model_dump(mode="json") for f in record.findings]),
            "allow_policy_risk": "1" if record.allow_policy_risk else "",
            "result_id": record.result_id,
            "status": record.status.value,
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(),
            "observed_at": "0",
        }
        first = record.history[0]
        k, job_id = self.keys, record.id
        return [
            k.job(job_id),
            k.history(job_id),
            k.events(job_id),
            k.channel,
            k.index_all,
            k.index_cluster(record.cluster),
            k.index_owner(record.owner),
            k.index_name(record.name),
            k.index_status(JobStatus.NEW),
            k.index_prefix("tag"),
            k.secrets(job_id),
            job_id,
            json.dumps(fields),
            json.dumps(record.tags),
            first.model_dump_json(),
            json.dumps(self._event("transition", job_id, record.cluster, first, None)),
            EVENT_STREAM_MAXLEN,
            json.dumps(dict(secrets or {})),
        ]

    @staticmethod
    def _event(
        kind: str, job_id: str, cluster: str, t: Transition, previous: JobStatus | None
    ) -> dict[str, str]:
        return {
            "kind": kind,
            "id": job_id,
            "cluster": cluster,
            "status": t.status.value,
            "previous": previous.value if previous else "",
            "at": t.at.isoformat(),
            "reason": t.reason or "",
            "exit_code": _text(t.exit_code),
        }

    @guarded
    def get(self, job_id: str) -> JobRecord:
        record = self.get_many([job_id])[0]
        if record is None:
            raise JobNotFoundError(f"no job {job_id} in tenant {self.keys.tenant!r}")
        return record

    @guarded
    def cluster_of(self, job_id: str) -> str:
        cluster = self.redis.hget(self.keys.job(job_id), "cluster")
        if cluster is None:
            raise JobNotFoundError(f"no job {job_id} in tenant {self.keys.tenant!r}")
        return str(cluster)

    @guarded
    def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """Records in the order of `job_ids`; None where a record does not exist."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self.keys.job(job_id))
            pipe.lrange(self.keys.history(job_id), 0, -1)
        replies = pipe.execute()
        return [
            self._decode(replies[i], replies[i + 1]) if replies[i] else None
            for i in range(0, len(replies), 2)
        ]

    @staticmethod
    def _decode(fields: dict[str, str], history: list[str]) -> JobRecord:
        def opt(name: str) -> str | None:
            return fields.get(name) or None

        exit_code = opt("exit_code")
        elements = opt("elements")
        return JobRecord(
            id=fields["id"],
            cluster=fields["cluster"],
            owner=fields["owner"],
            name=fields["name"],
            tags=json.loads(fields["tags"]),
            spec=JobSpec.model_validate_json(fields["spec"]),
            result_id=fields["result_id"],
            status=JobStatus(fields["status"]),
            reason=opt("reason"),
            exit_code=int(exit_code) if exit_code is not None else None,
            backend_id=opt("backend_id"),
            created_at=datetime.fromisoformat(fields["created_at"]),
            updated_at=datetime.fromisoformat(fields["updated_at"]),
            started_at=datetime.fromisoformat(s) if (s := opt("started_at")) else None,
            finished_at=datetime.fromisoformat(s) if (s := opt("finished_at")) else None,
            history=[Transition.model_validate_json(h) for h in history],
            elements=[ElementState.model_validate(e) for e in json.loads(elements)]
            if elements
            else [],
            findings=[PolicyFinding.model_validate(f) for f in json.loads(opt("findings") or "[]")],
            allow_policy_risk=bool(opt("allow_policy_risk")),
            policy_override=bool(opt("policy_override")),
            outputs=OutputsReport.model_validate_json(o) if (o := opt("outputs")) else None,
        )

    # -- transitions -------------------------------------------------------------

    @guarded
    def transition(
        self, update: StatusUpdate, *, observed_at: float, retention_s: float
    ) -> TransitionOutcome:
        """Apply one observed status atomically; see lua/transition.lua for the rules.

        `observed_at` is when the backend state was read (epoch seconds): an
        observation older than the last one applied is ignored as stale.
        """
        return self.transition_many([update], observed_at=observed_at, retention_s=retention_s)[0]

    @guarded
    def transition_many(
        self, updates: Sequence[StatusUpdate], *, observed_at: float, retention_s: float
    ) -> list[TransitionOutcome]:
        """`transition` for many jobs in one round trip (each one still atomic)."""
        now = self.clock.utcnow()
        if len(updates) == 1:
            # Straight EVALSHA: a pipeline asks SCRIPT EXISTS first, a round trip more.
            replies = [self._transition(args=self._transition_args(updates[0], now, observed_at,
                                                                   retention_s))]  # fmt: skip
        else:
            pipe = self.redis.pipeline(transaction=False)
            for u in updates:
                self._transition(
                    args=self._transition_args(u, now, observed_at, retention_s), client=pipe
                )
            replies = pipe.execute()
        return [
            TransitionOutcome(TransitionResult(outcome), JobStatus(previous) if previous else None)
            for outcome, previous in replies
        ]

    def _transition_args(
        self, u: StatusUpdate, now: datetime, observed_at: float, retention_s: float
    ) -> list[str | int]:
        """transition.lua's ARGV for one update."""
        k, seen = self.keys, u.seen
        entry = Transition(status=seen.status, at=now, reason=seen.reason, exit_code=seen.exit_code)
        return [
            k.job(u.job_id),
            k.history(u.job_id),
            k.events(u.job_id),
            k.channel,
            k.index_prefix("status"),
            k.active_prefix,
            k.finalize_pending,
            k.expiry,
            u.job_id,
            seen.status.value,
            repr(observed_at),
            now.isoformat(),
            seen.reason or "",
            _text(seen.exit_code),
            u.backend_id or "",
            _text(seen.started_at),
            _text(seen.finished_at),
            json.dumps([e.model_dump(mode="json") for e in seen.elements]) if seen.elements else "",
            entry.model_dump_json(),
            int(retention_s),
            EVENT_STREAM_MAXLEN,
            u.only_from.value if u.only_from else "",
            k.seen_prefix,
            observation_digest(seen),
        ]

    @guarded
    def record_policy(
        self, job_id: str, findings: Sequence[PolicyFinding], *, override: bool
    ) -> None:
        """Store what the worker's policy check found, and whether BLOCKs were overridden."""
        self.redis.hset(
            self.keys.job(job_id),
            mapping={
                "findings": json.dumps([f.model_dump(mode="json") for f in findings]),
                "policy_override": "1" if override else "",
            },
        )

    @guarded
    def record_outputs(self, job_id: str, report: OutputsReport) -> None:
        """Store what became of a finished job's outputs, and wake whoever waits on it."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(k.job(job_id), "outputs", report.model_dump_json())
        event = {"kind": "outputs", "id": job_id, "complete": "1" if report.complete else ""}
        pipe.xadd(
            k.events(job_id),
            {"event": json.dumps(event)},
            maxlen=EVENT_STREAM_MAXLEN,
            approximate=True,
            nomkstream=True,  # a retry after finalize dropped the stream wakes no one
        )
        pipe.execute()

    @guarded
    def schedule(self, kind: str, cluster: str, job_id: str, at_s: float) -> None:
        """Put a job on one of a cluster's to-do lists ("outputs-retry", "work-dir-removal")."""
        self.redis.zadd(self._todo(kind, cluster), {job_id: at_s})

    @guarded
    def due(self, kind: str, cluster: str, now_s: float, limit: int = 100) -> list[str]:
        """Jobs of a to-do list whose time has come, soonest first."""
        due: list[str] = self.redis.zrangebyscore(
            self._todo(kind, cluster), "-inf", now_s, start=0, num=limit
        )  # type: ignore[assignment]
        return due

    @guarded
    def done(self, kind: str, cluster: str, job_id: str) -> None:
        self.redis.zrem(self._todo(kind, cluster), job_id)

    def _todo(self, kind: str, cluster: str) -> str:
        if kind == OUTPUTS_RETRY:
            return self.keys.outputs_retry(cluster)
        if kind == WORK_DIR_REMOVAL:
            return self.keys.work_dir_removal(cluster)
        raise ValueError(f"no to-do list {kind!r}")

    @guarded
    def job_secrets(self, job_id: str) -> dict[str, str]:
        """The job's secret env values (empty once the job is finalized)."""
        return self.redis.hgetall(self.keys.secrets(job_id))  # type: ignore[return-value]

    @guarded
    def save_output_tail(self, job_id: str, text: str, ttl_s: float) -> None:
        """Keep the end of a finished job's output (expires with the record's retention)."""
        self.redis.set(self.keys.output_tail(job_id), text, ex=max(1, int(ttl_s)))

    @guarded
    def output_tail(self, job_id: str) -> str | None:
        value = self.redis.get(self.keys.output_tail(job_id))
        return None if value is None else str(value)

    @guarded
    def ping(self) -> None:
        """Nothing, or BrokerUnavailableError when Redis does not answer."""
        self.redis.ping()

    @guarded
    def active(self, cluster: str) -> dict[str, str]:
        """Submitted, unfinished jobs of a cluster: job id -> backend id."""
        return self.redis.hgetall(self.keys.active(cluster))  # type: ignore[return-value]

    @guarded
    def seen(self, cluster: str) -> dict[str, str]:
        """Unfinished jobs of a cluster: job id -> observation_digest() of the last
        observation recorded for it."""
        return self.redis.hgetall(self.keys.seen(cluster))  # type: ignore[return-value]

    # -- listing -------------------------------------------------------------------

    @guarded
    def list_ids(self, query: JobQuery) -> list[str]:
        """Ids matching every filter of `query`, in creation order (newest first if
        `reverse`).

        Runs on the index sorted sets: the smallest matching index drives, the
        others are membership checks. `after` continues after a previous page's
        last id; `since`/`until` bound creation time (inclusive).
        """
        q, k = query, self.keys
        if q.limit <= 0:
            return []
        all_of = [k.index_cluster(q.cluster)] if q.cluster else []
        all_of += [k.index_owner(q.owner)] if q.owner else []
        all_of += [k.index_name(q.name)] if q.name else []
        all_of += [k.index_tag(t) for t in sorted(q.tags or ())]
        any_of = sorted({k.index_status(s) for s in q.statuses}) if q.statuses else []
        if q.statuses is not None and not any_of:
            return []
        drivers = self._pick_drivers(all_of, any_of)
        if drivers == any_of:
            any_of = []
        else:
            all_of = [key for key in all_of if key not in drivers]

        lo = f"[{ids.time_prefix(q.since)}" if q.since else "-"
        hi = f"({ids.time_prefix(q.until + timedelta(milliseconds=1))}" if q.until else "+"
        if q.after:
            ids.check_job_id(q.after)
            if q.reverse:
                hi = min(hi, f"({q.after}", key=_upper_bound_key)
            else:
                lo = max(lo, f"({q.after}", key=_lower_bound_key)

        found: list[str] = []
        while len(found) < q.limit:
            reply = self._list(
                args=[
                    lo,
                    hi,
                    q.limit - len(found),
                    "1" if q.reverse else "0",
                    LIST_BUDGET,
                    len(drivers),
                    *drivers,
                    len(all_of),
                    *all_of,
                    len(any_of),
                    *any_of,
                ]
            )
            state, last, *page = reply
            found.extend(page)
            if state != "more":
                break
            if q.reverse:
                hi = f"({last}"
            else:
                lo = f"({last}"
        return found

    def _pick_drivers(self, all_of: list[str], any_of: list[str]) -> list[str]:
        """The index (or status indexes, merged) with the fewest members."""
        candidates: list[list[str]] = [[key] for key in all_of]
        if any_of:
            candidates.append(any_of)
        if not candidates:
            return [self.keys.index_all]
        pipe = self.redis.pipeline(transaction=False)
        for group in candidates:
            for key in group:
                pipe.zcard(key)
        sizes = iter(pipe.execute())
        totals = [sum(next(sizes) for _ in group) for group in candidates]
        return candidates[totals.index(min(totals))]

    def list_records(self, query: JobQuery) -> list[JobRecord]:
        """Records matching `query` (purged records are skipped)."""
        return [r for r in self.get_many(self.list_ids(query)) if r is not None]

    # -- events ------------------------------------------------------------------

    @guarded
    def last_event_id(self, job_id: str) -> str:
        """The id of the newest event of a job ('0' if none), to read on from."""
        newest: Any = self.redis.xrevrange(self.keys.events(job_id), count=1)
        return str(newest[0][0]) if newest else "0"

    @guarded
    def read_events(
        self, job_id: str, after: str, block_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Events of a job after event id `after`, blocking up to `block_ms` for the first.

        A settled job's stream is gone (`retire`): its transitions are read from its
        history instead, at once, with ids ``0-<n>`` (the n-th transition), which sort
        before every id of a stream.
        """
        retired = self._retired_events(job_id, after)
        if retired is not None:
            return retired
        reply: Any = self.redis.xread({self.keys.events(job_id): after}, block=block_ms, count=100)
        if not reply:  # nothing came, or the stream went meanwhile
            return self._retired_events(job_id, after) or []
        return [(event_id, json.loads(f["event"])) for event_id, f in reply[0][1]]

    def _retired_events(self, job_id: str, after: str) -> list[tuple[str, dict[str, str]]] | None:
        """The events after `after` of a finished job whose stream is gone, from its
        history; None while the job has its stream (or is not finished)."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(k.events(job_id))
        pipe.hmget(k.job(job_id), ["cluster", "status"])
        pipe.lrange(k.history(job_id), 0, -1)
        exists, (cluster, status), history = pipe.execute()
        if exists or not status or not JobStatus(status).is_finished:
            return None
        return _history_events(job_id, cluster, history, after)

    # -- finalization and retention -----------------------------------------------

    @guarded
    def pending_finalization(self, limit: int = 500) -> list[str]:
        """Finished jobs whose final result has not been stored yet, oldest first."""
        pending: list[str] = self.redis.zrange(self.keys.finalize_pending, 0, limit - 1)  # type: ignore[assignment]
        return pending

    @guarded
    def mark_finalized(self, job_id: str) -> None:
        self.redis.zrem(self.keys.finalize_pending, job_id)

    @guarded
    def retire(self, job_ids: Sequence[str]) -> None:
        """`mark_finalized` for these jobs, and delete what only an unsettled job needs:
        its secret env values and its event stream (whoever waited woke on the event that
        settled it; `read_events` answers from the history after this). One round trip."""
        if not job_ids:
            return
        k = self.keys
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*(key for job_id in job_ids for key in (k.secrets(job_id), k.events(job_id))))
        pipe.zrem(k.finalize_pending, *job_ids)
        pipe.execute()

    @guarded
    def purge_expired(self, now_s: float, limit: int = 1000) -> int:
        """Delete finished records past their retention; returns how many."""
        k = self.keys
        return int(
            self._purge(
                args=[
                    k.job_prefix,
                    HISTORY_SUFFIX,
                    EVENTS_SUFFIX,
                    k.index_all,
                    k.expiry,
                    k.finalize_pending,
                    *(k.index_prefix(kind) for kind in ("cluster", "owner", "name", "status")),
                    k.index_prefix("tag"),
                    repr(now_s),
                    limit,
                    SECRETS_SUFFIX,
                ]
            )
        )

    # -- scheduler query accounting ----------------------------------------------

    @guarded
    def count_query(self, cluster: str, jobs: int, at_s: float) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(self.keys.stats(cluster), "queries", 1)
        pipe.hincrby(self.keys.stats(cluster), "jobs_queried", jobs)
        pipe.hset(self.keys.stats(cluster), "last_query_at", repr(at_s))
        pipe.execute()

    @guarded
    def mark_change(self, cluster: str, at_s: float) -> None:
        """Note that a cluster's jobs changed (or a job joined): polling speeds up."""
        self.redis.hset(self.keys.stats(cluster), "last_change_at", repr(at_s))

    @guarded
    def count_poll(self, cluster: str, outcome: str) -> None:
        """Count a polling chain step by outcome (continued, ended, superseded)."""
        self.redis.hincrby(self.keys.stats(cluster), f"polls_{outcome}", 1)

    @guarded
    def query_stats(self, cluster: str) -> dict[str, float]:
        """A cluster's counters: queries, jobs_queried, last_query_at, last_change_at,
        polls_<outcome>."""
        raw: dict[str, str] = self.redis.hgetall(self.keys.stats(cluster))  # type: ignore[assignment]
        return {key: float(value) for key, value in raw.items()}


def _history_events(
    job_id: str, cluster: str, history: list[str], after: str
) -> list[tuple[str, dict[str, str]]]:
    """A job's transitions after event id `after` as the events its stream held."""
    millis, _, seq = after.partition("-")
    if int(millis):
        return []  # `after` came from the stream: every transition was before it
    seen = int(seq or 0)
    events, previous = [], None
    for n, entry in enumerate(history, start=1):
        t = Transition.model_validate_json(entry)
        if n > seen:
            events.append((f"0-{n}", JobStore._event("transition", job_id, cluster, t, previous)))
        previous = t.status
    return events


def observation_digest(seen: Observation) -> str:
    """A short digest of everything an observation says (what transition.lua is given)."""
    elements = (
        json.dumps([e.model_dump(mode="json") for e in seen.elements]) if seen.elements else ""
    )
    parts = (seen.status.value, seen.reason or "", _text(seen.exit_code),
             _text(seen.started_at), _text(seen.finished_at), elements,
             "1" if seen.stop_on_scheduler else "")  # fmt: skip
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def _lower_bound_key(bound: str) -> tuple[str, int]:
    """Order lex lower bounds so that max() picks the tighter one."""
    if bound == "-":
        return ("", 0)
    return (bound[1:], 1 if bound[0] == "(" else 0)


def _upper_bound_key(bound: str) -> tuple[str, int]:
    """Order lex upper bounds so that min() picks the tighter one."""
    if bound == "+":
        return ("\U0010ffff", 1)
    return (bound[1:], 0 if bound[0] == "(" else 1)
