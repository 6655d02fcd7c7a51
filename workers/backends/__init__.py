"""Backends by name; each is imported only when a profile asks for it.

Each backend whose scheduler needs several modules is a package
(``slurm/``, ``lsf/``, ``kubernetes/``: the backend, its pure script or manifest
and status functions, its API); the pieces they share sit beside them: `base` (the
interface), `batch` (what Slurm and LSF share), `jobfiles` (files of script-running
jobs), `commands` (running scheduler commands), `programs` (what a job runs, with
which environment) and `local`.
"""

from __future__ import annotations

import importlib
from typing import Any

from jobgate.client.errors import ConfigurationError
from jobgate.client.profile_schema import ClusterProfile
from jobgate.workers.backends.base import Backend, JobSubmission, LogChunk

__all__ = ["Backend", "JobSubmission", "LogChunk", "get_backend"]

#: backend kind -> (module, class, extra that provides its dependencies)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "local": ("jobgate.workers.backends.local", "LocalBackend", "worker"),
    "slurm": ("jobgate.workers.backends.slurm", "SlurmBackend", "worker"),
    "lsf": ("jobgate.workers.backends.lsf", "LsfBackend", "worker"),
    "kubernetes": ("jobgate.workers.backends.kubernetes", "KubernetesBackend", "kubernetes"),
}


def get_backend(profile: ClusterProfile) -> Backend[Any]:
    """The backend for a profile's kind, loaded on first use."""
    try:
        module_name, class_name, extra = _REGISTRY[profile.backend]
    except KeyError:
        raise ConfigurationError(
            f"profile {profile.name!r}: the {profile.backend} backend is not available in this "
            f"version of jobgate (available: {', '.join(sorted(_REGISTRY))})"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigurationError(
            f"the {profile.backend} backend needs {e.name}: pip install 'jobgate[{extra}]'"
        ) from e
    backend: Backend[Any] = getattr(module, class_name)(profile)
    return backend
