"""The policy preflight: each check, its thresholds from the profile, and the summary."""

from __future__ import annotations

from typing import Any

import pytest

from jobgate.client import JobSpec
from jobgate.client.models import PolicyFinding, PolicyLevel
from jobgate.client.policy import blocking, evaluate_policy, summarize_preflight
from jobgate.client.profile_schema import ClusterProfile, profile_from_data

BLOCK, WARN, PASS = PolicyLevel.BLOCK, PolicyLevel.WARN, PolicyLevel.PASS


def profile(backend: str = "slurm", **policy: Any) -> ClusterProfile:
    return profile_from_data({"name": "c", "backend": backend, "policy": policy})


def spec(**fields: Any) -> JobSpec:
    fields.setdefault("command", "true")
    return JobSpec.model_validate({"name": "j", **fields})


def codes(findings: list[PolicyFinding]) -> dict[str, PolicyLevel]:
    return {f.code: f.level for f in findings}


@pytest.mark.parametrize(
    ("resources", "policy", "code"),
    [
        ({"cpus": 65}, {"max_cpus": 64}, "cpus-over-max"),
        ({"memory_mb": 9000}, {"max_memory_mb": 8000}, "memory-over-max"),
        ({"gpus": 5}, {"max_gpus": 4}, "gpus-over-max"),
        ({"walltime_s": 90000}, {"max_walltime_s": 86400}, "walltime-over-max"),
    ],
)
def test_resources_over_the_maximum_are_blocked(
    resources: dict[str, int], policy: dict[str, int], code: str
) -> None:
    over = evaluate_policy(spec(resources={"walltime_s": 1, **resources}), profile(**policy))
    assert codes(over)[code] is BLOCK
    assert "allows" in next(f.message for f in over if f.code == code)
    (limit,) = policy.values()
    within = dict.fromkeys(resources, limit)  # at the limit is allowed
    fine = evaluate_policy(spec(resources={"walltime_s": 1, **within}), profile(**policy),
                           include_passes=True)  # fmt: skip
    assert codes(fine)[code] is PASS


def test_array_size_over_the_maximum_is_blocked() -> None:
    assert codes(evaluate_policy(spec(array="0-99"), profile(max_array_size=50)))[
        "array-over-max"] is BLOCK  # fmt: skip


def test_missing_walltime_warns_only_when_asked() -> None:
    assert codes(evaluate_policy(spec(), profile()))["walltime-missing"] is WARN
    assert "walltime-missing" not in codes(
        evaluate_policy(spec(), profile(warn_missing_walltime=False))
    )


@pytest.mark.parametrize(
    "command",
    ["sleep infinity", "echo start; sleep inf", "tail -f /dev/null", "while true; do sleep 1; done",
     ["sleep", "infinity"]],
)  # fmt: skip
def test_never_ending_commands_are_blocked(command: str | list[str]) -> None:
    assert codes(evaluate_policy(spec(command=command), profile()))["never-ending-command"] is BLOCK
    off = evaluate_policy(spec(command=command), profile(block_sleep_infinity=False))
    assert "never-ending-command" not in codes(off)


def test_ordinary_commands_pass_the_never_ending_check() -> None:
    findings = evaluate_policy(
        spec(command="sleep 10; tail -n 5 log"), profile(), include_passes=True
    )
    assert codes(findings)["never-ending-command"] is PASS


def k8s(**policy: Any) -> ClusterProfile:
    return profile("kubernetes", **policy)


def test_containers_only_where_the_backend_runs_them() -> None:
    assert (
        codes(evaluate_policy(spec(image="python:3.11"), profile()))["image-unsupported"] is BLOCK
    )
    assert codes(evaluate_policy(spec(), k8s()))["image-missing"] is BLOCK


def test_privileged_and_hostpath_are_blocked() -> None:
    risky = spec(image="python:3.11", kubernetes={
        "privileged": True,
        "volumes": [{"name": "root", "mount_path": "/host", "host_path": "/"}],
    })  # fmt: skip
    found = codes(evaluate_policy(risky, k8s()))
    assert found["privileged-container"] is BLOCK
    assert found["hostpath-volume"] is BLOCK


