"""A minimal OpenAPI v3 discovery: /openapi/v3 lists one document per group-version,
and each document has the paths of its resources with their operations and query
parameters, but no schemas.

That is what kubectl 1.32 needs: before ``apply``/``create`` it asks /openapi/v3 (and,
when that is missing, /openapi/v2) whether the PATCH operation of the kind takes the
``fieldValidation`` query parameter; when it does, kubectl leaves validation to the
server (``fieldValidation=Strict``) instead of validating against a downloaded schema.
Without schemas kubectl computes its strategic merge patches from its compiled-in types.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import ALL, ResourceType

JsonObj = dict[str, Any]

_QUERY = {
    "get": ["pretty"],
    "list": [
        "allowWatchBookmarks",
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "timeoutSeconds",
        "watch",
    ],
    "post": ["dryRun", "fieldManager", "fieldValidation"],
    "put": ["dryRun", "fieldManager", "fieldValidation"],
    "patch": ["dryRun", "fieldManager", "fieldValidation", "force"],
    "delete": ["dryRun", "gracePeriodSeconds", "propagationPolicy"],
}


def _gv_path(rt: ResourceType) -> str:
    return f"api/{rt.version}" if not rt.group else f"apis/{rt.group}/{rt.version}"


def _operation(rt: ResourceType, method: str, action: str) -> JsonObj:
    return {
        "operationId": f"{action}{rt.kind}",
        "parameters": [
            {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for name in _QUERY[method]
        ],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
    }


def _paths(rt: ResourceType) -> JsonObj:
    base = f"/{_gv_path(rt)}"
    if rt.namespaced:
        base += "/namespaces/{namespace}"
    collection = f"{base}/{rt.plural}"
    item = f"{collection}/{{name}}"
    return {
        collection: {
            "get": _operation(rt, "list", "list"),
            "post": _operation(rt, "post", "post"),
        },
        item: {
            "get": _operation(rt, "get", "get"),
            "put": _operation(rt, "put", "put"),
            "patch": _operation(rt, "patch", "patch"),
            "delete": _operation(rt, "delete", "delete"),
        },
    }


def _documents() -> dict[str, JsonObj]:
    docs: dict[str, JsonObj] = {}
    for rt in ALL:
        doc = docs.setdefault(
            _gv_path(rt),
            {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": "v1.32.4"},
                "paths": {},
                "components": {"schemas": {}},
            },
        )
        doc["paths"].update(_paths(rt))
    return docs


DOCUMENTS = _documents()


def _hash(doc: JsonObj) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128].upper()


def document(path: str) -> JsonObj | None:
    """/openapi/v3 (the index) or /openapi/v3/<group-version path>, or None."""
    if path == "/openapi/v3":
        return {
            "paths": {
                gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_hash(doc)}"}
                for gv, doc in DOCUMENTS.items()
            }
        }
    prefix = "/openapi/v3/"
    if path.startswith(prefix):
        return DOCUMENTS.get(path[len(prefix) :])
    return None
