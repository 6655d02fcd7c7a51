"""The Job controller's writes: the pods it creates and the Job status it keeps
(active, ready, terminating, succeeded, failed, startTime, conditions), shaped as
the API reference's JobStatus and JobCondition and as pkg/controller/job writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import gc, pods, timefmt
from .cluster import Cluster, stamp
from .jobs import TRACKING_FINALIZER
from .resources import JOBS, PODS

JsonObj = dict[str, Any]

FAILURE_MESSAGES = {
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
    "PodFailurePolicy": "Container job for pod {pod} failed with exit code 1 matching FailJob "
    "rule at index 0",
    "MaxFailedIndexesExceeded": "Job has exceeded the specified maximal number of failed indexes",
}
COMPLETE_MESSAGE = "Reached expected number of succeeded pods"


def _now() -> str:
    return timefmt.rfc3339(timefmt.now())


def _owner_uid(pod: JsonObj) -> str | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("controller"):
            return str(ref["uid"])
    return None


def _ready(pod: JsonObj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _condition(kind: str, reason: str, message: str, value: str = "True") -> JsonObj:
    now = _now()
    return {
        "type": kind,
        "status": value,
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def _put_condition(status: JsonObj, condition: JsonObj) -> None:
    conditions = status.setdefault("conditions", [])
    for index, existing in enumerate(conditions):
        if existing["type"] == condition["type"]:
            if existing["status"] == condition["status"]:
                condition["lastTransitionTime"] = existing["lastTransitionTime"]
            conditions[index] = condition
            return
    conditions.append(condition)


def finished(job: JsonObj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _normalize(status: JsonObj) -> None:
    for field in ("active", "succeeded", "failed"):
        if not status.get(field):
            status.pop(field, None)
    status.setdefault("ready", 0)
    status.setdefault("terminating", 0)
    status["uncountedTerminatedPods"] = {}


class JobController:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def job(self, namespace: str, name: str) -> JsonObj:
        job = self.cluster.store.get(JOBS, namespace, name)
        if job is None:
            raise LookupError(f"no job {namespace}/{name}")
        return job

    def owned(self, job: JsonObj) -> list[JsonObj]:
        return gc.dependents(self.cluster, job["metadata"]["uid"])

    def _change_job(self, namespace: str, name: str, change: Callable[[JsonObj], None]) -> JsonObj:
        with self.cluster.store.cond:
            self.job(namespace, name)
            changed = self.cluster.store.mutate(JOBS, namespace, name, change)
            assert changed is not None
            return changed

    def _counts(self, job: JsonObj, status: JsonObj) -> None:
        live = [
            p for p in self.owned(job) if p["status"].get("phase") not in ("Succeeded", "Failed")
        ]
        status["active"] = sum(1 for p in live if not p["metadata"].get("deletionTimestamp"))
        status["ready"] = sum(
            1 for p in live if _ready(p) and not p["metadata"].get("deletionTimestamp")
        )
        status["terminating"] = sum(1 for p in live if p["metadata"].get("deletionTimestamp"))

    def sync(self, namespace: str, name: str) -> JsonObj:
        """Recount active/ready/terminating from the pods; set startTime once."""

        def change(job: JsonObj) -> None:
            status = job.setdefault("status", {})
            if not job["spec"].get("suspend"):
                status.setdefault("startTime", _now())
            if not finished(job):
                self._counts(job, status)
            _normalize(status)

        return self._change_job(namespace, name, change)

    def create_pod(self, namespace: str, name: str) -> str:
        with self.cluster.store.cond:
            pod = pods.from_job(self.job(namespace, name))
            stamp(pod["metadata"])
            pod["status"] = pods.initial_status(pod)
            stored = self.cluster.store.insert(PODS, pod)
            self.sync(namespace, name)
            return str(stored["metadata"]["name"])

    def change_pod(self, namespace: str, name: str, change: Callable[[JsonObj], None]) -> JsonObj:
        """Change a pod (as the kubelet); count it into its Job when it has finished."""
        with self.cluster.store.cond:
            pod = self.cluster.store.mutate(PODS, namespace, name, change)
            if pod is None:
                raise LookupError(f"no pod {namespace}/{name}")
            uid = _owner_uid(pod)
            owners = self.cluster.store.find(
                JOBS,
                lambda j: j["metadata"]["uid"] == uid and j["metadata"]["namespace"] == namespace,
            )
            job = owners[0] if owners else None
            phase = pod["status"].get("phase")
            if phase in ("Succeeded", "Failed") and TRACKING_FINALIZER in (
                pod["metadata"].get("finalizers") or []
            ):
                pod = self._account(pod, phase, job)
            if job is not None:
                self.sync(namespace, job["metadata"]["name"])
            return pod

    def _account(self, pod: JsonObj, phase: str, job: JsonObj | None) -> JsonObj:
        meta = pod["metadata"]

        def drop_finalizer(obj: JsonObj) -> None:
            rest = [f for f in obj["metadata"].get("finalizers") or [] if f != TRACKING_FINALIZER]
            if rest:
                obj["metadata"]["finalizers"] = rest
            else:
                obj["metadata"].pop("finalizers", None)

        changed = self.cluster.store.mutate(PODS, meta["namespace"], meta["name"], drop_finalizer)
        if job is not None:
            field = "succeeded" if phase == "Succeeded" else "failed"
            self.count(job["metadata"]["namespace"], job["metadata"]["name"], field)
        return changed or pod

    def count(self, namespace: str, name: str, field: str) -> JsonObj:
        """One more pod in ``succeeded`` or ``failed``."""

        def change(obj: JsonObj) -> None:
            status = obj.setdefault("status", {})
            status[field] = status.get(field, 0) + 1

        return self._change_job(namespace, name, change)

    def set_counts(self, namespace: str, name: str, **counts: int) -> JsonObj:
        def change(job: JsonObj) -> None:
            status = job.setdefault("status", {})
            status.setdefault("startTime", _now())
            status.update(counts)
            _normalize(status)

        return self._change_job(namespace, name, change)

    def complete(self, namespace: str, name: str) -> JsonObj:
        def change(job: JsonObj) -> None:
            status = job.setdefault("status", {})
            status.setdefault("startTime", _now())
            completions = job["spec"].get("completions") or 1
            status["succeeded"] = max(status.get("succeeded", 0), completions)
            status["active"] = 0
            status["ready"] = 0
            _put_condition(
                status, _condition("SuccessCriteriaMet", "CompletionsReached", COMPLETE_MESSAGE)
            )
            _put_condition(status, _condition("Complete", "CompletionsReached", COMPLETE_MESSAGE))
            status["completionTime"] = _now()
            _normalize(status)

        return self._change_job(namespace, name, change)

    def fail(
        self, namespace: str, name: str, reason: str, message: str | None, failed: int | None
    ) -> JsonObj:
        """FailureTarget then Failed; the controller deletes the pods still running."""
        job = self.job(namespace, name)
        running = [
            p for p in self.owned(job) if p["status"].get("phase") not in ("Succeeded", "Failed")
        ]
        if message is None:
            pod = running[0]["metadata"]["name"] if running else f"{name}-xxxxx"
            message = FAILURE_MESSAGES.get(reason, reason).format(pod=f"{namespace}/{pod}")
        for pod in running:
            gc.delete_pod(self.cluster, namespace, pod["metadata"]["name"], 0)

        def change(obj: JsonObj) -> None:
            status = obj.setdefault("status", {})
            status.setdefault("startTime", _now())
            if failed is not None:
                status["failed"] = failed
            elif reason == "BackoffLimitExceeded":
                status["failed"] = max(
                    status.get("failed", 0), obj["spec"].get("backoffLimit", 6) + 1
                )
            else:
                status["failed"] = status.get("failed", 0) + len(running) or 1
            status["active"] = 0
            status["ready"] = 0
            _put_condition(status, _condition("FailureTarget", reason, message))
            _put_condition(status, _condition("Failed", reason, message))
            _normalize(status)

        return self._change_job(namespace, name, change)

    def suspend(self, namespace: str, name: str, suspend: bool) -> JsonObj:
        job = self.job(namespace, name)
        if suspend:
            for pod in self.owned(job):
                if pod["status"].get("phase") not in ("Succeeded", "Failed"):
                    gc.delete_pod(self.cluster, namespace, pod["metadata"]["name"], 0)

        def change(obj: JsonObj) -> None:
            if obj["spec"].get("suspend") != suspend:
                obj["spec"]["suspend"] = suspend
                obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
            status = obj.setdefault("status", {})
            if suspend:
                status.pop("startTime", None)
                status["active"] = 0
                status["ready"] = 0
                _put_condition(status, _condition("Suspended", "JobSuspended", "Job suspended"))
            else:
                status["startTime"] = _now()
                _put_condition(
                    status, _condition("Suspended", "JobResumed", "Job resumed", value="False")
                )
            _normalize(status)

        return self._change_job(namespace, name, change)
