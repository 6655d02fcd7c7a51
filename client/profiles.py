"""Finding, loading and applying cluster profiles.

A profile is found by path, or by name in (first match wins) the directories of
``JOBGATE_PROFILE_PATH`` (colon-separated), ``~/.config/jobgate/profiles`` and the
profiles shipped with jobgate. An unknown name is an error that lists the known
names and the closest one; there is no fallback profile.

Merge order for a job: jobgate's built-in defaults, then the profile's
``defaults``, then what the job spec itself sets.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from jobgate.client.credentials import SECRET_REF_PREFIXES, redact_sensitive_map
from jobgate.client.errors import ProfileNotFoundError, SpecInvalidError
from jobgate.client.models import JobSpec
from jobgate.client.plain_data import PlainDataError, check_plain_data, load_yaml
from jobgate.client.profile_schema import (
    BACKEND_KINDS,
    UNKNOWN_BACKEND,
    ClusterProfile,
    profile_from_data,
)
from jobgate.client.validation import describe_yaml_error

USER_PROFILE_DIR = Path("~/.config/jobgate/profiles")
PROFILE_PATH_ENV = "JOBGATE_PROFILE_PATH"
BUILTIN = "built-in"

__all__ = [
    "ClusterProfile",
    "ProfileSource",
    "apply_defaults",
    "find_profiles",
    "load_profile",
    "parse_profile",
    "public_profile",
]


@dataclass(frozen=True)
class ProfileSource:
    """Where a profile of a given name comes from: a file, or jobgate's built-ins."""

    name: str
    origin: str

    def read(self) -> str:
        if self.origin == BUILTIN:
            return _builtin_files()[self.name].read_text(encoding="utf-8")
        return Path(self.origin).read_text(encoding="utf-8")

    def describe(self) -> str:
        return f"built-in profile {self.name}" if self.origin == BUILTIN else self.origin


def profile_dirs() -> list[Path]:
    """Directories searched for profiles by name, in order."""
    dirs = [Path(p) for p in os.environ.get(PROFILE_PATH_ENV, "").split(":") if p]
    dirs.append(USER_PROFILE_DIR.expanduser())
    return dirs


def _builtin_files() -> dict[str, Traversable]:
    return {
        f.name.removesuffix(".yaml"): f
        for f in resources.files("jobgate.profiles").iterdir()
        if f.name.endswith(".yaml")
    }


def find_profiles() -> dict[str, ProfileSource]:
    """Every profile that can be loaded by name, with the source that wins."""
    found = {name: ProfileSource(name, BUILTIN) for name in _builtin_files()}
    for directory in reversed(profile_dirs()):
        if directory.is_dir():
            for path in sorted(directory.glob("*.yaml")):
                found[path.stem] = ProfileSource(path.stem, str(path))
    return dict(sorted(found.items()))


def load_profile(name_or_path: str) -> ClusterProfile:
    """Load a profile by name or by path to a YAML file. Raises only ProfileNotFoundError
    (no such profile, an unreadable file) and SpecInvalidError (anything wrong with its
    content, naming the field: not UTF-8, bad YAML, too deep, invalid values)."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ProfileNotFoundError(f"profile file {path} does not exist")
        return parse_profile(_read(str(path), lambda: path.read_text("utf-8")), source=str(path))
    known = find_profiles()
    if name_or_path in known:
        source = known[name_or_path]
        return parse_profile(_read(source.describe(), source.read), source=source.describe())
    close = difflib.get_close_matches(name_or_path, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    raise ProfileNotFoundError(
        f"no cluster profile named {name_or_path!r}{hint} Known profiles: "
        f"{', '.join(known) or 'none'}. Add one as <name>.yaml to a directory in "
        f"{PROFILE_PATH_ENV} or {USER_PROFILE_DIR}, or pass a path."
    )


def _read(source: str, read: Callable[[], str]) -> str:
    """A profile file's text; SpecInvalidError if it is not UTF-8, ProfileNotFoundError if
    it cannot be read."""
    try:
        return read()
    except UnicodeDecodeError as e:
        raise SpecInvalidError(
            f"{source}: not UTF-8 text (byte {e.start}): save the profile as UTF-8"
        ) from None
    except (OSError, ValueError) as e:
        raise ProfileNotFoundError(f"profile {source} cannot be read: {e}") from None


def parse_profile(text: str, *, source: str) -> ClusterProfile:
    """Parse profile YAML; errors name the source and the line or the field."""
    try:
        data = load_yaml(text)
        check_plain_data(data)
    except PlainDataError as e:
        raise SpecInvalidError(f"{source}: invalid profile: {e}") from None
    except yaml.YAMLError as e:
        raise SpecInvalidError(f"{source}: not valid YAML: {describe_yaml_error(e)}") from e
    if not isinstance(data, dict):
        raise SpecInvalidError(f"{source}: a profile is a YAML mapping, got {type(data).__name__}")
    try:
        return profile_from_data(data)
    except ValidationError as e:
        problems = "; ".join(_problem(err) for err in e.errors(include_url=False))
        raise SpecInvalidError(f"{source}: invalid profile: {problems}") from e


def _problem(err: Any) -> str:
    """One validation error as 'field.path: message', in the words of a profile's author:
    without the model's tag in front, and naming the backend block that does not belong."""
    if err["type"] == UNKNOWN_BACKEND:
        return f"backend: {err['msg']}"
    tag, *loc = [str(part) for part in err["loc"]]
    if err["type"] == "extra_forbidden" and len(loc) == 1:
        if loc[0] in BACKEND_KINDS:
            return f"a {tag} profile cannot have a '{loc[0]}' block"
        if loc[0] == "containers":
            return "a kubernetes profile runs images itself: drop 'containers'"
    return f"{'.'.join(loc) or '(top)'}: {err['msg']}"


def public_profile(profile: ClusterProfile) -> dict[str, Any]:
    """The merged profile as plain data, with sensitive names' values redacted."""
    return redact_sensitive_map(profile.model_dump(mode="json"))


def apply_defaults(spec: JobSpec, profile: ClusterProfile) -> JobSpec:
    """The spec the cluster runs: the profile's defaults fill what the spec leaves unset.

    Default env values of the form ``env:NAME`` or ``k8s:<secret>/<key>`` are references:
    they join the spec's `secret_env` (resolved on the worker, or by Kubernetes), unless
    the spec sets that name.
    """
    data = spec.model_dump(mode="json", exclude_unset=True)
    resources_set = data.setdefault("resources", {})
    for field, value in profile.defaults.resources.model_dump(exclude_none=True).items():
        resources_set.setdefault(field, value)
    env, secret_env = dict(data.get("env", {})), dict(data.get("secret_env", {}))
    for name, value in profile.defaults.env.items():
        if name in env or name in secret_env:
            continue
        if value.startswith(SECRET_REF_PREFIXES):
            secret_env[name] = value
        else:
            env[name] = value
    data["env"], data["secret_env"] = env, secret_env
    return JobSpec.model_validate(data)
