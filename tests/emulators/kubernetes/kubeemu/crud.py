"""Create, read, update, patch and delete, with what the generic registry and the
Job and Pod strategies do around each (k8s.io/apiserver/pkg/registry/generic/registry,
pkg/registry/batch/job, pkg/registry/core/pod)."""

from __future__ import annotations

import copy
from typing import Any

from . import errors, jobs, naming, patch, pods, secrets
from .cluster import Cluster, new_namespace, stamp
from .resources import JOBS, NAMESPACES, PODS, SECRETS, ResourceType

JsonObj = dict[str, Any]


def _check_type(rt: ResourceType, body: Any) -> JsonObj:
    if not isinstance(body, dict):
        raise errors.bad_request(f"the body of the request is not a {rt.kind} object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind not in (None, "", rt.kind):
        raise errors.bad_request(
            f"the kind of the provided object ({kind}) does not match the resource ({rt.qualified})"
        )
    if api_version not in (None, "", rt.api_version):
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version})"
        )
    meta = body.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    body["kind"], body["apiVersion"] = rt.kind, rt.api_version
    return body


def _match_namespace(rt: ResourceType, meta: JsonObj, namespace: str) -> None:
    if not rt.namespaced:
        meta.pop("namespace", None)
        return
    if meta.get("namespace") not in (None, "", namespace):
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    meta["namespace"] = namespace


def prepare_new(cluster: Cluster, rt: ResourceType, namespace: str, body: Any) -> JsonObj:
    """BeforeCreate: defaults, server fields, the strategy's additions, validation."""
    obj = _check_type(rt, body)
    meta = obj["metadata"]
    _match_namespace(rt, meta, namespace)
    if rt.namespaced:
        cluster.require_namespace(namespace)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = naming.generate(str(meta["generateName"]))
    causes = naming.metadata_name_causes(meta)
    name = meta.get("name") or ""
    if causes:
        raise errors.invalid(rt, name if isinstance(name, str) else "", causes)
    stamp(meta)
    if rt is JOBS:
        jobs.apply_defaults(obj)
        causes = jobs.validate_create(obj)
        if causes:
            raise errors.invalid(rt, name, causes)
        meta["generation"] = 1
        jobs.generate_selector(obj)
        obj["status"] = {}
    elif rt is PODS:
        pods.apply_defaults(obj)
        causes = pods.validate_create(obj)
        if causes:
            raise errors.invalid(rt, name, causes)
        obj["status"] = pods.initial_status(obj)
    elif rt is SECRETS:
        causes = secrets.normalize(obj)
        if causes:
            raise errors.invalid(rt, name, causes)
    elif rt is NAMESPACES:
        fresh = new_namespace(name)
        fresh["metadata"]["labels"].update(meta.get("labels") or {})
        if meta.get("annotations"):
            fresh["metadata"]["annotations"] = meta["annotations"]
        obj = fresh
    return obj


def create(cluster: Cluster, rt: ResourceType, namespace: str, body: Any, dry_run: bool) -> JsonObj:
    obj = prepare_new(cluster, rt, namespace, body)
    meta = obj["metadata"]
    with cluster.store.cond:
        if cluster.store.get(rt, meta.get("namespace", ""), meta["name"]) is not None:
            raise errors.already_exists(rt, meta["name"])
        if dry_run:
            return obj
        return cluster.store.insert(rt, obj)


def get(cluster: Cluster, rt: ResourceType, namespace: str, name: str) -> JsonObj:
    obj = cluster.store.get(rt, namespace, name)
    if obj is None:
        raise errors.not_found(rt, name)
    return obj


def _with_server_fields(rt: ResourceType, old: JsonObj, body: JsonObj, subresource: str) -> JsonObj:
    if subresource == "status":
        new = copy.deepcopy(old)
        new["status"] = copy.deepcopy(body.get("status") or {})
        return new
    new = copy.deepcopy(body)
    new["kind"], new["apiVersion"] = rt.kind, rt.api_version
    if "status" in old:
        new["status"] = copy.deepcopy(old["status"])
    meta, old_meta = new["metadata"], old["metadata"]
    for field in (
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ):
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    if rt is JOBS:
        jobs.apply_defaults(new)
        if not meta.get("labels"):
            meta["labels"] = dict(
                (new["spec"]["template"].get("metadata") or {}).get("labels") or {}
            )
    elif rt is PODS:
        pods.apply_defaults(new)
    elif rt is SECRETS:
        causes = secrets.normalize(new)
        if causes:
            raise errors.invalid(rt, meta.get("name", ""), causes)
    if "generation" in old_meta and new.get("spec") != old.get("spec"):
        meta["generation"] = old_meta["generation"] + 1
    return new


def _validate_update(rt: ResourceType, old: JsonObj, new: JsonObj) -> None:
    name = old["metadata"]["name"]
    if rt is JOBS:
        causes = jobs.validate_update(old, new)
    elif rt is PODS:
        causes = _pod_update_causes(old, new)
    else:
        causes = []
    if causes:
        raise errors.invalid(rt, name, causes)


def _pod_update_causes(old: JsonObj, new: JsonObj) -> list[errors.Cause]:
    def without_images(spec: JsonObj) -> JsonObj:
        spec = copy.deepcopy(spec)
        for key in ("containers", "initContainers"):
            for container in spec.get(key) or []:
                container.pop("image", None)
        spec.pop("activeDeadlineSeconds", None)
        spec.pop("tolerations", None)
        return spec

    if without_images(old.get("spec") or {}) != without_images(new.get("spec") or {}):
        return [
            errors.Cause(
                "FieldValueForbidden",
                "spec",
                "Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                "it was previously negative)",
            )
        ]
    return []


def _store_update(
    cluster: Cluster, rt: ResourceType, old: JsonObj, new: JsonObj, dry_run: bool
) -> JsonObj:
    _validate_update(rt, old, new)
    if dry_run or new == old:
        return new
    meta = new["metadata"]
    if (
        meta.get("deletionTimestamp")
        and not meta.get("finalizers")
        and old["metadata"].get("finalizers")
    ):
        # the last finalizer is gone from an object being deleted: it goes now
        stored = cluster.store.replace(rt, new)
        cluster.store.remove(rt, meta.get("namespace", ""), meta["name"])
        return stored
    return cluster.store.replace(rt, new)


def update(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    body: Any,
    subresource: str,
    dry_run: bool,
) -> JsonObj:
    obj = _check_type(rt, body)
    meta = obj["metadata"]
    if meta.get("name") != name:
        raise errors.bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL "
            f"({name})"
        )
    _match_namespace(rt, meta, namespace)
    with cluster.store.cond:
        old = get(cluster, rt, namespace, name)
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rt, name)
        new = _with_server_fields(rt, old, obj, subresource)
        return _store_update(cluster, rt, old, new, dry_run)


def patch_object(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    content_type: str,
    body: Any,
    subresource: str,
    dry_run: bool,
) -> JsonObj:
    with cluster.store.cond:
        old = get(cluster, rt, namespace, name)
        patched = patch.apply(content_type, old, body)
        obj = _check_type(rt, patched)
        meta = obj["metadata"]
        if meta.get("name") != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        _match_namespace(rt, meta, namespace)
        if meta.get("resourceVersion") not in (None, old["metadata"]["resourceVersion"]):
            raise errors.conflict(rt, name)
        new = _with_server_fields(rt, old, obj, subresource)
        return _store_update(cluster, rt, old, new, dry_run)
