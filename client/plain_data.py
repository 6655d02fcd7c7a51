"""Limits on untrusted plain data: specs and profiles as parsed from JSON or YAML, or as
handed in as mappings.

Everything jobgate stores is JSON in Redis, read by Lua scripts, Celery and Flower, so
a string must be valid Unicode (a lone surrogate such as ``"\\ud800"`` is not, and
cannot be encoded), and nesting must stay shallow enough for every recursive reader
(json, PyYAML, pydantic, cjson). Checking both once, up front and without recursion,
turns what would be a crash deep inside one of them into an error naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

#: Deeper than any spec or profile needs (a volume in a Kubernetes block is 4 levels).
MAX_DEPTH = 32


class PlainDataError(ValueError):
    """A value that cannot be stored: `path` (dotted, like pydantic's) and the problem."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


def _joined(path: str, part: object) -> str:
    return f"{path}.{part}" if path else str(part)


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise PlainDataError(
            path or "(top)",
            f"is not valid Unicode text (a lone surrogate at position {e.start})",
        ) from None


def check_plain_data(data: object, max_depth: int = MAX_DEPTH) -> None:
    """PlainDataError naming the first string that is not valid Unicode (keys included)
    or the first value nested deeper than `max_depth`. Shared values (YAML aliases) are
    looked at once."""
    stack: list[tuple[object, str, int]] = [(data, "", 0)]
    seen: set[int] = set()
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value, path)
            continue
        if not isinstance(value, Mapping | list | tuple) or id(value) in seen:
            continue
        seen.add(id(value))
        if depth >= max_depth:
            raise PlainDataError(path or "(top)", f"nests deeper than {max_depth} levels")
        if isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str):
                    _check_text(key, _joined(path, "(key)"))
                stack.append((item, _joined(path, key), depth + 1))
        else:
            stack.extend((item, _joined(path, i), depth + 1) for i, item in enumerate(value))


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, with the crashes hostile text can cause turned into
    PlainDataError: nesting deeper than Python's recursion limit, and integers longer
    than Python converts (4,300 digits). Bad YAML is still yaml.YAMLError."""
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise PlainDataError("(top)", "nests too deeply") from None
    except ValueError as e:
        raise PlainDataError("(top)", f"cannot be read: {e}") from None
