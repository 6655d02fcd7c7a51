"""Which clusters are served right now.

Every worker publishes the profiles it serves under its hostname, with a
heartbeat: the key expires unless the worker renews it. Profiles cannot hold
secret values (only references such as ``env:NAME``), so the published copy is
the profile as the worker loaded it, and a client can run the policy preflight
against exactly what the worker will enforce.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from jobgate.client.coordination import Coordination
from jobgate.client.profile_schema import ClusterProfile, profile_from_data


@dataclass(frozen=True)
class ClusterInfo:
    """A cluster with at least one live worker: its profile and who serves it."""

    name: str
    profile: ClusterProfile
    workers: tuple[str, ...]
    heartbeat_at: datetime


def publish_worker(
    coordination: Coordination, hostname: str, profiles: Iterable[ClusterProfile], ttl_s: float
) -> None:
    """Say, for `ttl_s`, that this worker serves these profiles (renewed by its heartbeat)."""
    payload = {
        "hostname": hostname,
        "heartbeat_at": datetime.now(tz=UTC).isoformat(),
        "profiles": [p.model_dump(mode="json") for p in profiles],
    }
    coordination.publish_heartbeat(hostname, json.dumps(payload), ttl_s)


def live_clusters(coordination: Coordination) -> dict[str, ClusterInfo]:
    """Clusters served by a worker whose heartbeat has not expired, by name."""
    served: dict[str, ClusterInfo] = {}
    for beat in coordination.heartbeats():
        payload = json.loads(beat)
        at = datetime.fromisoformat(payload["heartbeat_at"])
        for data in payload["profiles"]:
            profile = profile_from_data(data)
            known = served.get(profile.name)
            workers = (*(known.workers if known else ()), payload["hostname"])
            newest = known is None or at >= known.heartbeat_at
            served[profile.name] = ClusterInfo(
                profile.name,
                profile if newest or known is None else known.profile,
                workers,
                at if newest or known is None else known.heartbeat_at,
            )
    return dict(sorted(served.items()))
