"""Which resource a URL path names: /api/v1/..., /apis/{group}/{version}/..."""

from __future__ import annotations

from dataclasses import dataclass

from . import errors
from .resources import BY_GVR, ResourceType


@dataclass(frozen=True)
class ResourcePath:
    rt: ResourceType
    namespace: str  # "" for all namespaces / cluster-scoped
    name: str  # "" for the collection
    subresource: str


def parse(path: str) -> ResourcePath | None:
    """None when ``path`` is not a resource path; 404 for an unknown resource."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    rt = BY_GVR.get((group, version, rest[0]))
    if rt is None or len(rest) > 3:
        raise errors.path_not_found()
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) == 3 else ""
    if subresource and not rt.has_subresource(subresource):
        raise errors.path_not_found()
    if namespace and not rt.namespaced:
        raise errors.path_not_found()
    return ResourcePath(rt, namespace, name, subresource)


def verb(method: str, route: ResourcePath, watch: bool) -> str:
    """The authorization verb of a request."""
    if method == "GET":
        if route.name:
            return "watch" if watch else "get"
        return "watch" if watch else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if route.name else "deletecollection"
    raise errors.method_not_allowed()
