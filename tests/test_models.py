"""The contract models: validation, array specs, aggregate status, ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from jobgate.client import ids
from jobgate.client.errors import SpecInvalidError
from jobgate.client.models import (
    ACTIVE_STATES,
    FINISHED_STATES,
    ArraySpec,
    ElementState,
    JobSpec,
    JobStatus,
    aggregate_elements,
)


def test_status_predicates_and_sets() -> None:
    assert JobStatus.PENDING.is_pending
    assert JobStatus.NEW.is_pending
    assert JobStatus.RUNNING.is_running
    assert not JobStatus.RUNNING.is_finished
    assert {s for s in JobStatus if s.is_finished} == FINISHED_STATES
    assert {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED} == FINISHED_STATES
    assert set(JobStatus) == ACTIVE_STATES | FINISHED_STATES
    assert not ACTIVE_STATES & FINISHED_STATES
    assert JobStatus.active_states() == ACTIVE_STATES


@pytest.mark.parametrize(
    ("text", "indices", "limit"),
    [
        ("0-4%2", [0, 1, 2, 3, 4], 2),
        ("7", [7], None),
        ("1,3,5-7", [1, 3, 5, 6, 7], None),
        ("0-10:5%1", [0, 5, 10], 1),
        ("3,1,3", [1, 3], None),
    ],
)
def test_array_text_parses(text: str, indices: list[int], limit: int | None) -> None:
    spec = ArraySpec.model_validate(text)
    assert spec.indices == indices
    assert spec.max_concurrent == limit


@pytest.mark.parametrize("text", ["", "a-b", "4-1", "0-4%", "0-4%x", "1,,2", "-1", "0-200000"])
def test_bad_array_text_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        ArraySpec.model_validate(text)


@given(
    st.lists(st.integers(0, 500), min_size=1, max_size=40), st.one_of(st.none(), st.integers(1, 9))
)
def test_array_text_round_trips(indices: list[int], limit: int | None) -> None:
    spec = ArraySpec(indices=indices, max_concurrent=limit)
    again = ArraySpec.model_validate(spec.model_dump())
    assert again == spec
    assert again.indices == sorted(set(indices))


def test_spec_round_trips_through_json() -> None:
    spec = JobSpec(
        name="arr", command=["echo", "a b"], array="0-4%2", tags=["b", "a", "b"], env={"X": "1"}
    )
    again = JobSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert again.tags == ["a", "b"]
    assert spec.model_dump()["array"] == "0-4%2"


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "x"},  # neither command nor script
        {"name": "x", "command": "true", "script": "#!/bin/sh\ntrue"},
        {"name": "x", "command": "true", "colour": "blue"},  # unknown field
        {"name": "../etc", "command": "true"},
        {"name": "x", "command": []},
        {"name": "x", "command": "true", "env": {"BAD-NAME": "1"}},
        {"name": "x", "command": "true", "env": {"A": "nul\x00"}},
        {"name": "x", "command": "true", "working_dir": "relative/dir"},
        {"name": "x", "command": "true", "resources": {"cpus": 0}},
        {"name": "x", "command": "true", "tags": ["has space"]},
    ],
)
def test_invalid_specs_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate(fields)


def _element(index: int, status: JobStatus, code: int | None = None) -> ElementState:
    return ElementState(index=index, status=status, exit_code=code)


def test_aggregate_is_finished_only_when_every_element_is() -> None:
    done = [_element(0, JobStatus.SUCCEEDED, 0), _element(1, JobStatus.PENDING)]
    assert aggregate_elements(done)[0] is JobStatus.RUNNING
    pending = [_element(0, JobStatus.PENDING), _element(1, JobStatus.PENDING)]
    assert aggregate_elements(pending)[0] is JobStatus.PENDING


def test_aggregate_fails_if_any_element_failed() -> None:
    status, code, reason = aggregate_elements(
        [
            _element(0, JobStatus.SUCCEEDED, 0),
            _element(1, JobStatus.FAILED, 3),
            _element(2, JobStatus.CANCELLED),
        ]
    )
    assert (status, code) == (JobStatus.FAILED, 3)
    assert reason == "1 of 3 elements failed (indices 1)"


def test_aggregate_succeeds_when_all_succeed() -> None:
    assert aggregate_elements([_element(i, JobStatus.SUCCEEDED, 0) for i in range(3)]) == (
        JobStatus.SUCCEEDED,
        0,
        None,
    )


def test_job_ids_sort_by_creation_time_and_encode_it() -> None:
    earlier = ids.new_job_id(1_700_000_000.0)
    later = ids.new_job_id(1_700_000_000.002)
    assert earlier < later
    assert ids.created_at(earlier) == datetime.fromtimestamp(1_700_000_000, tz=UTC)
    assert ids.JOB_ID_PATTERN.match(later)
    assert ids.time_prefix(ids.created_at(later)) == later[:10]


@pytest.mark.parametrize("bad", ["", "x", "../../etc/passwd", "A" * 26, "0" * 25 + "!"])
def test_malformed_job_ids_are_refused(bad: str) -> None:
    with pytest.raises(SpecInvalidError, match="not a jobgate id"):
        ids.check_job_id(bad)
