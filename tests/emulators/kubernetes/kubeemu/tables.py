"""meta.k8s.io/v1 Table answers for ``kubectl get`` without ``-o``: the columns the
API server's printers give Jobs and Pods (pkg/printers/internalversion)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import timefmt
from .resources import JOBS, PODS, ResourceType

JsonObj = dict[str, Any]


def _age(stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    return duration((timefmt.now() - timefmt.parse(stamp)).total_seconds())


def duration(seconds: float) -> str:
    """HumanDuration, roughly: 5s, 3m4s, 2h5m, 3d4h."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 3 * 3600:
        return f"{s // 60}m"
    if s < 8 * 3600:
        return f"{s // 3600}h{(s % 3600) // 60}m" if (s % 3600) // 60 else f"{s // 3600}h"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _condition(status: JsonObj, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or []
    )


def _job_row(job: JsonObj) -> list[Any]:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    if _condition(status, "Failed"):
        state = "Failed"
    elif _condition(status, "Complete"):
        state = "Complete"
    elif _condition(status, "Suspended"):
        state = "Suspended"
    elif _condition(status, "FailureTarget"):
        state = "FailureTarget"
    elif _condition(status, "SuccessCriteriaMet"):
        state = "SuccessCriteriaMet"
    elif job["metadata"].get("deletionTimestamp"):
        state = "Terminating"
    else:
        state = "Running"
    completions = spec.get("completions")
    done = status.get("succeeded", 0)
    shown = (
        f"{done}/{completions}"
        if completions is not None
        else f"{done}/1 of {spec.get('parallelism')}"
    )
    start = status.get("startTime")
    if start:
        end: datetime = (
            timefmt.parse(status["completionTime"])
            if status.get("completionTime")
            else timefmt.now()
        )
        took = duration((end - timefmt.parse(start)).total_seconds())
    else:
        took = ""
    return [
        job["metadata"]["name"],
        state,
        shown,
        took,
        _age(job["metadata"].get("creationTimestamp")),
    ]


def _pod_row(pod: JsonObj) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for entry in statuses:
        state = entry.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            terminated = state["terminated"]
            reason = terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        restarts,
        _age(pod["metadata"].get("creationTimestamp")),
    ]


_COLUMNS = {
    JOBS: ["Name", "Status", "Completions", "Duration", "Age"],
    PODS: ["Name", "Ready", "Status", "Restarts", "Age"],
}


def _row(rt: ResourceType, obj: JsonObj) -> list[Any]:
    if rt is JOBS:
        return _job_row(obj)
    if rt is PODS:
        return _pod_row(obj)
    return [
        obj["metadata"]["name"],
        (obj.get("status") or {}).get("phase", ""),
        _age(obj["metadata"].get("creationTimestamp")),
    ]


def table(rt: ResourceType, doc: JsonObj, include: str | None) -> JsonObj:
    items = doc.get("items", [doc])
    names = _COLUMNS.get(rt, ["Name", "Status", "Age"])
    columns = [
        {
            "name": name,
            "type": "integer" if name == "Restarts" else "string",
            "format": "name" if name == "Name" else "",
            "description": "",
            "priority": 0,
        }
        for name in names
    ]
    rows = []
    for obj in items:
        row: JsonObj = {"cells": _row(rt, obj)}
        if include == "Object":
            row["object"] = {"kind": rt.kind, "apiVersion": rt.api_version, **obj}
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    meta = {"resourceVersion": (doc.get("metadata") or {}).get("resourceVersion", "")}
    if "items" in doc and doc["metadata"].get("continue"):
        meta["continue"] = doc["metadata"]["continue"]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    }
