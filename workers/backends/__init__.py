"""Backends by name; each is imported only when a profile asks for it."""

from __future__ import annotations

import importlib

from jobgate.client.errors import ConfigurationError
from jobgate.client.profiles import ClusterProfile
from jobgate.client.store import Observation
from jobgate.workers.backends.base import Backend, LogChunk

__all__ = ["Backend", "LogChunk", "Observation", "get_backend"]

#: backend kind -> (module, class, extra that provides its dependencies)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "local": ("jobgate.workers.backends.local", "LocalBackend", "worker"),
    "slurm": ("jobgate.workers.backends.slurm", "SlurmBackend", "worker"),
    "lsf": ("jobgate.workers.backends.lsf", "LsfBackend", "worker"),
    "kubernetes": ("jobgate.workers.backends.kubernetes", "KubernetesBackend", "kubernetes"),
}


def get_backend(profile: ClusterProfile) -> Backend:
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
    backend: Backend = getattr(module, class_name)(profile)
    return backend
