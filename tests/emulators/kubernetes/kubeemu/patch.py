"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic
merge patch that knows the merge keys of the lists a Job or Pod has.

Strategic merge: maps merge recursively, ``null`` deletes a key, lists named in
``MERGE_KEYS`` merge element by element on their key (``$patch: delete`` in an
element removes it), other lists are replaced. ``$setElementOrder/...``,
``$retainKeys`` and ``$deleteFromPrimitiveList/...`` directives are dropped.
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
ACCEPTED = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH)

# list field name -> merge key (from the Kubernetes API types' patchMergeKey tags)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "tolerations": "key",
    "hostAliases": "ip",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _is_directive(key: str) -> bool:
    return key.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/")) or key in (
        "$retainKeys",
        "$patch",
    )


def strategic_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not _is_directive(k)}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if _is_directive(key):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS:
            result[key] = _merge_list(result.get(key), value, MERGE_KEYS[key])
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(target: Any, patch: list[Any], key: str) -> list[Any]:
    if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return [copy.deepcopy(e) for e in patch if not (isinstance(e, dict) and "$patch" in e)]
    result = [copy.deepcopy(e) for e in target] if isinstance(target, list) else []
    for element in patch:
        if not isinstance(element, dict) or key not in element:
            result.append(copy.deepcopy(element))
            continue
        index = next(
            (i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == element[key]),
            None,
        )
        if element.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge({}, element))
        else:
            result[index] = strategic_merge(result[index], element)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise errors.bad_request(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def _read(doc: Any, path: str) -> Any:
    node = doc
    for part in _pointer(path):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, path: str) -> Any:
    parent, last = _parent(doc, _pointer(path))
    if isinstance(parent, list):
        parent.pop(int(last))
    else:
        del parent[last]
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise errors.bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    try:
        for op in operations:
            kind, path = op["op"], op["path"]
            if kind == "add":
                doc = _add(doc, path, copy.deepcopy(op["value"]))
            elif kind == "remove":
                doc = _remove(doc, path)
            elif kind == "replace":
                _read(doc, path)
                doc = _add(_remove(doc, path), path, copy.deepcopy(op["value"]))
            elif kind in ("move", "copy"):
                value = copy.deepcopy(_read(doc, op["from"]))
                if kind == "move":
                    doc = _remove(doc, op["from"])
                doc = _add(doc, path, value)
            elif kind == "test":
                if _read(doc, path) != op["value"]:
                    raise errors.ApiError(
                        422,
                        "Invalid",
                        f"the server rejected our request due to an error in "
                        f"our request: testing value {path} failed",
                    )
            else:
                raise errors.bad_request(f"Unexpected kind: {kind}")
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise errors.ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: {exc}",
        ) from exc
    return doc


def apply(content_type: str, target: Any, body: Any) -> Any:
    """The patched document; 415 for a patch type the emulator does not take."""
    media = content_type.split(";", 1)[0].strip()
    if media == MERGE_PATCH:
        return merge_patch(target, body)
    if media == STRATEGIC_MERGE_PATCH:
        return strategic_merge(target, body)
    if media == JSON_PATCH:
        return json_patch(target, body)
    if media == APPLY_PATCH:
        raise errors.unsupported_media_type(media, ACCEPTED[:2] + ACCEPTED[3:]).with_message(
            "server-side apply (application/apply-patch+yaml) is not emulated by kubeemu"
        )
    raise errors.unsupported_media_type(media, ACCEPTED)
