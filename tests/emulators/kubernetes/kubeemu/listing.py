"""List requests: label and field selectors, limit/continue paging, and the List shape
(items carry no kind/apiVersion, as the API server encodes them)."""

from __future__ import annotations

import base64
import json
from typing import Any

from . import errors, selectors
from .cluster import Cluster
from .request import Request
from .resources import ResourceType

JsonObj = dict[str, Any]


class Filter:
    """A request's labelSelector and fieldSelector."""

    def __init__(self, rt: ResourceType, req: Request) -> None:
        self.labels = selectors.parse_labels(req.param("labelSelector") or "")
        self.fields = selectors.parse_fields(rt, req.param("fieldSelector") or "")

    def __call__(self, obj: JsonObj) -> bool:
        return selectors.labels_match(self.labels, obj) and selectors.fields_match(self.fields, obj)

    @property
    def empty(self) -> bool:
        return not self.labels and not self.fields


def _encode_continue(rv: int, last_key: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": last_key + "\x00"})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request(
            "continue key is not valid: the continue parameter is malformed"
        ) from None


def _key(obj: JsonObj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def bare(obj: JsonObj) -> JsonObj:
    """An item of a list: no kind or apiVersion."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def list_objects(cluster: Cluster, rt: ResourceType, namespace: str, req: Request) -> JsonObj:
    match = Filter(rt, req)
    items, rv = cluster.store.list(rt, namespace or None)
    items = [obj for obj in items if match(obj)]
    token = req.param("continue")
    if token:
        rv, start = _decode_continue(token)
        items = [obj for obj in items if _key(obj) >= start]
    meta: JsonObj = {"resourceVersion": str(rv)}
    limit = req.int_param("limit")
    if limit and limit > 0 and len(items) > limit:
        remaining = len(items) - limit
        items = items[:limit]
        meta["continue"] = _encode_continue(rv, _key(items[-1]))
        if match.empty:
            meta["remainingItemCount"] = remaining
    return {
        "kind": rt.list_kind,
        "apiVersion": rt.api_version,
        "metadata": meta,
        "items": [bare(obj) for obj in items],
    }
