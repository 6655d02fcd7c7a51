"""`Gateway` submits and finds jobs; `Job` follows one.

A submit writes the job record (state NEW) and enqueues ``jobgate.submit`` to
the cluster's queue, then returns at once; nothing waits on the cluster.
Waiting reads the job's event stream in Redis (blocking reads, no busy polling);
logs, fresh status and cancel are tasks answered by a worker on the cluster.
"""

from __future__ import annotations

import builtins
import contextlib
import getpass
import logging
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from celery import Celery, states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from pydantic import TypeAdapter, ValidationError

from jobgate.client import bundle, errors, ids, routing, transfers
from jobgate.client.celeryconf import make_celery
from jobgate.client.clusters import ClusterInfo, live_clusters
from jobgate.client.connection import (
    broker_errors,
    check_url,
    connect,
    mask_url,
    tenant_from_env,
    url_from_env,
)
from jobgate.client.coordination import Coordination
from jobgate.client.errors import (
    BrokerUnavailableError,
    ClusterNotServedWarning,
    DestinationExistsError,
    JobgateError,
    JobNotFoundError,
    JobTimeoutError,
    OutputsIncompleteError,
    PolicyBlockedError,
    ProfileNotFoundError,
    SpecInvalidError,
    StorageError,
)
from jobgate.client.files import OutputFile, matching
from jobgate.client.keys import Keys, check_tenant
from jobgate.client.models import (
    ClusterName,
    JobQuery,
    JobRecord,
    JobSpec,
    JobStatus,
    Observation,
    PolicyFinding,
    StatusUpdate,
    Transition,
)
from jobgate.client.outages import DEFAULT_OUTAGE_S, OutageRider
from jobgate.client.policy import blocking, evaluate_policy
from jobgate.client.profile_schema import ClusterProfile
from jobgate.client.profiles import apply_defaults
from jobgate.client.store import JobStore
from jobgate.client.submit_queue import SubmitQueue
from jobgate.client.transfers import TransferProgress
from jobgate.client.validation import SpecSource, field_problems, validate_job_spec

log = logging.getLogger(__name__)
_OWNER = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_CLUSTER = TypeAdapter(ClusterName)
LOG_CHUNK_BYTES = routing.LOGS_MAX_BYTES
STAGE_TIMEOUT_S = 60.0
ANSWER_CHECK_S = 2.0
UNQUEUED_RETENTION_S = 7 * 24 * 3600
#: How long submit() trusts the live clusters it read: parsing every worker's
#: heartbeat and profile costs more than the rest of a submit.
SERVED_CLUSTERS_CACHE_S = 5.0
#: Jobs per submit message of submit_many(): enough to share one message's cost,
#: few enough that a cluster's worker processes share the batch's sbatch calls.
SUBMIT_BATCH = 25
Stream = Literal["stdout", "stderr"]


def default_owner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


