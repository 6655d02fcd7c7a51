"""DELETE: preconditions, propagationPolicy and the finalizers it implies, and what
the answer is (k8s.io/apiserver/pkg/registry/generic/registry/store.go Delete,
pkg/registry/batch/job/storage: batch/v1 Jobs orphan their pods by default, with a
warning; pkg/registry/core/pod: a pod's DELETE answers the pod)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import errors, gc, timefmt
from .cluster import Cluster
from .crud import get
from .resources import JOBS, NAMESPACES, PODS, ResourceType

JsonObj = dict[str, Any]

DELETE_WARNING = (
    '299 - "child pods are preserved by default when jobs are deleted; set '
    "propagationPolicy=Background to remove them or set propagationPolicy=Orphan to "
    'suppress this warning"'
)


@dataclass(frozen=True)
class DeleteOptions:
    propagation: str | None
    grace_s: int | None
    uid: str | None
    resource_version: str | None

    @classmethod
    def read(cls, body: Any, query_policy: str | None, query_grace: int | None) -> DeleteOptions:
        body = body if isinstance(body, dict) else {}
        policy = body.get("propagationPolicy") or query_policy
        orphan = body.get("orphanDependents")
        if policy is None and orphan is not None:
            policy = "Orphan" if orphan else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.bad_request(
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported '
                f'value: "{policy}": supported values: "Foreground", "Background", "Orphan", '
                f"nil"
            )
        preconditions = body.get("preconditions") or {}
        grace = body.get("gracePeriodSeconds")
        return cls(
            policy,
            grace if grace is not None else query_grace,
            preconditions.get("uid"),
            preconditions.get("resourceVersion"),
        )


def _deleted_status(rt: ResourceType, obj: JsonObj) -> JsonObj:
    details: JsonObj = {"name": obj["metadata"]["name"]}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.plural
    details["uid"] = obj["metadata"]["uid"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def delete(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    options: DeleteOptions,
    dry_run: bool,
) -> tuple[JsonObj, dict[str, str]]:
    """The answer to a DELETE (object or Status) and its extra headers."""
    headers: dict[str, str] = {}
    with cluster.store.cond:
        obj = get(cluster, rt, namespace, name)
        meta = obj["metadata"]
        if options.uid and options.uid != meta["uid"]:
            raise errors.ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {rt.qualified} "{name}": Precondition '
                f"failed: UID in precondition: {options.uid}, UID in object meta: {meta['uid']}",
            )
        if options.resource_version and options.resource_version != meta["resourceVersion"]:
            raise errors.conflict(rt, name)
        if dry_run:
            return obj, headers
        if rt is PODS:
            return gc.delete_pod(cluster, namespace, name, options.grace_s), headers
        if rt is NAMESPACES:
            return _delete_namespace(cluster, name), headers
        if meta.get("deletionTimestamp"):
            return obj, headers
        policy = options.propagation
        if policy is None and rt is JOBS:
            headers["Warning"] = DELETE_WARNING
            policy = "Orphan"  # batch/v1 Job's DefaultGarbageCollectionPolicy
        elif policy is None:
            policy = "Background"  # the generic registry's default
        if policy == "Background":
            gone = cluster.store.remove(rt, namespace, name)
            uid = meta["uid"]
            cluster.later(lambda: gc.delete_dependents(cluster, uid))
            return _deleted_status(rt, gone or obj), headers
        finalizer = "orphan" if policy == "Orphan" else "foregroundDeletion"

        def mark(current: JsonObj) -> None:
            current["metadata"]["deletionTimestamp"] = timefmt.rfc3339(timefmt.now())
            current["metadata"]["deletionGracePeriodSeconds"] = 0
            finalizers = current["metadata"].setdefault("finalizers", [])
            if finalizer not in finalizers:
                finalizers.append(finalizer)

        marked = cluster.store.mutate(rt, namespace, name, mark)
    cluster.later(lambda: gc.finish(cluster, rt, namespace, name, policy))
    return marked or obj, headers


def _delete_namespace(cluster: Cluster, name: str) -> JsonObj:
    def mark(current: JsonObj) -> None:
        current["metadata"]["deletionTimestamp"] = timefmt.rfc3339(timefmt.now())
        current["status"] = {"phase": "Terminating"}

    marked = cluster.store.mutate(NAMESPACES, "", name, mark)
    cluster.later(lambda: gc.delete_namespace_contents(cluster, name))
    assert marked is not None
    return marked
