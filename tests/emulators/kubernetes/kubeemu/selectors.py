"""Label selectors (k8s.io/apimachinery/pkg/labels) and field selectors.

Labels: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``,
``a>3``, ``a<3``; a comma joins requirements (AND).
Fields: ``path=value``, ``path==value``, ``path!=value`` on the paths each resource
supports, joined by commas.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import errors
from .resources import JOBS, NAMESPACES, PODS, ResourceType

_KEY = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_NOT_EXISTS = re.compile(rf"!\s*({_KEY})")
_SET = re.compile(rf"({_KEY})\s+(in|notin)\s*\(([^()]*)\)")
_EQUALITY = re.compile(rf"({_KEY})\s*(==|=|!=)\s*({_VALUE})")
_NUMERIC = re.compile(rf"({_KEY})\s*(<|>)\s*(-?\d+)")
_EXISTS = re.compile(_KEY)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "<", ">"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if not present:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number < bound if self.op == "<" else number > bound


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _bad_selector(text: str, why: str) -> errors.ApiError:
    return errors.bad_request(f'unable to parse requirement: {why} (selector "{text}")')


def parse_labels(text: str) -> list[Requirement]:
    """Parse a labelSelector; 400 BadRequest when it does not parse."""
    if not text.strip():
        return []
    out = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise _bad_selector(text, "found '', expected: identifier")
        if m := _NOT_EXISTS.fullmatch(part):
            out.append(Requirement(m[1], "!"))
        elif m := _SET.fullmatch(part):
            values = tuple(v.strip() for v in m[3].split(","))
            if any(not re.fullmatch(_VALUE, v) for v in values):
                raise _bad_selector(text, f"invalid label value in {part!r}")
            out.append(Requirement(m[1], m[2], values))
        elif m := _EQUALITY.fullmatch(part):
            op = "=" if m[2] in ("=", "==") else "!="
            out.append(Requirement(m[1], op, (m[3],)))
        elif m := _NUMERIC.fullmatch(part):
            out.append(Requirement(m[1], m[2], (m[3],)))
        elif _EXISTS.fullmatch(part):
            out.append(Requirement(part, "exists"))
        else:
            raise _bad_selector(text, f"cannot parse {part!r}")
    return out


def labels_match(requirements: list[Requirement], obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


def _get(path: str) -> Callable[[Mapping[str, Any]], str]:
    def read(obj: Mapping[str, Any]) -> str:
        node: Any = obj
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, bool):
            return "true" if node else "false"
        return "" if node is None else str(node)

    return read


def _job_successful(obj: Mapping[str, Any]) -> str:
    return str((obj.get("status") or {}).get("succeeded") or 0)


_FIELDS: dict[ResourceType, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    JOBS: {
        "metadata.name": _get("metadata.name"),
        "metadata.namespace": _get("metadata.namespace"),
        "status.successful": _job_successful,
    },
    PODS: {
        path: _get(path)
        for path in (
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        )
    },
    NAMESPACES: {"metadata.name": _get("metadata.name"), "status.phase": _get("status.phase")},
}


@dataclass(frozen=True)
class FieldRequirement:
    read: Callable[[Mapping[str, Any]], str]
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (self.read(obj) == self.value) == self.equal


def parse_fields(rt: ResourceType, text: str) -> list[FieldRequirement]:
    """Parse a fieldSelector for ``rt``; 400 BadRequest for an unknown field."""
    out: list[FieldRequirement] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(==|=|!=)\s*(.*)", part)
        if m is None:
            raise errors.bad_request(f"invalid field selector: {part!r}")
        field, op, value = m[1], m[2], m[3]
        if field not in _FIELDS[rt]:
            raise errors.bad_request(f"field label not supported: {field}")
        out.append(FieldRequirement(_FIELDS[rt][field], op != "!=", value))
    return out


def fields_match(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(r.matches(obj) for r in requirements)