class Gateway:
    """Entry point of the client: submit jobs to clusters served by jobgate workers."""

    def __init__(self, url: str, *, tenant: str = "default", owner: str | None = None) -> None:
        self.url = check_url(url)
        self.tenant = check_tenant(tenant)
        self.owner = owner or default_owner()
        if not _OWNER.match(self.owner):
            raise SpecInvalidError(
                f"owner {self.owner!r} may hold only letters, digits and . _ @ - (max 64)"
            )
        self.keys = Keys(self.tenant)
        client = connect(self.url)
        self.store = JobStore(client, self.keys, self.url)
        self.coordination = Coordination(client, self.keys, self.url)
        self.submit_queue = SubmitQueue(client, self.keys, self.url)
        self._celery: Celery | None = None
        self._served: tuple[float, dict[str, ClusterInfo]] = (-SERVED_CLUSTERS_CACHE_S, {})

    @classmethod
    def from_env(cls, *, owner: str | None = None) -> Gateway:
        """A gateway for ``JOBGATE_URL`` (required) and ``JOBGATE_TENANT`` (default 'default')."""
        return cls(url_from_env(), tenant=tenant_from_env(), owner=owner)

    def __repr__(self) -> str:
        return f"Gateway({mask_url(self.url)!r}, tenant={self.tenant!r})"

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()
        if self._celery is not None:
            self._celery.close()

    @property
    def celery(self) -> Celery:
        """The Celery app this gateway sends with (for ``AsyncResult(..., app=gw.celery)``)."""
        if self._celery is None:
            self._celery = make_celery(self.url, self.tenant, main="jobgate-client")
        return self._celery

    def clusters(self) -> dict[str, ClusterInfo]:
        """Clusters a live worker serves right now, with the profile it serves them with."""
        return live_clusters(self.coordination)

    def _served_cluster(self, cluster: str) -> ClusterInfo | None:
        """A cluster's live info as submit() uses it: read again after
        SERVED_CLUSTERS_CACHE_S, or at once for a cluster it did not list."""
        read_at, served = self._served
        now = time.monotonic()
        if now - read_at >= SERVED_CLUSTERS_CACHE_S or cluster not in served:
            served = self.clusters()
            self._served = (now, served)
        return served.get(cluster)

    def preflight(
        self,
        spec: SpecSource,
        cluster: str,
        *,
        include_passes: bool = False,
        profile: ClusterProfile | None = None,
    ) -> list[PolicyFinding]:
        """The cluster's policy findings for a spec, without submitting it.

        Checks against the profile a live worker serves the cluster with, or against
        `profile` when given (e.g. ``load_profile("hpc")``, for a cluster no worker serves).
        """
        spec = validate_job_spec(spec)
        if profile is None:
            info = self.clusters().get(_cluster_name(cluster))
            if info is None:
                raise ProfileNotFoundError(
                    f"no live worker serves cluster {cluster!r}, so its profile is unknown "
                    "here; pass profile=load_profile(...) to check against a local copy"
                )
            profile = info.profile
        return evaluate_policy(
            apply_defaults(spec, profile), profile, include_passes=include_passes
        )

    def submit(
        self,
        spec: SpecSource,
        cluster: str,
        *,
        allow_policy_risk: bool = False,
        progress: TransferProgress | None = None,
    ) -> Job:
        """Record the job and queue it for `cluster`; returns its handle once it is queued.

        Runs the policy preflight against the cluster's live profile first: BLOCK
        findings raise PolicyBlockedError unless `allow_policy_risk` is set and the
        profile allows overrides (the worker checks again either way). A cluster no
        live worker serves gets a ClusterNotServedWarning: the job waits in its queue.
        Secret-looking env values are kept out of the job record.

        A job with `inputs` has them packed and uploaded first, through URLs a worker
        of the cluster presigns (`progress`: a bar on a terminal by default). An input
        that cannot be packed raises SpecInvalidError before anything is recorded; an
        upload that fails raises StorageError, and the job is FAILED, never queued.
        """
        spec = validate_job_spec(spec)
        cluster = _cluster_name(cluster)
        members = bundle.collect(spec.inputs) if spec.inputs else []
        info = self._served_cluster(cluster)
        if info is None and spec.inputs:
            raise JobTimeoutError(
                f"no live worker serves cluster {cluster!r} to take this job's inputs; "
                f"start one with: jobgate worker --profile {cluster}"
            )
        if info is None:
            _warn_not_served(cluster)
        record, secrets = self._new_record(spec, cluster, info, allow_policy_risk,
                                           self.store.now())  # fmt: skip
        self.store.create(record, secrets)
        if spec.inputs:
            self._stage_inputs(record, members, transfers.default_progress(progress))
        self._queue(record.id, cluster)
        return Job(self, record.id, cluster, record.result_id)

    def submit_many(
        self, specs: Sequence[SpecSource], cluster: str, *, allow_policy_risk: bool = False
    ) -> builtins.list[Job]:
        """Record and queue many jobs for one cluster; returns their handles, in order.

        Each job is what submit() would make of its spec, but the records are written in
        one round trip and a worker takes the jobs SUBMIT_BATCH at a time: one message
        per batch instead of one per job. Every spec is validated and preflighted before
        any is recorded, so a bad one (SpecInvalidError naming its position) or a BLOCK
        finding (PolicyBlockedError) records nothing. Jobs with inputs go one by one,
        through submit().
        """
        cluster = _cluster_name(cluster)
        checked = []
        for position, source in enumerate(specs):
            try:
                spec = validate_job_spec(source)
            except SpecInvalidError as e:
                raise SpecInvalidError(f"specs[{position}]: {e}") from None
            if spec.inputs:
                raise SpecInvalidError(
                    f"specs[{position}]: a job with inputs is submitted on its own, with submit()"
                )
            checked.append(spec)
        info = self._served_cluster(cluster)
        if info is None:
            _warn_not_served(cluster)
        now = self.store.now()
        accepted = [self._new_record(s, cluster, info, allow_policy_risk, now) for s in checked]
        self.store.create_many(accepted)
        job_ids = [record.id for record, _ in accepted]
        batches = [job_ids[i : i + SUBMIT_BATCH] for i in range(0, len(job_ids), SUBMIT_BATCH)]
        self._queue_batches(batches, cluster)
        return [Job(self, record.id, cluster, record.result_id) for record, _ in accepted]

    def _new_record(
        self,
        spec: JobSpec,
        cluster: str,
        info: ClusterInfo | None,
        allow_policy_risk: bool,
        now_s: float,
    ) -> tuple[JobRecord, dict[str, str]]:
        """A new job's record and its secret env values, after the policy preflight
        against the cluster's live profile (PolicyBlockedError); `now_s` on Redis's clock."""
        findings: list[PolicyFinding] = []
        if info is not None:
            findings = evaluate_policy(apply_defaults(spec, info.profile), info.profile)
            blocked = blocking(findings)
            overridable = info.profile.policy.allow_overrides
            if blocked and not (allow_policy_risk and overridable):
                raise PolicyBlockedError(cluster, blocked, overridable=overridable)
        secrets = spec.secret_values()
        if secrets:
            spec = spec.redacted()
        job_id = ids.new_job_id(now_s)
        created = ids.created_at(job_id)
        record = JobRecord(
            id=job_id,
            cluster=cluster,
            owner=self.owner,
            name=spec.name,
            tags=spec.tags,
            spec=spec,
            result_id=str(uuid.uuid4()),
            status=JobStatus.NEW,
            created_at=created,
            updated_at=created,
            history=[Transition(status=JobStatus.NEW, at=created, reason="accepted by gateway")],
            findings=findings,
            allow_policy_risk=allow_policy_risk,
        )
        return record, secrets

    def _queue(self, job_id: str, cluster: str) -> None:
        """Put a recorded job in its cluster's submit queue and, when the queue asks for a
        drainer, send its message. A job that cannot be queued is marked FAILED: never
        queued, never run. A drain message that cannot be sent leaves the job queued: the
        next submit or the cluster's reconcile arms a drainer again once the slot lapses
        (submit_queue.SLOT_TTL_MS), so raising would only invite a duplicate."""
        try:
            slot = self.submit_queue.enqueue(cluster, job_id)
        except BrokerUnavailableError as e:
            raise BrokerUnavailableError(
                mask_url(self.url), f"{e.cause}; job {job_id} {self._abandon(job_id)}"
            ) from e
        if not slot:
            return
        try:
            self._send(routing.DRAIN_SUBMITS, [cluster, slot], cluster)
        except BrokerUnavailableError as e:
            log.warning(
                "job %s is queued, but its drain message could not be sent (%s); "
                "a worker takes it once the drainer slot lapses",
                job_id,
                e.cause,
            )

    def _queue_batches(self, batches: builtins.list[builtins.list[str]], cluster: str) -> None:
        """Send the submit_batch messages of recorded jobs. A message that cannot be sent
        has its jobs, and those of every message after it, marked FAILED: never queued,
        never run."""
        for sent, batch in enumerate(batches):
            try:
                self._send(routing.SUBMIT_BATCH, [batch, cluster], cluster)
            except BrokerUnavailableError as e:
                unsent = [job_id for rest in batches[sent:] for job_id in rest]
                what = f"job {unsent[0]}" if len(unsent) == 1 else f"{len(unsent)} jobs"
                outcome = "; ".join(sorted({self._abandon(job_id) for job_id in unsent}))
                queued = f" ({sent} batch(es) before them were queued)" if sent else ""
                raise BrokerUnavailableError(
                    mask_url(self.url), f"{e.cause}; {what} {outcome}{queued}"
                ) from e

    def _send(self, task: str, args: builtins.list[Any], cluster: str) -> None:
        with broker_errors(self.url):
            self.celery.send_task(
                task,
                args=args,
                queue=routing.queue(cluster),
                ignore_result=True,  # submit tasks store none: nothing to subscribe to
            )

    def _stage_inputs(
        self, record: JobRecord, members: builtins.list[bundle.Member], progress: TransferProgress
    ) -> None:
        """Pack the inputs into their bundle and upload it in parts; on failure the job
        is marked FAILED (it is never queued) and StorageError says why."""
        job_id, cluster = record.id, record.cluster
        label = f"inputs of job {job_id}"
        try:
            begin = self.call(
                routing.STAGE,
                [job_id, routing.STAGE_BEGIN, bundle.size_bound(members)],
                cluster,
                timeout_s=STAGE_TIMEOUT_S,
            )
            urls = {int(number): url for number, url in begin["parts"].items()}
            uploader = transfers.PartUploader(urls, int(begin["part_size"]), label)
            total = sum(m.size for m in members)
            try:
                with transfers.shown(progress, f"uploading {label}", total):
                    bundle.write(
                        members,
                        uploader,
                        job_id=job_id,
                        cluster=cluster,
                        run_id=record.spec.run_id or job_id,
                        progress=progress.advance,
                    )
                    uploader.close()
            except BaseException:
                uploader.abandon()
                raise
            self.call(
                routing.STAGE,
                [job_id, routing.STAGE_COMPLETE, uploader.parts],
                cluster,
                timeout_s=STAGE_TIMEOUT_S,
            )
        except (JobgateError, KeyboardInterrupt) as e:
            self._abort_stage(job_id, cluster)
            failed = Observation(JobStatus.FAILED, reason=f"not queued: inputs: {e}")
            with contextlib.suppress(BrokerUnavailableError):
                self.store.transition(
                    StatusUpdate(job_id, failed),
                    observed_at=self.store.now(),
                    retention_s=UNQUEUED_RETENTION_S,
                )
            if isinstance(e, KeyboardInterrupt):
                raise
            raise StorageError(
                f"job {job_id} was not queued: its inputs could not be uploaded: {e}"
            ) from e

    def _abort_stage(self, job_id: str, cluster: str) -> None:
        """Ask a worker to drop what was uploaded of a bundle; an abandoned upload is
        also removed by the bucket's lifecycle rules, if any."""
        with contextlib.suppress(JobgateError):
            self.call(routing.STAGE, [job_id, routing.STAGE_ABORT, 0], cluster, timeout_s=10.0)

    def _abandon(self, job_id: str) -> str:
        """Mark a recorded job whose submit could not be queued as FAILED, if Redis lets us.

        Otherwise reconcile would re-send its submit later and run a job whose
        submission the caller saw fail (and may have retried).
        """
        failed = Observation(JobStatus.FAILED, reason="not queued: the submit could not be sent")
        try:
            self.store.transition(
                StatusUpdate(job_id, failed),
                observed_at=self.store.now(),
                retention_s=UNQUEUED_RETENTION_S,
            )
        except BrokerUnavailableError:
            return "was recorded but not queued, and could not be marked FAILED"
        return "was recorded but not queued, and is marked FAILED"

    def job(self, job_id: str) -> Job:
        """The handle of an existing job, e.g. one submitted by another process."""
        record = self.store.get(ids.check_job_id(job_id))
        return Job(self, record.id, record.cluster, record.result_id)

    def cancel(
        self, job_ids: Sequence[str], *, timeout_s: float = 60.0
    ) -> builtins.list[JobRecord]:
        """Cancel these jobs and return their records, in the order of `job_ids`.

        One task per cluster (per CANCEL_MANY_MAX_JOBS jobs) stops them all, with one
        scheduler command per chunk of ids (``scancel``/``bkill`` with many ids), so
        cancelling many jobs costs about as much as cancelling one. If no worker answers
        within `timeout_s` (per cluster), JobTimeoutError is raised and the cancellations
        stay queued: they run when a worker for the cluster is back.
        """
        checked = [ids.check_job_id(j) for j in job_ids]
        wanted = list(dict.fromkeys(checked))
        by_cluster: dict[str, builtins.list[str]] = {}
        for job_id, record in zip(wanted, self.store.get_many(wanted), strict=True):
            if record is None:
                raise JobNotFoundError(f"no job {job_id} in tenant {self.tenant!r}")
            by_cluster.setdefault(record.cluster, []).append(job_id)
        records: dict[str, JobRecord] = {}
        for cluster, cluster_ids in by_cluster.items():
            for start in range(0, len(cluster_ids), routing.CANCEL_MANY_MAX_JOBS):
                batch = cluster_ids[start : start + routing.CANCEL_MANY_MAX_JOBS]
                answer = self.call(
                    routing.CANCEL_MANY,
                    [cluster, batch],
                    cluster,
                    timeout_s=timeout_s,
                    expires=False,
                )
                for data in answer["records"]:
                    record = JobRecord.model_validate(data)
                    records[record.id] = record
        return [records[j] for j in checked]

    def list(self, query: JobQuery | None = None, /, **criteria: Any) -> builtins.list[JobRecord]:
        """Job records matching every given filter, oldest first (`reverse`: newest first).

        Give a `JobQuery`, or its fields as keywords: statuses, cluster, tags, owner,
        name, since, until (creation time, both inclusive), reverse, limit (100), after.
        Pages through Redis indexes: pass the last id of one page as `after` to get
        the next.
        """
        if query is None:
            try:
                query = JobQuery(**criteria)
            except ValidationError as e:
                raise SpecInvalidError(f"list: {field_problems(e)}") from e
        elif criteria:
            raise SpecInvalidError("list: give a JobQuery or keywords, not both")
        return self.store.list_records(query)

    def scheduler_queries(self, cluster: str) -> int:
        """How many batched status queries workers have made to `cluster`'s scheduler."""
        return int(self.store.query_stats(cluster).get("queries", 0))

    def call(
        self,
        task: str,
        args: Sequence[Any],
        cluster: str,
        *,
        timeout_s: float,
        expires: bool = True,
    ) -> dict[str, Any]:
        """Run a client-facing task on a worker of `cluster` and return its answer.

        With `expires`, a task no worker picked up within `timeout_s` is dropped
        instead of running late (the deadline is on Redis's clock, which the worker
        reads too, so skewed host clocks do not drop it early).
        """
        queue = routing.queue(cluster)
        headers = {routing.EXPIRES_AT_HEADER: self.store.now() + timeout_s} if expires else {}
        # A Redis that is down fails the call now: Celery's result consumer, subscribing for
        # the answer, would retry its connection for minutes (its retry_policy).
        self.store.ping()
        with broker_errors(self.store.url):
            result = self.celery.send_task(task, args=list(args), queue=queue, headers=headers)
            try:
                answer = _answer(result, timeout_s)
            except CeleryTimeoutError as e:
                raise JobTimeoutError(
                    f"no worker serving cluster {cluster!r} (queue {queue}) answered {task} "
                    f"within {timeout_s:g} s; start one with: jobgate worker --profile {cluster}"
                ) from e
            failed = result.failed()
            result.forget()
        if failed:
            raise JobgateError(f"{task} failed on the worker: {answer!r}")
        if not isinstance(answer, dict):
            raise JobgateError(f"{task} returned {type(answer).__name__}, expected a mapping")
        error = answer.get("error")
        if error:
            error_type = getattr(errors, str(error.get("type")), JobgateError)
            if not (isinstance(error_type, type) and issubclass(error_type, JobgateError)):
                error_type = JobgateError
            raise error_type(error.get("message", "unknown error"))
        return answer