@pytest.mark.parametrize(
    ("image", "level"),
    [
        ("python:3.11", PASS),  # docker.io/library/python:3.11
        ("ghcr.io/our-lab/tool:1", PASS),
        ("ghcr.io/other/tool:1", BLOCK),
        ("evil.example.com/python:3.11", BLOCK),
        ("ghcr.io/our-lab-fork/tool:1", BLOCK),  # a prefix of a path, not of a name
    ],
)
def test_images_must_come_from_allowed_registries(image: str, level: PolicyLevel) -> None:
    policy = k8s(allowed_registries=["docker.io/library", "ghcr.io/our-lab"])
    found = evaluate_policy(spec(image=image), policy, include_passes=True)
    assert codes(found)["image-registry"] is level


def test_namespaces_outside_the_allowed_list_are_blocked() -> None:
    policy = k8s(allowed_namespaces=["jobs"])
    inside = spec(image="python:3.11", kubernetes={"namespace": "jobs"})
    outside = spec(image="python:3.11", kubernetes={"namespace": "kube-system"})
    assert codes(evaluate_policy(inside, policy, include_passes=True))["namespace"] is PASS
    assert codes(evaluate_policy(outside, policy))["namespace"] is BLOCK


def test_requests_different_from_limits_warn() -> None:
    mismatched = spec(image="python:3.11", resources={"cpus": 1, "memory_mb": 512},
                      kubernetes={"limits": {"cpus": 4, "memory_mb": 512}})  # fmt: skip
    assert codes(evaluate_policy(mismatched, k8s()))["requests-limits-mismatch"] is WARN
    quiet = evaluate_policy(mismatched, k8s(warn_request_limit_mismatch=False))
    assert "requests-limits-mismatch" not in codes(quiet)


def test_options_for_another_backend_warn_and_files_without_storage_block() -> None:
    found = codes(evaluate_policy(spec(lsf={"directives": ["-x"]}, outputs=["a.txt"]), profile()))
    assert found["options-ignored"] is WARN
    assert found["storage-missing"] is BLOCK
    stored = profile_from_data(
        {"name": "c", "backend": "slurm", "storage": {"prefix": "s3://bucket/jobs"}}
    )
    assert "storage-missing" not in codes(evaluate_policy(spec(outputs=["a.txt"]), stored))
    with_storage = profile_from_data({"name": "c", "backend": "kubernetes",
                                      "storage": {"prefix": "s3://bucket/jobs"}})  # fmt: skip
    staged = spec(image="python:3.11", inputs=["./a"], outputs=["b/**"])
    assert blocking(evaluate_policy(staged, with_storage)) == []  # Kubernetes stages too


def test_nothing_ran_is_told_apart_from_all_passed() -> None:
    quiet = profile(warn_missing_walltime=False, block_sleep_infinity=False)
    assert evaluate_policy(spec(), quiet, include_passes=True) == []  # no check applied
    assert summarize_preflight([]) == (PASS, "")
    passed = evaluate_policy(spec(resources={"walltime_s": 60}), profile(max_cpus=4),
                             include_passes=True)  # fmt: skip
    assert codes(passed) == {
        "cpus-over-max": PASS, "walltime-missing": PASS, "never-ending-command": PASS}  # fmt: skip
    assert evaluate_policy(spec(resources={"walltime_s": 60}), profile(max_cpus=4)) == []
    assert summarize_preflight(passed) == (PASS, "")


def test_summary_is_the_worst_level_and_a_line_per_problem() -> None:
    findings = evaluate_policy(spec(command="sleep infinity", resources={"cpus": 9}),
                               profile(max_cpus=8), include_passes=True)  # fmt: skip
    level, text = summarize_preflight(findings)
    assert level is BLOCK
    lines = text.splitlines()
    assert "BLOCK cpus-over-max: asks for 9 cpus; cluster c allows 8" in lines
    assert any(line.startswith("BLOCK never-ending-command:") for line in lines)
    assert any(line.startswith("WARN walltime-missing:") for line in lines)
    assert not any(line.startswith("PASS") for line in lines)
