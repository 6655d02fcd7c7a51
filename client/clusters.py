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

import redis

from jobgate.client.keys import Keys
from jobgate.client.profile_schema import ClusterProfile


@dataclass(frozen=True)
class ClusterInfo:
    """A cluster with at least one live worker: its profile and who serves it."""

    name: str
    profile: ClusterProfile
    workers: tuple[str, ...]
    heartbeat_at: datetime


def publish_worker(
    client: redis.Redis, keys: Keys, hostname: str, profiles: Iterable[ClusterProfile],
    ttl_s: float,
) -> None:  # fmt: skip
    payload = {
        "hostname": hostname,
        "heartbeat_at": datetime.now(tz=UTC).isoformat(),
        "profiles": [p.model_dump(mode="json") for p in profiles],
    }
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.worker(hostname), json.dumps(payload), px=int(ttl_s * 1000))
    pipe.sadd(keys.workers, hostname)
    pipe.execute()


def withdraw_worker(client: redis.Redis, keys: Keys, hostname: str) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.worker(hostname))
    pipe.srem(keys.workers, hostname)
    pipe.execute()


def live_clusters(client: redis.Redis, keys: Keys) -> dict[str, ClusterInfo]:
    """Clusters served by a worker whose heartbeat has not expired, by name."""
    hostnames = sorted(str(h) for h in client.smembers(keys.workers))
    if not hostnames:
        return {}
    beats = client.mget([keys.worker(h) for h in hostnames])
    gone = [h for h, beat in zip(hostnames, beats, strict=True) if beat is None]
    if gone:
        client.srem(keys.workers, *gone)
    served: dict[str, ClusterInfo] = {}
    for beat in beats:
        if beat is None:
            continue
        payload = json.loads(beat)
        at = datetime.fromisoformat(payload["heartbeat_at"])
        for data in payload["profiles"]:
            profile = ClusterProfile.model_validate(data)
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