class Job:
    """Handle of one job: its status, logs, final record, cancellation."""

    def __init__(self, gateway: Gateway, job_id: str, cluster: str, result_id: str) -> None:
        self.gateway = gateway
        self.id = job_id
        self.cluster = cluster
        self.result_id = result_id

    def __repr__(self) -> str:
        return f"Job({self.id!r}, cluster={self.cluster!r})"

    def record(self, *, fresh: bool = False, timeout_s: float = 30.0) -> JobRecord:
        """The job's record from the store; `fresh` asks a worker to query the cluster first."""
        if not fresh:
            return self.gateway.store.get(self.id)
        answer = self.gateway.call(routing.MONITOR, [self.id], self.cluster, timeout_s=timeout_s)
        return JobRecord.model_validate(answer["record"])

    def status(self, *, fresh: bool = False) -> JobStatus:
        return self.record(fresh=fresh).status

    def wait(
        self, timeout_s: float | None = None, *, outage_s: float = DEFAULT_OUTAGE_S
    ) -> JobRecord:
        """Block until the job finishes and return its final record.

        Reads the job's event stream with blocking reads, so it returns as soon as
        the finishing transition is written. Raises JobTimeoutError on timeout. A Redis
        outage (a restart, a failover) is waited out for up to `outage_s` in a row.
        """
        store = self.gateway.store
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        redis = OutageRider(outage_s, deadline, f"waiting for job {self.id}")
        after = redis.call(store.last_event_id, self.id)
        record = redis.call(store.get, self.id)
        while not record.settled:
            block_s = 5.0
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state = (
                        record.status.value
                        if not record.status.is_finished
                        else (f"{record.status.value}, its outputs not yet kept")
                    )
                    raise JobTimeoutError(f"job {self.id} still {state} after {timeout_s:g} s")
                block_s = min(block_s, remaining)
            block_ms = max(1, int(block_s * 1000))
            events = redis.call(store.read_events, self.id, after, block_ms)
            if events:
                after = events[-1][0]
            record = redis.call(store.get, self.id)
        return record

    def logs(
        self,
        stream: Stream = "stdout",
        *,
        follow: bool = False,
        index: int | None = None,
        timeout_s: float = 30.0,
        outage_s: float = DEFAULT_OUTAGE_S,
    ) -> Iterator[str]:
        """The job's output in chunks. With `follow`, keep reading until the job finishes,
        waiting out a Redis outage for up to `outage_s` in a row.

        `index` picks an element of an array job (default: its first index); `timeout_s`
        bounds each request to a worker.
        """
        if stream not in ("stdout", "stderr"):
            raise SpecInvalidError(f"stream must be 'stdout' or 'stderr', not {stream!r}")
        if index is not None and (type(index) is not int or index < 0):
            raise SpecInvalidError(f"index must be an array index (an int >= 0), not {index!r}")
        store = self.gateway.store
        redis = OutageRider(outage_s if follow else 0.0, None, f"reading the logs of {self.id}")
        offset = 0
        after = redis.call(store.last_event_id, self.id)
        while True:
            request = [self.id, stream, offset, index, LOG_CHUNK_BYTES]
            chunk = redis.call(
                self.gateway.call, routing.LOGS, request, self.cluster, timeout_s=timeout_s
            )
            if chunk["data"]:
                offset = chunk["offset"]
                yield chunk["data"]
                continue
            if not follow or chunk["complete"]:
                return
            events = redis.call(store.read_events, self.id, after, 1000)
            if events:
                after = events[-1][0]

    def outputs(self) -> builtins.list[OutputFile]:
        """The files the finished job left in S3 (path, size, sha256, key); nothing is
        downloaded. Empty until the job finished and its outputs were kept."""
        report = self.gateway.store.get(self.id).outputs
        return list(report.files) if report else []

    def retrieve(
        self,
        dest: str | Path,
        *,
        pattern: str | None = None,
        overwrite: bool = False,
        logs: bool = True,
        partial: bool = False,
        progress: TransferProgress | None = None,
        timeout_s: float = 60.0,
    ) -> builtins.list[Path]:
        """Download the job's outputs (those matching `pattern`, a glob) and, with `logs`,
        its stdout/stderr files into `dest`; returns the local paths.

        Every file is checked against its sha256. Nothing is written outside `dest`, and
        an existing file is replaced only with `overwrite` (checked before anything is
        downloaded). Outputs whose upload failed raise OutputsIncompleteError unless
        `partial`.
        """
        record = self.gateway.store.get(self.id)
        report = record.outputs
        if report is None:
            raise OutputsIncompleteError(
                f"job {self.id} is {record.status.value} and has no outputs kept"
                + ("" if record.status.is_finished else " yet: wait() for it first")
            )
        if not report.complete and not partial:
            raise OutputsIncompleteError(
                f"the outputs of job {self.id} are incomplete ({report.reason}); the gateway "
                "retries the upload; retrieve later, or pass partial=True"
            )
        answer = self.gateway.call(routing.RETRIEVE, [self.id], self.cluster, timeout_s=timeout_s)
        urls: dict[str, str] = answer["urls"]
        wanted = [f for f in report.files if pattern is None or matching([f.path], [pattern])]
        if logs:
            wanted += report.logs
        root = Path(dest).expanduser().resolve()
        items = []
        for f in wanted:
            target = _inside(root, f.path)
            if target.exists() and not overwrite:
                raise DestinationExistsError(
                    f"{target} exists; pass overwrite=True (--overwrite) to replace it"
                )
            items.append((urls[f.key], target, f.size, f.sha256))
        for _, target, _, _ in items:
            target.parent.mkdir(parents=True, exist_ok=True)
        shown = transfers.default_progress(progress)
        with transfers.shown(shown, f"retrieving job {self.id}", sum(i[2] for i in items)):
            return list(transfers.download_all(items, shown))

    def cancel(self, *, timeout_s: float = 60.0) -> JobRecord:
        """Cancel the job (its whole process group or scheduler job) and return its record.

        If no worker answers within `timeout_s`, JobTimeoutError is raised and the
        cancellation stays queued: it runs when a worker for the cluster is back.
        """
        answer = self.gateway.call(
            routing.CANCEL, [self.id], self.cluster, timeout_s=timeout_s, expires=False
        )
        return JobRecord.model_validate(answer["record"])


