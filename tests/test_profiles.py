"""Cluster profiles: the built-ins, the search path, merging, and errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from jobgate.client import JobSpec
from jobgate.client.errors import ProfileNotFoundError, SpecInvalidError
from jobgate.client.profile_schema import profile_from_data
from jobgate.client.profiles import apply_defaults, find_profiles, load_profile, public_profile


@pytest.mark.parametrize("name", ["local", "slurm", "lsf", "kubernetes"])
def test_every_builtin_profile_loads_with_its_backend_block(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.backend == name
    assert getattr(profile, name) is not None
    assert find_profiles()[name].origin == "built-in"


def test_the_block_of_the_backend_defaults_and_the_others_are_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: plain\nbackend: slurm\n")
    assert load_profile(str(plain)).slurm is not None
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("name: wrong\nbackend: slurm\nlsf:\n  queue: normal\n")
    with pytest.raises(SpecInvalidError, match="a slurm profile cannot have a 'lsf' block"):
        load_profile(str(wrong))


def test_search_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, home = tmp_path / "a", tmp_path / "b", tmp_path / "home"
    user_dir = home / ".config" / "jobgate" / "profiles"
    for directory in (first, second, user_dir):
        directory.mkdir(parents=True)
    (first / "local.yaml").write_text(
        "name: local\npoll_interval_min_s: 7\npoll_interval_max_s: 7\n"
    )
    (second / "local.yaml").write_text(
        "name: local\npoll_interval_min_s: 8\npoll_interval_max_s: 8\n"
    )
    (user_dir / "mine.yaml").write_text("name: mine\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("JOBGATE_PROFILE_PATH", f"{first}:{second}")
    assert load_profile("local").poll_interval_min_s == 7  # first directory wins over built-in
    assert load_profile("mine").name == "mine"  # ~/.config/jobgate/profiles
    assert find_profiles()["local"].origin == str(first / "local.yaml")


def test_unknown_name_lists_known_names_and_closest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBGATE_PROFILE_PATH", "")
    with pytest.raises(ProfileNotFoundError) as info:
        load_profile("lsv")
    assert "did you mean 'lsf'" in str(info.value)
    assert "Known profiles: kubernetes, local, lsf, slurm" in str(info.value)


def test_yaml_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nlocal:\n  work_dir: [unclosed\n")
    with pytest.raises(SpecInvalidError, match=rf"{path}: not valid YAML: line 3: while parsing"):
        load_profile(str(path))


@pytest.mark.parametrize(
    ("yaml_text", "complaint"),
    [
        ("name: t\npoll_intervall_s: 3\n", "poll_intervall_s: Extra inputs are not permitted"),
        ("name: Bad_Name\n", "name: String should match pattern"),
        ("name: t\nbackend: pbs\n", "backend: Input should be 'local', 'slurm', 'lsf' or"),
        ("name: t\npoll_interval_min_s: 9\npoll_interval_max_s: 3\n", "below poll_interval_min_s"),
        ("name: t\ndefaults:\n  env:\n    API_TOKEN: abc123\n", "API_TOKEN looks secret"),
        ("name: t\nbackend: lsf\nlsf:\n  extra_directives: ['-q x']\n", "starting '#BSUB '"),
        ("name: t\nbackend: lsf\nlsf:\n  extra_directives: [\"#BSUB -q x\\nrm -rf /\"]\n",
         "String should match pattern"),
        ("name: t\nstorage:\n  prefix: s3://bkt/p\n  logs: '{prefix}/{user}/{filename}'\n",
         "unknown placeholder(s) ['user']"),
        ("name: t\nstorage:\n  prefix: s3://bkt\n  credentials:\n    access_key_id: AKIA\n"
         "    secret_access_key: env:S\n", "credentials.access_key_id: String should match"),
    ],
)  # fmt: skip
def test_invalid_profiles_say_what_is_wrong(tmp_path: Path, yaml_text: str, complaint: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(yaml_text)
    with pytest.raises(SpecInvalidError) as info:
        load_profile(str(path))
    assert complaint in str(info.value)
    assert str(path) in str(info.value)
    assert "abc123" not in str(info.value)


def test_merge_order_builtin_then_profile_then_job() -> None:
    profile = load_profile("slurm")  # defaults: cpus 1, memory 2000, walltime 3600, OMP=1
    merged = apply_defaults(JobSpec(name="j", command="true"), profile)
    assert (merged.resources.cpus, merged.resources.memory_mb, merged.resources.walltime_s) == (
        1, 2000, 3600)  # fmt: skip
    assert merged.resources.gpus == 0  # jobgate's built-in default
    assert merged.env == {"OMP_NUM_THREADS": "1"}
    own = JobSpec(
        name="j",
        command="true",
        resources={"memory_mb": 64, "cpus": 4},
        env={"OMP_NUM_THREADS": "4"},
    )
    merged = apply_defaults(own, profile)
    assert (merged.resources.cpus, merged.resources.memory_mb, merged.resources.walltime_s) == (
        4, 64, 3600)  # fmt: skip
    assert merged.env == {"OMP_NUM_THREADS": "4"}


def test_default_env_references_become_secret_env() -> None:
    merged = apply_defaults(JobSpec(name="j", command="true"), load_profile("kubernetes"))
    assert merged.secret_env == {"API_TOKEN": "k8s:jobs-api/token"}
    assert "API_TOKEN" not in merged.env


def test_public_profile_redacts_sensitive_names() -> None:
    shown = public_profile(load_profile("kubernetes"))
    assert shown["defaults"]["env"]["API_TOKEN"] == "<redacted>"
    assert shown["kubernetes"]["namespace"] == "jobs"
    assert shown["storage"] == "<unset>"


@pytest.mark.parametrize("backend", ["local", "slurm", "lsf", "kubernetes"])
def test_a_profile_published_with_every_block_still_loads(backend: str) -> None:
    """Before profiles were one model per backend, every profile carried every backend's
    block (null but its own) and `containers`; workers published them so."""
    blocks = {kind: None for kind in ("local", "slurm", "lsf", "kubernetes")}
    published = {"name": "old", "backend": backend, **blocks, backend: {}, "containers": None}
    profile = profile_from_data(published)
    assert profile.backend == backend
    assert getattr(profile, backend) is not None
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        profile_from_data({**published, "lsf" if backend != "lsf" else "slurm": {}})
