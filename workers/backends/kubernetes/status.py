"""What a batch/v1 Job and its pods mean for jobgate, as pure functions of the API's
JSON (the dicts the API returns, whichever client fetched them).

Conditions decide first (Kubernetes docs, "Jobs": terminal conditions Complete and
Failed; SuccessCriteriaMet and FailureTarget are set when the outcome is decided
while pods may still be terminating; Suspended). Without one, the pods tell:
running means RUNNING; otherwise PENDING with the reason a pod waits for
(Unschedulable, ErrImagePull, ImagePullBackOff, ...). ``status.failed > 0``
without a terminal condition means Kubernetes is retrying, not that the job failed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobgate.client.models import JobStatus

#: Pod waiting reasons that will not go away by themselves.
IMAGE_ERRORS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"}
)


def _true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return {c.get("type", ""): c for c in conditions if c.get("status") == "True"}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("containerStatuses") or [])


def pod_waiting_reason(pod: dict[str, Any]) -> tuple[str, str] | None:
    """Why a pod is not running yet: a container's waiting reason, or Unschedulable."""
    for container in _containers(pod):
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return waiting["reason"], waiting.get("message", "")
    scheduled = [c for c in (pod.get("status") or {}).get("conditions") or []
                 if c.get("type") == "PodScheduled" and c.get("status") == "False"]  # fmt: skip
    if scheduled:
        return scheduled[0].get("reason") or "Unschedulable", scheduled[0].get("message", "")
    return None


def _running(pod: dict[str, Any]) -> bool:
    if (pod.get("status") or {}).get("phase") == "Running":
        return True
    return any(c.get("ready") or "running" in (c.get("state") or {}) for c in _containers(pod))


def classify_job(job: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[JobStatus, str | None]:
    """The status of one Job from its conditions, else from its pods."""
    conditions = _true_conditions(job)
    for kind, status in (("Complete", JobStatus.SUCCEEDED), ("SuccessCriteriaMet",
                         JobStatus.SUCCEEDED)):  # fmt: skip
        if kind in conditions:
            return status, None
    for kind in ("Failed", "FailureTarget"):
        if kind in conditions:
            return JobStatus.FAILED, conditions[kind].get("reason") or kind
    if "Suspended" in conditions:
        return JobStatus.SUSPENDED, conditions["Suspended"].get("reason") or "Suspended"
    if any(_running(p) for p in pods):
        return JobStatus.RUNNING, None
    for pod in newest_first(pods):
        waiting = pod_waiting_reason(pod)
        if waiting:
            return JobStatus.PENDING, waiting[0]
    active = (job.get("status") or {}).get("active") or 0
    return (JobStatus.PENDING, None) if not active or not pods else (JobStatus.RUNNING, None)


def newest_first(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "",
                  reverse=True)  # fmt: skip


def exit_code(pods: list[dict[str, Any]]) -> int | None:
    """The exit code of the newest pod's terminated container, if any."""
    for pod in newest_first(pods):
        for container in _containers(pod):
            terminated = (container.get("state") or {}).get("terminated")
            if terminated and terminated.get("exitCode") is not None:
                return int(terminated["exitCode"])
    return None


def timestamp(text: str | None) -> datetime | None:
    """An API timestamp ("2026-11-21T20:00:00Z") as an aware datetime."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def started_finished(job: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    status = job.get("status") or {}
    finished = status.get("completionTime")
    if finished is None:
        decided = _true_conditions(job)
        terminal = decided.get("Complete") or decided.get("Failed") or {}
        finished = terminal.get("lastTransitionTime")
    return timestamp(status.get("startTime")), timestamp(finished)
