"""`validate_job_spec`: a job spec from a dict, JSON or YAML text, or a file, with errors
a person can act on: one problem per line, the dotted field path, the offending
value (masked where the field looks secret), under ``Invalid job spec:``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from jobgate.client.credentials import MASK, is_sensitive_name
from jobgate.client.errors import SpecInvalidError
from jobgate.client.models import PLAIN_DATA_ERROR, JobSpec
from jobgate.client.plain_data import PlainDataError, load_yaml

SpecSource = JobSpec | Mapping[str, Any] | str | bytes | os.PathLike[str]
_SECRET_FIELDS = frozenset({"secret_env"})
_VALUE_CHARS = 60


def validate_job_spec(payload: SpecSource) -> JobSpec:
    """A validated JobSpec, or SpecInvalidError listing every problem (whatever the input:
    no other exception escapes, see tests/test_hostile_fuzz.py)."""
    if isinstance(payload, JobSpec):
        return payload
    data, source = _load(payload)
    if not isinstance(data, Mapping):
        raise SpecInvalidError(f"Invalid job spec:\n  {source}: a spec is a mapping of fields")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as e:
        secret = data.get("secret_names")
        marked = {n for n in secret if isinstance(n, str)} if isinstance(secret, list) else set()
        raise SpecInvalidError(format_spec_errors(e, source, marked)) from None


def _load(payload: SpecSource) -> tuple[Any, str]:
    if isinstance(payload, Mapping):
        return payload, "(spec)"
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SpecInvalidError(f"Invalid job spec:\n  (spec): not UTF-8 text: {e}") from None
    if isinstance(payload, os.PathLike) or (
        isinstance(payload, str)
        and "\n" not in payload
        and payload.endswith((".json", ".yaml", ".yml"))
    ):
        path = Path(payload)
        try:
            return _parse(path.read_text(encoding="utf-8"), str(path)), str(path)
        except (OSError, ValueError) as e:  # ValueError: not UTF-8, a NUL in the path
            raise SpecInvalidError(f"Invalid job spec:\n  {path}: cannot read: {e}") from None
    if isinstance(payload, str):
        return _parse(payload, "(spec)"), "(spec)"
    raise SpecInvalidError(
        f"Invalid job spec:\n  (spec): a {type(payload).__name__} is not a spec; "
        "pass a mapping, JSON or YAML text, or a path"
    )


def _parse(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise SpecInvalidError(f"Invalid job spec:\n  {source}: nests too deeply") from None
    except ValueError:
        pass
    try:
        return load_yaml(text)
    except PlainDataError as e:
        raise SpecInvalidError(f"Invalid job spec:\n  {source}: {e.problem}") from None
    except yaml.YAMLError as e:
        raise SpecInvalidError(f"Invalid job spec:\n  {source}: {describe_yaml_error(e)}") from None


def describe_yaml_error(error: yaml.YAMLError) -> str:
    """Where and what: 'line 2: while parsing a flow sequence; line 3: expected ...'."""
    parts = []
    for mark_name, text_name in (("context_mark", "context"), ("problem_mark", "problem")):
        mark, text = getattr(error, mark_name, None), getattr(error, text_name, None)
        if text:
            parts.append(f"line {mark.line + 1}: {text}" if mark is not None else str(text))
    return "; ".join(parts) or f"not valid YAML or JSON: {error}"


def format_spec_errors(
    error: ValidationError, source: str = "(spec)", secret_names: Collection[str] = ()
) -> str:
    """One line per problem: dotted path, message, the offending value (masked if secret:
    a sensitive name, or a name the spec lists in `secret_names`)."""
    lines = []
    for err in error.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        if err["type"] == PLAIN_DATA_ERROR:  # the problem is at a path of its own
            loc = [*loc, *str(err.get("ctx", {}).get("path", "")).split(".")]
            lines.append(f"  {'.'.join(p for p in loc if p) or source}: {err['msg']}")
            continue
        path = ".".join(loc) or source
        hidden = loc[:1] == ["env"] and bool(set(loc[1:2]) & set(secret_names))
        shown = MASK if hidden else _shown(loc, err.get("input"))
        value = "" if err["type"] == "missing" else f" (got {shown})"
        lines.append(f"  {path}: {err['msg']}{value}")
    return "Invalid job spec:\n" + "\n".join(lines)


def field_problems(error: ValidationError) -> str:
    """Every problem on one line: 'field.path: message; ...' (no input values)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
        for err in error.errors(include_url=False)
    )


def _shown(loc: list[str], value: Any) -> str:
    if any(part in _SECRET_FIELDS or is_sensitive_name(part) for part in loc):
        return MASK
    if isinstance(value, Mapping | list):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"
