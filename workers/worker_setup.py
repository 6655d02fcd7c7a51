"""Worker start-up: which queues to consume, heartbeat, and the reconcile timer.

A worker consumes ``jobgate.<cluster>`` and ``jobgate.<cluster>.poll`` for each
profile it serves, whatever ``-Q`` said, and checks at start that each profile's
backend loads, so a misconfigured host fails at once rather than job by job.
Reconcile runs from a timer in the worker itself (no celery beat needed): every
reconcile interval, one worker per cluster (a short Redis lock decides which)
sends ``jobgate.reconcile``; the first round goes out as the worker starts.
Every HEARTBEAT_S the worker publishes the profiles it serves, so clients can
see which clusters are served and check specs against the real policy.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Celery, bootsteps, signals

from jobgate.client import routing
from jobgate.client.celeryconf import VISIBILITY_TIMEOUT_ENV
from jobgate.client.clusters import publish_worker, withdraw_worker
from jobgate.client.connection import connect, tenant_from_env, url_from_env
from jobgate.client.keys import Keys
from jobgate.client.profiles import ClusterProfile
from jobgate.workers.backends import get_backend
from jobgate.workers.runtime import served_profiles
from jobgate.workers.secret_handling import install_log_scrubbing

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
HEARTBEAT_TTL_S = 3 * HEARTBEAT_S


def _serve_profiles(sender: str, instance: Any, conf: Any, **kwargs: Any) -> None:
    profiles = served_profiles()
    visibility_s = conf.broker_transport_options["visibility_timeout"]
    for profile in profiles.values():
        get_backend(profile)
        if profile.poll_interval_max_s * 10 > visibility_s:
            log.warning(
                "profile %s: poll_interval_max_s %g is not far below the broker's visibility "
                "timeout (%g s, %s): held poll steps will be delivered twice (the lease "
                "turns the copies away, at the cost of wasted tasks)",
                profile.name, profile.poll_interval_max_s, visibility_s, VISIBILITY_TIMEOUT_ENV,
            )  # fmt: skip
    queues = instance.app.amqp.queues
    queues.deselect([conf.task_default_queue])
    for cluster in profiles:
        queues.select_add(routing.queue(cluster))
        queues.select_add(routing.poll_queue(cluster))
    log.info("serving clusters: %s", ", ".join(sorted(profiles)))


class Housekeeping(bootsteps.StartStopStep):
    """Timers in the worker's main process: the heartbeat that publishes the served
    profiles (withdrawn on a clean stop), and the periodic ``jobgate.reconcile``."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.timer_refs: list[Any] = []
        self.client: redis.Redis | None = None

    def start(self, worker: Any) -> None:
        profiles = list(served_profiles().values())
        self.client = connect(url_from_env())
        keys = Keys(tenant_from_env())
        beat = (self.client, keys, worker.hostname, profiles)
        self._heartbeat(*beat)
        reconcile = (worker.app, self.client, keys, profiles)
        self._reconcile(*reconcile)
        interval_s = min(p.reconcile_interval_s for p in profiles)
        self.timer_refs = [
            worker.timer.call_repeatedly(HEARTBEAT_S, self._heartbeat, beat),
            worker.timer.call_repeatedly(interval_s, self._reconcile, reconcile),
        ]

    def stop(self, worker: Any) -> None:
        for ref in self.timer_refs:
            ref.cancel()
        if self.client is not None:
            try:
                withdraw_worker(self.client, Keys(tenant_from_env()), worker.hostname)
            except (redis.RedisError, OSError) as e:
                log.warning("could not withdraw this worker's heartbeat: %s", e)

    @staticmethod
    def _heartbeat(
        client: redis.Redis, keys: Keys, hostname: str, profiles: list[ClusterProfile]
    ) -> None:
        try:
            publish_worker(client, keys, hostname, profiles, ttl_s=HEARTBEAT_TTL_S)
        except (redis.RedisError, OSError) as e:
            log.warning("could not publish this worker's heartbeat: %s", e)

    @staticmethod
    def _reconcile(app: Celery, client: redis.Redis, keys: Keys,
                   profiles: list[ClusterProfile]) -> None:  # fmt: skip
        for profile in profiles:
            try:
                lock_ms = int(profile.reconcile_interval_s * 1000 * 0.9)
                if client.set(keys.reconcile_lock(profile.name), "1", nx=True, px=lock_ms):
                    app.send_task(routing.RECONCILE, args=[profile.name],
                                  queue=routing.poll_queue(profile.name))  # fmt: skip
            except (redis.RedisError, OSError) as e:
                log.warning("could not schedule reconcile of %s: %s", profile.name, e)


def install(app: Celery) -> None:
    signals.celeryd_after_setup.connect(_serve_profiles, weak=False)
    install_log_scrubbing()
    app.steps["worker"].add(Housekeeping)
