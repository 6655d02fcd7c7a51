"""Cluster profiles: how one cluster is reached and run, loaded from YAML.

A profile is found by path, or by name in (first match wins) the directories of
``JOBGATE_PROFILE_PATH`` (colon-separated), ``~/.config/jobgate/profiles`` and the
profiles shipped with jobgate. An unknown name is an error that lists the known
names; there is no fallback profile.
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobgate.client.errors import ProfileNotFoundError, SpecInvalidError
from jobgate.client.models import ClusterName, EnvName

USER_PROFILE_DIR = Path("~/.config/jobgate/profiles")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalSettings(_Model):
    """The local backend: jobs are processes on the worker's own host."""

    work_dir: str = "~/.local/state/jobgate/local"
    max_parallel: int | None = Field(
        default=None, ge=1, description="array elements run at once when the spec sets no %N"
    )
    cancel_grace_s: float = Field(default=5.0, gt=0, le=300)


class ClusterProfile(_Model):
    """One cluster as a worker serves it: backend, polling cadence, retention."""

    name: ClusterName
    backend: Literal["local"] = "local"
    local: LocalSettings = Field(default_factory=LocalSettings)
    poll_interval_s: float = Field(default=5.0, gt=0, le=600)
    lease_ttl_s: float | None = Field(
        default=None, gt=0, description="poll chain lease; default 3 poll intervals + 10 s"
    )
    reconcile_interval_s: float = Field(default=30.0, gt=0, le=3600)
    resubmit_after_s: float = Field(
        default=600.0, gt=0, description="re-send submit for a job still NEW after this long"
    )
    retention_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="how long finished job records are kept"
    )
    env: dict[EnvName, str] = Field(default_factory=dict)

    @property
    def effective_lease_ttl_s(self) -> float:
        return self.lease_ttl_s or 3 * self.poll_interval_s + 10


def profile_dirs() -> list[Path]:
    """Directories searched for profiles by name, in order."""
    dirs = [Path(p) for p in os.environ.get("JOBGATE_PROFILE_PATH", "").split(":") if p]
    dirs.append(USER_PROFILE_DIR.expanduser())
    return dirs


def _builtin_names() -> dict[str, str]:
    files = resources.files("jobgate.profiles")
    return {
        f.name.removesuffix(".yaml"): f.read_text(encoding="utf-8")
        for f in files.iterdir()
        if f.name.endswith(".yaml")
    }


def known_profile_names() -> list[str]:
    names = set(_builtin_names())
    for directory in profile_dirs():
        if directory.is_dir():
            names.update(p.stem for p in directory.glob("*.yaml"))
    return sorted(names)


def load_profile(name_or_path: str) -> ClusterProfile:
    """Load a profile by name or by path to a YAML file."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ProfileNotFoundError(f"profile file {path} does not exist")
        return parse_profile(path.read_text(encoding="utf-8"), source=str(path))
    for directory in profile_dirs():
        path = directory / f"{name_or_path}.yaml"
        if path.is_file():
            return parse_profile(path.read_text(encoding="utf-8"), source=str(path))
    builtin = _builtin_names()
    if name_or_path in builtin:
        return parse_profile(builtin[name_or_path], source=f"built-in profile {name_or_path}")
    known = known_profile_names()
    close = difflib.get_close_matches(name_or_path, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ProfileNotFoundError(
        f"no cluster profile named {name_or_path!r}{hint} Known profiles: {', '.join(known)}. "
        "Add one as <name>.yaml to a directory in JOBGATE_PROFILE_PATH or "
        f"{USER_PROFILE_DIR}, or pass a path."
    )


def parse_profile(text: str, *, source: str) -> ClusterProfile:
    """Parse profile YAML; errors name the source, and the line or the field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SpecInvalidError(f"{source}:{where} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise SpecInvalidError(f"{source}: a profile is a YAML mapping, got {type(data).__name__}")
    try:
        return ClusterProfile.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()
        )
        raise SpecInvalidError(f"{source}: invalid profile: {problems}") from e
