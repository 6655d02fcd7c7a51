"""validate_job_spec: every way a spec arrives, errors a person can act on, nothing smuggled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jobgate.client import JobSpec, validate_job_spec
from jobgate.client.errors import SpecInvalidError

SPEC = {"name": "fit", "command": "python fit.py", "resources": {"cpus": 2}}


def test_a_spec_arrives_as_dict_json_yaml_path_or_bytes(tmp_path: Path) -> None:
    expected = JobSpec.model_validate(SPEC)
    yaml_text = "name: fit\ncommand: python fit.py\nresources:\n  cpus: 2\n"
    (tmp_path / "spec.yaml").write_text(yaml_text)
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    for payload in (SPEC, json.dumps(SPEC), yaml_text, json.dumps(SPEC).encode(),
                    tmp_path / "spec.yaml", str(tmp_path / "spec.json"), expected):  # fmt: skip
        assert validate_job_spec(payload) == expected


def test_errors_are_one_per_line_with_path_and_value() -> None:
    with pytest.raises(SpecInvalidError) as info:
        validate_job_spec({"name": "Fit_Model", "command": "x", "resources": {"cpus": 0},
                           "tags": ["ok", "not ok"], "colour": "red"})  # fmt: skip
    lines = str(info.value).splitlines()
    assert lines[0] == "Invalid job spec:"
    label = "'^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'"
    assert f"  name: String should match pattern {label} (got 'Fit_Model')" in lines
    assert "  resources.cpus: Input should be greater than or equal to 1 (got 0)" in lines
    assert any(line.startswith("  tags.1: String should match pattern") for line in lines)
    assert "  colour: Extra inputs are not permitted (got 'red')" in lines
    assert len(lines) == 5


def test_missing_fields_and_bad_shapes() -> None:
    with pytest.raises(SpecInvalidError, match=r"\n  name: Field required$"):
        validate_job_spec({"command": "x"})
    with pytest.raises(SpecInvalidError, match="a spec is a mapping of fields"):
        validate_job_spec("- just\n- a list\n")
    with pytest.raises(
        SpecInvalidError, match=r"\(spec\): line 2: while parsing a flow sequence; line 3"
    ):
        validate_job_spec("name: x\ncommand: [unclosed\n")


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecInvalidError, match=f"{tmp_path / 'nope.yaml'}: cannot read"):
        validate_job_spec(tmp_path / "nope.yaml")


def test_secret_values_are_masked_in_errors() -> None:
    with pytest.raises(SpecInvalidError) as info:
        validate_job_spec({"name": "x", "command": "y", "env": {"API_TOKEN": "hunter22\x00"},
                           "secret_env": {"DB": "hunter33"}})  # fmt: skip
    text = str(info.value)
    assert "hunter22" not in text
    assert "hunter33" not in text
    assert "env.API_TOKEN: Value error, contains a NUL byte (got ***)" in text
    assert "secret_env.DB: String should match pattern" in text


def test_pydantic_errors_never_echo_input_values() -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec(name="x", command="y", env={"PASSWORD": "hunter44\x00"})
    assert "hunter44" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "a/b"), ("name", "a\\b"), ("name", "a..b"), ("name", "a\nb"), ("name", "a\x00b"),
        ("name", "UPPER"), ("name", "-lead"), ("name", "x" * 64),
        ("run_id", "../x"), ("tags", ["a/b"]), ("tags", ["a\nb"]),
        ("env", {"A/B": "1"}), ("env", {"A\nB": "1"}), ("env", {"..": "1"}),
        ("inputs", [{"src": "x", "dest": "../x"}]), ("inputs", [{"src": "x", "dest": "/etc/x"}]),
        ("inputs", [{"src": "x", "dest": "a/../../x"}]), ("inputs", [".."]), ("inputs", ["x\x00"]),
        ("inputs", ["a/x", "b/x"]), ("outputs", ["a\\b"]), ("outputs", ["../x"]),
        ("outputs", ["/etc/*"]), ("outputs", ["x\x00"]), ("outputs", ["[a"]),
        ("working_dir", "/data/../etc"), ("working_dir", "relative"), ("working_dir", "/a\nb"),
        ("lsf", {"directives": ["-q normal\n#BSUB -x"]}),
        ("lsf", {"directives": ["-q normal\rrm -rf /"]}),
        ("lsf", {"directives": ["#BSUB -q normal"]}),
        ("lsf", {"extra_args": ["-q\nx"]}), ("slurm", {"extra_args": ["--x\x00"]}),
        ("command", "echo\x00hi"), ("command", ["echo", "a\x00"]),
        ("resources", {"queue": "q;rm"}), ("resources", {"account": "a b"}),
    ],
)  # fmt: skip
def test_dangerous_names_ids_directives_and_files_are_refused(field: str, value: Any) -> None:
    spec: dict[str, Any] = {"name": "ok", "command": "true", field: value}
    with pytest.raises(SpecInvalidError, match=rf"^Invalid job spec:\n  {field}"):
        validate_job_spec(spec)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    [*JobSpec.model_fields, "resources", "colour", ""]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(field_names, json_values, max_size=8))
def test_any_mapping_validates_or_raises_the_documented_error(payload: dict[str, Any]) -> None:
    assert_validates_or_is_refused(payload)


@settings(max_examples=300, deadline=None)
@given(st.text() | st.binary())
def test_any_text_validates_or_raises_the_documented_error(payload: str | bytes) -> None:
    assert_validates_or_is_refused(payload)


def assert_validates_or_is_refused(payload: Any) -> None:
    """A JobSpec comes back, or SpecInvalidError; any other exception fails the test."""
    outcome: JobSpec | SpecInvalidError
    try:
        outcome = validate_job_spec(payload)
    except SpecInvalidError as e:
        outcome = e
    assert isinstance(outcome, JobSpec) or str(outcome).startswith("Invalid job spec:")
