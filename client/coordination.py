"""How workers coordinate through Redis: the polling chain's lease, short locks, turns and
markers, and the heartbeats that say which worker serves which clusters.

The sibling of the job store: between them they make every Redis call of jobgate's own
(Celery makes its own through kombu), with key names from keys.py and multi-step checks
as the Lua scripts in client/lua/. Everything else asks them by name.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

import redis
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock

from jobgate.client import lua
from jobgate.client.connection import broker_errors, guarded
from jobgate.client.errors import BrokerUnavailableError
from jobgate.client.keys import Keys

log = logging.getLogger(__name__)


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

    def step_kept(
        self, cluster: str, token: str, next_seq: int, ttl_s: float
    ) -> contextlib.AbstractContextManager[None]:
        """Renew the step's lease every third of its life while the block runs, so that a
        step held up by its scheduler is not taken for a dead chain."""
        return _every(ttl_s / 3, lambda: self.keep_step(cluster, token, next_seq, ttl_s),
                      f"renew the polling lease of cluster {cluster}")  # fmt: skip

    @guarded
    def end_chain_if_idle(self, cluster: str, token: str, next_seq: int) -> bool:
        """End chain `token` if the cluster has no active job (atomic with that check)."""
        keys = [self.keys.poll_lease(cluster), self.keys.active(cluster)]
        return bool(self._end_if_idle(keys=keys, args=[f"{token}:{next_seq}"]))

    # -- locks: held by one worker, released by it (or expired) ------------------------

    def query_lock(self, cluster: str, ttl_s: float) -> contextlib.AbstractContextManager[bool]:
        """Held while one worker queries the cluster's scheduler; yields whether taken.
        Renewed like the submit lock: a holder killed mid-query frees it within `ttl_s`."""
        return self._held(self.keys.query_lock(cluster), ttl_s, renewed=True)

    def submit_lock(
        self, job_id: str, ttl_s: float, *, wait_s: float
    ) -> contextlib.AbstractContextManager[bool]:
        """Held while one delivery of a job's submit runs; yields whether taken, waiting up
        to `wait_s` for it. Its holder renews it every third of `ttl_s`, so that it lasts
        as long as a slow submit does, yet frees within `ttl_s` of its holder's death (a
        worker or pool child killed mid-submit): a wait longer than `ttl_s` ends with the
        lock, or with its holder alive."""
        return self._held(self.keys.submit_lock(job_id), ttl_s, wait_s=wait_s, renewed=True)

    def outputs_lock(self, job_id: str, ttl_s: float) -> contextlib.AbstractContextManager[bool]:
        """Held while a job's outputs are uploaded and recorded (renewed, like the submit
        lock); yields whether taken. The finalize of a polling step and that of a
        reconcile may meet on one job: the second to come finds the lock held and leaves
        the job to the first."""
        return self._held(self.keys.outputs_lock(job_id), ttl_s, renewed=True)

    @contextlib.contextmanager
    def _held(
        self, key: str, ttl_s: float, *, wait_s: float = 0.0, renewed: bool = False
    ) -> Iterator[bool]:
        # A renewed lock's token must be seen by the renewing thread: not thread-local.
        lock = self._redis.lock(
            key,
            timeout=ttl_s,
            blocking=wait_s > 0,
            blocking_timeout=wait_s or None,
            thread_local=not renewed,
        )
        with broker_errors(self.url):
            taken = bool(lock.acquire())
        try:
            with _renewing(lock, ttl_s / 3) if taken and renewed else contextlib.nullcontext():
                yield taken
        finally:
            if taken:
                # Expired (the work outlived its ttl) and perhaps taken by another:
                # theirs now, so nothing to release.
                with broker_errors(self.url), contextlib.suppress(LockNotOwnedError):
                    lock.release()

    @contextlib.contextmanager
    def submit_attempt(self, job_id: str, ttl_s: float) -> Iterator[int]:
        """Count a delivery of a job's submit for as long as it runs; yields how many
        earlier ones started and never ended: their process died (the OOM killer, a
        SIGKILL), since an attempt that ends in any other way, an exception included, is
        forgotten."""
        key = self.keys.submit_attempts(job_id)
        with broker_errors(self.url):
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(key)
            pipe.pexpire(key, _ms(ttl_s))
            started, _ = pipe.execute()
        try:
            yield int(started) - 1
        finally:
            with contextlib.suppress(BrokerUnavailableError), broker_errors(self.url):
                self._redis.delete(key)

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


def _renewing(lock: Lock, every_s: float) -> contextlib.AbstractContextManager[None]:
    """Reset `lock`'s time to live every `every_s` from a thread, while the block runs."""

    def renew() -> bool:
        try:
            lock.reacquire()
        except LockError as e:
            log.warning("lost lock %s while holding it: %s", lock.name, e)
            return False
        return True

    return _every(every_s, renew, f"renew {lock.name}")


@contextlib.contextmanager
def _every(every_s: float, renew: Callable[[], bool], name: str) -> Iterator[None]:
    """Call `renew` every `every_s` from a thread while the block runs, until it returns
    False. Redis being away is logged and tried again next time: the renewal may yet come
    in time."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every_s):
            try:
                if not renew():
                    return
            except (BrokerUnavailableError, redis.RedisError) as e:
                log.warning("%s: %s", name, e)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
