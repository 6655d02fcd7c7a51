"""What a worker process serves: its Redis, and a `ClusterContext` per served cluster.

Built lazily, once per process: prefork children create their own connections
after the fork. Profiles come from ``JOBGATE_PROFILES`` (comma-separated names
or paths), which ``jobgate worker --profile`` sets.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from celery import Celery

from jobgate.client.connection import PROFILES_ENV, connect, tenant_from_env, url_from_env
from jobgate.client.coordination import Coordination
from jobgate.client.errors import ConfigurationError
from jobgate.client.keys import Keys, check_tenant
from jobgate.client.profile_schema import ClusterProfile
from jobgate.client.profiles import load_profile
from jobgate.client.store import JobStore
from jobgate.workers.backends import get_backend
from jobgate.workers.context import ClusterContext
from jobgate.workers.staging.s3 import JobStorage


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
    """This process's connection to Redis and the clusters it serves."""

    app: Celery
    store: JobStore
    coordination: Coordination
    profiles: dict[str, ClusterProfile]
    _clusters: dict[str, ClusterContext] = field(default_factory=dict)

    def serves(self, name: str) -> bool:
        return name in self.profiles

    def cluster(self, name: str) -> ClusterContext:
        """The context of a served cluster; its backend is loaded on first use."""
        if name not in self._clusters:
            try:
                profile = self.profiles[name]
            except KeyError:
                raise ConfigurationError(
                    f"this worker does not serve cluster {name!r} "
                    f"(it serves {', '.join(sorted(self.profiles))})"
                ) from None
            backend = get_backend(profile)
            storage = JobStorage(profile.storage, name) if profile.storage else None
            self._clusters[name] = ClusterContext(
                profile, backend, self.store, self.coordination, self.app, storage
            )
        return self._clusters[name]

    def cluster_of(self, job_id: str) -> ClusterContext:
        """The context of the cluster a job belongs to."""
        return self.cluster(self.store.cluster_of(job_id))


@functools.cache
def runtime(app: Celery) -> Runtime:
    url = url_from_env()
    keys = Keys(check_tenant(tenant_from_env()))
    client = connect(url)
    return Runtime(
        app, JobStore(client, keys, url), Coordination(client, keys, url), served_profiles()
    )
