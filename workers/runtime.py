"""What a worker process serves: its Redis, job store, profiles and backends.

Built lazily, once per process: prefork children create their own connections
after the fork. Profiles come from ``JOBGATE_PROFILES`` (comma-separated names
or paths), which ``jobgate worker --profile`` sets.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from jobgate.client.connection import connect, tenant_from_env, url_from_env
from jobgate.client.errors import ConfigurationError
from jobgate.client.keys import Keys, check_tenant
from jobgate.client.profiles import ClusterProfile, load_profile
from jobgate.client.store import JobStore
from jobgate.workers.backends import Backend, get_backend

PROFILES_ENV = "JOBGATE_PROFILES"


def served_profiles() -> dict[str, ClusterProfile]:
    """The profiles this worker serves, by cluster name."""
    raw = os.environ.get(PROFILES_ENV, "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise ConfigurationError(
            f"no cluster profile to serve: start with `jobgate worker --profile NAME` "
            f"or set {PROFILES_ENV}=NAME[,NAME...]"
        )
    profiles: dict[str, ClusterProfile] = {}
    for name in names:
        profile = load_profile(name)
        if profile.name in profiles:
            raise ConfigurationError(f"two served profiles are named {profile.name!r}")
        profiles[profile.name] = profile
    return profiles


@dataclass
class Runtime:
    store: JobStore
    profiles: dict[str, ClusterProfile]
    _backends: dict[str, Backend] = field(default_factory=dict)

    def profile(self, cluster: str) -> ClusterProfile:
        try:
            return self.profiles[cluster]
        except KeyError:
            raise ConfigurationError(
                f"this worker does not serve cluster {cluster!r} "
                f"(it serves {', '.join(sorted(self.profiles))})"
            ) from None

    def backend(self, cluster: str) -> Backend:
        if cluster not in self._backends:
            self._backends[cluster] = get_backend(self.profile(cluster))
        return self._backends[cluster]


@functools.cache
def runtime() -> Runtime:
    url = url_from_env()
    keys = Keys(check_tenant(tenant_from_env()))
    return Runtime(JobStore(connect(url), keys, url), served_profiles())
