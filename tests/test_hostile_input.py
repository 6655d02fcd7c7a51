"""Hostile input from inside a tenant: what used to crash is an error naming the field,
a failed create writes nothing, and a value can be marked secret whatever its name."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.result import AsyncResult

from jobgate.client import (
    ClusterNotServedWarning,
    Gateway,
    JobSpec,
    JobStatus,
    SpecInvalidError,
    ids,
    load_profile,
    validate_job_spec,
)
from jobgate.client.models import JobRecord, Transition
from jobgate.client.profiles import parse_profile
from tests.support.redis_dump import tenant_values
from tests.support.waiting import TIMEOUT_S
from tests.support.workers import ProfileFactory, WorkerFactory

BASE = {"name": "hostile", "command": "true"}


@pytest.mark.parametrize(
    ("extra", "field", "problem"),
    [
        ({"array": "0-5:0"}, "array", "the step must be at least 1"),
        ({"array": "0-2%99999999999999999999999"}, "array", "must be <= 100000"),
        ({"array": "0-2%100001"}, "array.max_concurrent", "less than or equal to 100000"),
        ({"array": "\u0663-\u0665"}, "array", "is not N, A-B or A-B:STEP"),
        ({"array": "1-3%\u0662"}, "array", "after '%' is not a number"),
        ({"array": "0,99999999999"}, "array", "indices must be <= 4000000"),
        ({"array": {"indices": [5_000_000]}}, "array.indices", "indices must be <= 4000000"),
        ({"command": "echo \ud800"}, "command", "lone surrogate"),
        ({"command": ["echo", "a\udfff"]}, "command.1", "lone surrogate"),
        ({"env": {"PLAIN": "\ud800"}}, "env.PLAIN", "lone surrogate"),
        ({"env": {"API_TOKEN": "\ud800abc"}}, "env.API_TOKEN", "lone surrogate"),
        ({"tags": ["\ud800"]}, "tags.0", "lone surrogate"),
        ({"labels": {"a\ud800": "x"}}, "labels.(key)", "lone surrogate"),
    ],
)
def test_input_that_crashed_is_an_error_naming_the_field(
    extra: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(SpecInvalidError) as refused:
        validate_job_spec({**BASE, **extra})
    line = next(line for line in str(refused.value).splitlines() if problem in line)
    assert line.startswith(f"  {field}: "), line


def test_deep_nesting_in_a_spec_is_an_error_not_a_recursion_crash() -> None:
    for text in ("[" * 100_000, "{\"a\": " * 100_000, "a:\n" + "".join(
            "  " * i + "-\n" for i in range(3000))):  # fmt: skip
        with pytest.raises(SpecInvalidError, match=r"\(spec\): nests too deeply"):
            validate_job_spec(text)
    nested: Any = "x"
    for _ in range(100_000):
        nested = [nested]
    with pytest.raises(SpecInvalidError, match=r"tags(\.0)+: nests deeper than 32 levels"):
        validate_job_spec({**BASE, "tags": nested})


def test_other_text_a_parser_chokes_on_is_an_error() -> None:
    with pytest.raises(SpecInvalidError, match="cannot be read: Exceeds the limit"):
        validate_job_spec("name: x\ncpus: " + "1" * 5000)
    with pytest.raises(SpecInvalidError, match="cannot read: embedded null byte"):
        validate_job_spec("spec\x00.json")


def test_unicode_digits_never_count_but_ascii_ones_still_do() -> None:
    spec = validate_job_spec({**BASE, "array": "3-5:1%2"})
    assert spec.array is not None
    assert (spec.array.indices, spec.array.max_concurrent) == ([3, 4, 5], 2)


def test_a_profile_that_is_not_utf8_deep_or_broken_unicode_is_a_profile_error(
    tmp_path: Path,
) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecInvalidError, match=f"{latin1}: not UTF-8 text .*save the profile"):
        load_profile(str(latin1))
    with pytest.raises(SpecInvalidError, match=r"deep: invalid profile: \(top\): nests too"):
        parse_profile("[" * 100_000, source="deep")
    deep = "name: x\npolicy:\n" + "".join("  " * i + "  a:\n" for i in range(40))
    with pytest.raises(SpecInvalidError, match="deeper than 32 levels"):
        parse_profile(deep, source="deep")
    with pytest.raises(SpecInvalidError, match=r"big: invalid profile: \(top\): cannot be read"):
        parse_profile("name: x\nretention_s: " + "9" * 5000, source="big")
    # Billion laughs: aliases are shared, so checking them costs one look each.
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)
    )
    with pytest.raises(SpecInvalidError, match="invalid profile"):
        parse_profile(laughs, source="laughs")


def _record(gateway: Gateway, spec: JobSpec) -> JobRecord:
    job_id = ids.new_job_id(gateway.store.now())
    at = ids.created_at(job_id)
    return JobRecord(id=job_id, cluster="local", owner="tester", name=spec.name, spec=spec,
                     result_id="r", status=JobStatus.NEW, created_at=at, updated_at=at,
                     history=[Transition(status=JobStatus.NEW, at=at)])  # fmt: skip


def test_a_failed_create_writes_nothing(gateway: Gateway) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusterNotServedWarning)
        with pytest.raises(SpecInvalidError, match=r"env\.API_TOKEN: is not valid Unicode"):
            gateway.submit({**BASE, "env": {"API_TOKEN": "\ud800abc"}}, "local")
    assert tenant_values(gateway) == ""
    # The store's own script decodes everything before its first write: a secret it
    # cannot decode leaves no half-written job hash behind.
    record = _record(gateway, JobSpec.model_validate(BASE))
    with pytest.raises(redis.ResponseError, match=r"cjson|[Uu]nicode"):
        gateway.store.create(record, {"API_TOKEN": "\ud800abc"})
    assert tenant_values(gateway) == ""


def test_secret_names_keep_any_value_out_of_the_record_and_the_result(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    secret, password = "plainly-s3cret-APITOKEN", "plainly-s3cret-DBPASS"
    start_worker(make_profile())
    seen = tmp_path / "seen"
    spec = JobSpec(
        name="marked", command=f'echo "$APITOKEN $DB_PASS $PLAIN" > {seen}',
        env={"APITOKEN": secret, "DB_PASS": password, "PLAIN": "shown"},
        secret_names=["APITOKEN", "DB_PASS"],
    )  # fmt: skip
    job = gateway.submit(spec, "local")
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert seen.read_text() == f"{secret} {password} shown\n"  # the job got the values
    assert record.spec.env == {"APITOKEN": "<redacted>", "DB_PASS": "<redacted>", "PLAIN": "shown"}
    final = AsyncResult(job.result_id, app=gateway.celery).get(timeout=TIMEOUT_S)
    for place, text in {"record": record.model_dump_json(), "result": str(final),
                        "redis": tenant_values(gateway)}.items():  # fmt: skip
        assert secret not in text, f"a marked secret is in the {place}"
        assert password not in text, f"a marked secret is in the {place}"


def test_secret_names_must_name_env_values_and_are_masked_in_errors() -> None:
    with pytest.raises(SpecInvalidError, match="secret_names DB_PASS: not in env"):
        validate_job_spec({**BASE, "secret_names": ["DB_PASS"]})
    with pytest.raises(SpecInvalidError) as refused:
        validate_job_spec({**BASE, "env": {"DB_PASS": "hunter2\x00"}, "secret_names": ["DB_PASS"]})
    assert "env.DB_PASS: Value error" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    spec = validate_job_spec(
        {**BASE, "env": {"DB_PASS": "x", "A": "y"}, "secret_names": ["DB_PASS"]}
    )
    assert spec.secret_values() == {"DB_PASS": "x"}
    assert spec.redacted().env == {"DB_PASS": "<redacted>", "A": "y"}
