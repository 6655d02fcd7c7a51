"""Legacy (unaggregated) discovery documents and /version.

kubectl 1.32 asks /api and /apis for aggregated discovery
(``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``) and falls
back to these documents when the answer's Content-Type is plain application/json.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from .resources import ResourceType, groups

JsonObj = dict[str, Any]

VERSION: JsonObj = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:03:04Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _hash(rt: ResourceType) -> str:
    digest = hashlib.sha256(f"{rt.api_version}/{rt.plural}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _resources(group: str) -> list[JsonObj]:
    out: list[JsonObj] = []
    for rt in groups()[group]:
        entry: JsonObj = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        entry["storageVersionHash"] = _hash(rt)
        out.append(entry)
        for sub, verbs in rt.subresources:
            out.append(
                {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": list(verbs),
                }
            )
    return out


def _group_version(group: str) -> JsonObj:
    version = groups()[group][0].version
    return {"groupVersion": f"{group}/{version}", "version": version}


def document(path: str, server_address: str) -> JsonObj | None:
    """The discovery document at ``path``, or None."""
    named = [g for g in groups() if g]
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }
    if path == "/api/v1":
        return {"kind": "APIResourceList", "groupVersion": "v1", "resources": _resources("")}
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [_group_version(g)],
                    "preferredVersion": _group_version(g),
                }
                for g in named
            ],
        }
    for group in named:
        gv = _group_version(group)
        if path == f"/apis/{group}":
            return {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": group,
                "versions": [gv],
                "preferredVersion": gv,
            }
        if path == f"/apis/{gv['groupVersion']}":
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": gv["groupVersion"],
                "resources": _resources(group),
            }
    return None
