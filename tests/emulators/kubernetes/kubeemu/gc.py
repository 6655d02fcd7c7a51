"""The garbage collector's share of deletion: dependents of a deleted Job (its pods,
found by ownerReferences) are deleted (Background, Foreground) or released
(Orphan), and pods with a grace period go away once the "kubelet" has stopped them."""

from __future__ import annotations

from typing import Any

from . import timefmt
from .cluster import Cluster
from .resources import JOBS, NAMESPACES, PODS, SECRETS, ResourceType

JsonObj = dict[str, Any]


def dependents(cluster: Cluster, owner_uid: str) -> list[JsonObj]:
    return cluster.store.find(
        PODS,
        lambda pod: any(
            ref.get("uid") == owner_uid for ref in pod["metadata"].get("ownerReferences") or []
        ),
    )


def remove_pod(cluster: Cluster, namespace: str, name: str) -> JsonObj | None:
    gone = cluster.store.remove(PODS, namespace, name)
    if gone is not None:
        cluster.logs.drop_pod(namespace, name)
    return gone


def delete_pod(cluster: Cluster, namespace: str, name: str, grace_s: int | None) -> JsonObj:
    """Delete a pod as the API server and kubelet do together: one that is not on a
    node, has finished, or gets no grace period goes at once; a running one gets a
    deletionTimestamp and goes after the GC delay. Returns the pod as answered."""
    with cluster.store.cond:
        pod = cluster.store.get(PODS, namespace, name)
        assert pod is not None
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return pod
        phase = (pod.get("status") or {}).get("phase")
        grace = grace_s if grace_s is not None else pod["spec"].get("terminationGracePeriodSeconds")
        if not pod["spec"].get("nodeName") or phase in ("Succeeded", "Failed") or grace == 0:
            return remove_pod(cluster, namespace, name) or pod

        def mark(obj: JsonObj) -> None:
            obj["metadata"]["deletionTimestamp"] = timefmt.rfc3339(timefmt.now())
            obj["metadata"]["deletionGracePeriodSeconds"] = grace

        marked = cluster.store.mutate(PODS, namespace, name, mark)

    def kubelet_stopped() -> None:
        remove_pod(cluster, namespace, name)

    cluster.later(kubelet_stopped)
    return marked or pod


def delete_dependents(cluster: Cluster, owner_uid: str) -> None:
    for pod in dependents(cluster, owner_uid):
        meta = pod["metadata"]
        delete_pod(cluster, meta["namespace"], meta["name"], None)


def orphan_dependents(cluster: Cluster, owner_uid: str) -> None:
    for pod in dependents(cluster, owner_uid):
        meta = pod["metadata"]

        def release(obj: JsonObj) -> None:
            refs = [
                r for r in obj["metadata"].get("ownerReferences") or [] if r["uid"] != owner_uid
            ]
            if refs:
                obj["metadata"]["ownerReferences"] = refs
            else:
                obj["metadata"].pop("ownerReferences", None)

        cluster.store.mutate(PODS, meta["namespace"], meta["name"], release)


def finish(cluster: Cluster, rt: ResourceType, namespace: str, name: str, policy: str) -> None:
    """Process the ``orphan`` / ``foregroundDeletion`` finalizer, then remove the owner."""
    obj = cluster.store.get(rt, namespace, name)
    if obj is None:
        return
    uid = obj["metadata"]["uid"]
    if policy == "Orphan":
        orphan_dependents(cluster, uid)
    else:
        for pod in dependents(cluster, uid):
            remove_pod(cluster, pod["metadata"]["namespace"], pod["metadata"]["name"])
    cluster.store.remove(rt, namespace, name)


def delete_namespace_contents(cluster: Cluster, namespace: str) -> None:
    for rt in (JOBS, PODS, SECRETS):
        items, _ = cluster.store.list(rt, namespace)
        for item in items:
            if rt is PODS:
                remove_pod(cluster, namespace, item["metadata"]["name"])
            else:
                cluster.store.remove(rt, namespace, item["metadata"]["name"])
    cluster.store.remove(NAMESPACES, "", namespace)
