"""Fuzzing the three doors hostile input comes through: `validate_job_spec`,
`load_profile` and `Gateway.submit`. Whatever arrives (any text, any nesting, any
Unicode, lone surrogates included) only documented errors come out, what is accepted can
be stored, and a refused submit leaves nothing in Redis."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobgate.client import (
    ClusterNotServedWarning,
    Gateway,
    JobSpec,
    PolicyBlockedError,
    ProfileNotFoundError,
    SpecInvalidError,
    load_profile,
    validate_job_spec,
)
from jobgate.client.errors import JobTimeoutError
from jobgate.client.profiles import parse_profile

FUZZ = settings(max_examples=150, deadline=None)

#: Any code point, surrogates and other scripts' digits included.
anything = st.characters(codec=None, exclude_categories=())
texts = st.text(anything, max_size=40)
hostile_texts = st.sampled_from(
    ["0-5:0", "0-2%99999999999999999999999", "\u0663-\u0665", "\ud800abc", "env:JOBGATE_URL",
     "--output=/home/victim/.bashrc", "1" * 5000, "[" * 2000, "a\x00b", "", " ", "*"]
) | texts  # fmt: skip
scalars = st.none() | st.booleans() | st.integers() | st.floats() | hostile_texts
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_texts, inner, max_size=4),
    max_leaves=30,
)


def deep(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


FIELDS = ["command", "script", "image", "resources", "env", "secret_env", "secret_names",
          "working_dir", "array", "run_id", "tags", "labels", "outputs", "depends_on", "lsf",
          "slurm", "kubernetes"]  # fmt: skip
specs = st.fixed_dictionaries(
    {"name": st.sampled_from(["fuzz", "Fuzz", "\ud800", "a" * 70]) | hostile_texts},
    optional={
        **{f: nested for f in FIELDS},
        "command": st.sampled_from(["true", "echo \ud800"]) | hostile_texts | st.lists(texts),
        "env": st.dictionaries(st.sampled_from(["A", "API_TOKEN", "DB_PASS"]) | texts, scalars),
        "array": hostile_texts,
        "tags": st.builds(deep, nested, st.integers(0, 200)),
    },
)
payloads = specs | st.builds(lambda d, n: d * n, st.sampled_from(["[", "{\"a\":", "- "]),
                             st.integers(1, 50_000)) | texts | st.binary(max_size=60)  # fmt: skip


@FUZZ
@given(payloads)
def test_validate_job_spec_raises_only_spec_invalid(payload: Any) -> None:
    try:
        spec = validate_job_spec(payload)
    except SpecInvalidError as e:
        str(e).encode("utf-8")  # the message itself can be printed and logged
        return
    assert isinstance(spec, JobSpec)
    spec.model_dump_json()  # what is accepted can be stored


PROFILE_FIELDS = ["backend", "policy", "defaults", "slurm", "lsf", "local", "storage",
                  "retention_s"]  # fmt: skip
profiles = st.fixed_dictionaries(
    {"name": st.sampled_from(["c", "\ud800"]) | hostile_texts},
    optional={
        **{f: nested for f in PROFILE_FIELDS},
        "backend": st.sampled_from(["local", "slurm", "lsf", "kubernetes"]) | nested,
    },
)


def yaml_text(data: Any) -> str:
    return json.dumps(data)  # JSON is YAML; lone surrogates survive as \\ud800 escapes


@FUZZ
@given(st.builds(yaml_text, profiles) | texts | st.builds(lambda n: "a:\n" + "".join(
    "  " * i + "- x:\n" for i in range(n)), st.integers(0, 2000)))  # fmt: skip
def test_parse_profile_raises_only_profile_errors(text: str) -> None:
    try:
        parse_profile(text, source="fuzz")
    except SpecInvalidError as e:
        str(e).encode("utf-8")


@FUZZ
@given(st.binary(max_size=200) | st.builds(lambda t: t.encode("utf-8", "surrogatepass"), texts))
def test_load_profile_raises_only_profile_errors(content: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="jobgate-fuzz-") as directory:
        path = Path(directory) / "fuzz.yaml"
        path.write_bytes(content)
        try:
            load_profile(str(path))
        except (SpecInvalidError, ProfileNotFoundError) as e:
            str(e).encode("utf-8")


def _keys(gateway: Gateway) -> set[str]:
    return set(gateway.store.redis.scan_iter(match=f"jobgate:{gateway.tenant}:*", count=1000))


@settings(FUZZ, max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=specs)
def test_submit_raises_only_documented_errors_and_leaves_no_partial_record(
    gateway: Gateway, payload: dict[str, Any]
) -> None:
    before = _keys(gateway)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusterNotServedWarning)  # no worker: jobs just wait
        try:
            job = gateway.submit(payload, "fuzz")
        except (SpecInvalidError, PolicyBlockedError, JobTimeoutError) as e:
            str(e).encode("utf-8")
            assert _keys(gateway) == before, "a refused submit wrote to Redis"
            return
    record = gateway.store.get(job.id)  # whole: it reads back
    assert record.spec.name == payload["name"]
    assert gateway.store.redis.zscore(gateway.keys.index_all, job.id) is not None
