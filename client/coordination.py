"""How workers coordinate through Redis: the polling chain's lease, short locks, turns and
markers, and the heartbeats that say which worker serves which clusters.

The sibling of the job store: between them they make every Redis call of jobgate's own
(Celery makes its own through kombu), with key names from keys.py and multi-step checks
as the Lua scripts in client/lua/. Everything else asks them by name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from redis.exceptions import LockNotOwnedError

from jobgate.client import lua
from jobgate.client.connection import broker_errors, guarded
from jobgate.client.keys import Keys


class Coordination:
    """Leases, locks and heartbeats of one tenant in one Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, url: str) -> None:
        """`url` is only used in error messages, with its password masked."""
        self._redis = client
        self.keys = keys
        self.url = url
        self._claim = client.register_script(lua.load("poll_claim"))
        self._end_if_idle = client.register_script(lua.load("poll_end_if_idle"))
        self._keep = client.register_script(lua.load("poll_keep"))

    # -- the polling chain's lease (see workers/polling.py) ---------------------------

    @guarded
    def open_chain(self, cluster: str, token: str, ttl_s: float) -> bool:
        """Take the free lease for a new chain `token` (its step 0 due); False if a chain
        holds it."""
        key = self.keys.poll_lease(cluster)
        return bool(self._redis.set(key, f"{token}:0", nx=True, px=_ms(ttl_s)))

    @guarded
    def claim_step(self, cluster: str, token: str, seq: int, ttl_s: float) -> bool:
        """Claim step `seq` of chain `token`; False means this message must stop."""
        keys = [self.keys.poll_lease(cluster)]
        return bool(self._claim(keys=keys, args=[token, seq, _ms(ttl_s)]))

    @guarded
    def keep_step(self, cluster: str, token: str, next_seq: int, ttl_s: float) -> bool:
        """Renew the lease of chain `token`'s step under way; False if it holds no more."""
        keys = [self.keys.poll_lease(cluster)]
        return bool(self._keep(keys=keys, args=[f"{token}:{next_seq}", _ms(ttl_s)]))

    @guarded
    def end_chain_if_idle(self, cluster: str, token: str, next_seq: int) -> bool:
        """End chain `token` if the cluster has no active job (atomic with that check)."""
        keys = [self.keys.poll_lease(cluster), self.keys.active(cluster)]
        return bool(self._end_if_idle(keys=keys, args=[f"{token}:{next_seq}"]))

    # -- locks: held by one worker, released by it (or expired) ------------------------

    def query_lock(self, cluster: str, ttl_s: float) -> contextlib.AbstractContextManager[bool]:
        """Held while one worker queries the cluster's scheduler; yields whether taken."""
        return self._held(self.keys.query_lock(cluster), ttl_s)

    def submit_lock(self, job_id: str, ttl_s: float) -> contextlib.AbstractContextManager[bool]:
        """Held while one delivery of a job's submit runs; yields whether taken."""
        return self._held(self.keys.submit_lock(job_id), ttl_s)

    @contextlib.contextmanager
    def _held(self, key: str, ttl_s: float) -> Iterator[bool]:
        lock = self._redis.lock(key, timeout=ttl_s, blocking=False)
        with broker_errors(self.url):
            taken = bool(lock.acquire())
        try:
            yield taken
        finally:
            if taken:
                # Expired (the work outlived its ttl) and perhaps taken by another:
                # theirs now, so nothing to release.
                with broker_errors(self.url), contextlib.suppress(LockNotOwnedError):
                    lock.release()

    # -- turns and markers: set once, expire by themselves -----------------------------

    @guarded
    def take_reconcile_turn(self, cluster: str, ttl_s: float) -> bool:
        """True for the one worker that sends this interval's reconcile of `cluster`."""
        return bool(self._redis.set(self.keys.reconcile_turn(cluster), "1", nx=True,
                                    px=_ms(ttl_s)))  # fmt: skip

    @guarded
    def mark_resent(self, job_id: str, ttl_s: float) -> bool:
        """True if the job's submit was not re-sent within `ttl_s`: re-send it now."""
        return bool(self._redis.set(self.keys.resent_marker(job_id), "1", nx=True,
                                    px=_ms(ttl_s)))  # fmt: skip

    # -- heartbeats: which worker serves which clusters ----------------------------------

    @guarded
    def publish_heartbeat(self, hostname: str, payload: str, ttl_s: float) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self.keys.worker(hostname), payload, px=_ms(ttl_s))
        pipe.sadd(self.keys.workers, hostname)
        pipe.execute()

    @guarded
    def withdraw_heartbeat(self, hostname: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self.keys.worker(hostname))
        pipe.srem(self.keys.workers, hostname)
        pipe.execute()

    @guarded
    def heartbeats(self) -> list[str]:
        """The payloads of the workers whose heartbeat has not expired (by hostname);
        the hostnames of expired ones are dropped from the set."""
        hostnames = sorted(str(h) for h in self._redis.smembers(self.keys.workers))
        if not hostnames:
            return []
        beats = self._redis.mget([self.keys.worker(h) for h in hostnames])
        gone = [h for h, beat in zip(hostnames, beats, strict=True) if beat is None]
        if gone:
            self._redis.srem(self.keys.workers, *gone)
        return [str(beat) for beat in beats if beat is not None]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
