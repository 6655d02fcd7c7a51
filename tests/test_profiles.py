"""Profile loading: built-ins, search path, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobgate.client.errors import ProfileNotFoundError, SpecInvalidError
from jobgate.client.profiles import load_profile


def test_builtin_local_profile_loads() -> None:
    profile = load_profile("local")
    assert profile.name == "local"
    assert profile.backend == "local"
    assert profile.poll_interval_s == 1


def test_profile_path_env_is_searched_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "local.yaml").write_text("name: local\npoll_interval_s: 7\n")
    monkeypatch.setenv("JOBGATE_PROFILE_PATH", str(tmp_path))
    assert load_profile("local").poll_interval_s == 7


def test_unknown_name_lists_known_names_and_closest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBGATE_PROFILE_PATH", "")
    with pytest.raises(ProfileNotFoundError) as info:
        load_profile("lokal")
    assert "did you mean 'local'" in str(info.value)
    assert "Known profiles: local" in str(info.value)


def test_yaml_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nlocal:\n  work_dir: [unclosed\n")
    with pytest.raises(SpecInvalidError, match=rf"{path}: line \d+ is not valid YAML"):
        load_profile(str(path))


def test_unknown_field_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\npoll_intervall_s: 3\n")
    with pytest.raises(SpecInvalidError, match="poll_intervall_s: Extra inputs are not permitted"):
        load_profile(str(path))


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileNotFoundError, match="does not exist"):
        load_profile(str(tmp_path / "nope.yaml"))