def _answer(result: AsyncResult[Any], timeout_s: float) -> Any:
    """The task's answer, within `timeout_s` (else Celery's TimeoutError).

    Celery's result consumer waits for the notification the worker publishes with the
    answer; a notification published while the client's subscription was down (Redis
    restarting) is lost for good, while the stored answer is not. So every
    ANSWER_CHECK_S of waiting the stored answer is read as well.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        wait_s = max(0.001, min(ANSWER_CHECK_S, deadline - time.monotonic()))
        try:
            return result.get(timeout=wait_s, propagate=False)
        except CeleryTimeoutError:
            if result.state in states.READY_STATES:  # read from the store: now cached
                return result.get(propagate=False)
            if time.monotonic() >= deadline:
                raise


def _inside(root: Path, path: str) -> Path:
    """`root / path`, refused when it (through a symlink, say) lands outside `root`."""
    target = root / path
    existing = target.parent
    while not existing.exists():
        existing = existing.parent
    real = existing.resolve()
    if not (real.is_relative_to(root) or root.is_relative_to(real)):
        raise SpecInvalidError(f"retrieve: {path} would be written outside {root}")
    return target


def _warn_not_served(cluster: str) -> None:
    warnings.warn(
        f"no live worker serves cluster {cluster!r}: the job waits in queue "
        f"{routing.queue(cluster)} until one starts (jobgate worker --profile {cluster})",
        ClusterNotServedWarning,
        stacklevel=3,
    )


def _cluster_name(cluster: str) -> str:
    try:
        return _CLUSTER.validate_python(cluster)
    except ValidationError as e:
        raise SpecInvalidError(
            f"cluster {cluster!r} is not a cluster name (lowercase RFC 1123 label)"
        ) from e
