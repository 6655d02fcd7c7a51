"""Worker start-up: which queues to consume, heartbeat, and the reconcile timer.

A worker consumes ``jobgate.<cluster>`` and ``jobgate.<cluster>.poll`` for each
profile it serves, and no other queue, whatever ``-Q`` said (so a task it forwards to
another cluster's queue never comes back to it: see forwarding.py), and checks at
start that each profile's backend loads, so a misconfigured host fails at once
rather than job by job.
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
from jobgate.client.clock import ServerClock
from jobgate.client.clusters import publish_worker
from jobgate.client.connection import connect, tenant_from_env, url_from_env
from jobgate.client.coordination import Coordination
from jobgate.client.errors import BrokerUnavailableError, StorageError
from jobgate.client.keys import Keys
from jobgate.client.profile_schema import ClusterProfile
from jobgate.workers.backends import get_backend
from jobgate.workers.broker import install_transports
from jobgate.workers.runtime import served_profiles
from jobgate.workers.secret_handling import install_log_scrubbing
from jobgate.workers.staging.s3 import JobStorage

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
HEARTBEAT_TTL_S = 3 * HEARTBEAT_S
#: A host clock this far from Redis's is worth an operator's attention.
CLOCK_SKEW_WARN_S = 2.0


def _serve_profiles(sender: str, instance: Any, conf: Any, **kwargs: Any) -> None:
    profiles = served_profiles()
    visibility_s = conf.broker_transport_options["visibility_timeout"]
    for profile in profiles.values():
        get_backend(profile)
        if profile.storage is not None:
            _check_storage(JobStorage(profile.storage, profile.name))
        if profile.poll_interval_max_s * 10 > visibility_s:
            log.warning(
                "profile %s: poll_interval_max_s %g is not far below the broker's visibility "
                "timeout (%g s, %s): held poll steps will be delivered twice (the lease "
                "turns the copies away, at the cost of wasted tasks)",
                profile.name, profile.poll_interval_max_s, visibility_s, VISIBILITY_TIMEOUT_ENV,
            )  # fmt: skip
    queues = instance.app.amqp.queues
    served = [
        q for cluster in profiles for q in (routing.queue(cluster), routing.poll_queue(cluster))
    ]
    for name in served:
        queues.select_add(name)
    others = set(queues.consume_from) - set(served)
    if named := sorted(others - {conf.task_default_queue}):
        log.warning(
            "not consuming %s: a worker consumes only its clusters' queues", ", ".join(named)
        )
    queues.deselect(others)
    log.info("serving clusters: %s", ", ".join(sorted(profiles)))


def _check_storage(storage: JobStorage) -> None:
    """Say at start when a cluster's bucket cannot be reached (S3 may be down for now, so
    the worker starts anyway). Building the storage here loads boto3 before the pool
    forks and turns a missing credential reference into an error at start."""
    try:
        storage.call(f"checking bucket {storage.bucket}", "head_bucket", Bucket=storage.bucket)
    except StorageError as e:
        log.warning("cluster %s: %s; its jobs' files cannot move until it can", storage.cluster, e)


class Housekeeping(bootsteps.StartStopStep):
    """Timers in the worker's main process: the heartbeat that publishes the served
    profiles (withdrawn on a clean stop), and the periodic ``jobgate.reconcile``."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.timer_refs: list[Any] = []
        self.coordination: Coordination | None = None

    def start(self, worker: Any) -> None:
        profiles = list(served_profiles().values())
        url = url_from_env()
        client = connect(url)
        self.coordination = Coordination(client, Keys(tenant_from_env()), url)
        _check_clock(ServerClock(client))
        beat = (self.coordination, worker.hostname, profiles)
        self._heartbeat(*beat)
        reconcile = (worker.app, self.coordination, profiles)
        self._reconcile(*reconcile)
        interval_s = min(p.reconcile_interval_s for p in profiles)
        self.timer_refs = [
            worker.timer.call_repeatedly(HEARTBEAT_S, self._heartbeat, beat),
            worker.timer.call_repeatedly(interval_s, self._reconcile, reconcile),
        ]

    def stop(self, worker: Any) -> None:
        for ref in self.timer_refs:
            ref.cancel()
        if self.coordination is not None:
            try:
                self.coordination.withdraw_heartbeat(worker.hostname)
            except BrokerUnavailableError as e:
                log.warning("could not withdraw this worker's heartbeat: %s", e)

    @staticmethod
    def _heartbeat(
        coordination: Coordination, hostname: str, profiles: list[ClusterProfile]
    ) -> None:
        try:
            publish_worker(coordination, hostname, profiles, ttl_s=HEARTBEAT_TTL_S)
        except BrokerUnavailableError as e:
            log.warning("could not publish this worker's heartbeat: %s", e)

    @staticmethod
    def _reconcile(app: Celery, coordination: Coordination,
                   profiles: list[ClusterProfile]) -> None:  # fmt: skip
        for profile in profiles:
            turn_s = profile.reconcile_interval_s * 0.9
            try:
                if coordination.take_reconcile_turn(profile.name, turn_s):
                    app.send_task(routing.RECONCILE, args=[profile.name],
                                  queue=routing.poll_queue(profile.name))  # fmt: skip
            except (BrokerUnavailableError, OSError) as e:
                log.warning("could not schedule reconcile of %s: %s", profile.name, e)


def _check_clock(clock: ServerClock) -> None:
    """Warn when this host's clock is off Redis's. jobgate's records are on Redis's clock
    whatever the host says, but Celery's countdowns are not: a poll step this worker
    queues is held by the worker that receives it until its own clock reaches the
    sender's due time."""
    try:
        offset_s = clock.offset_s()
    except redis.RedisError as e:
        log.warning("could not compare this host's clock with Redis's: %s", e)
        return
    if abs(offset_s) > CLOCK_SKEW_WARN_S:
        log.warning(
            "this host's clock is %.1f s %s Redis's: fix its time synchronization (NTP). "
            "Job records use Redis's clock; countdown tasks this worker sends to other "
            "workers wait that much longer or shorter",
            abs(offset_s), "behind" if offset_s > 0 else "ahead of",
        )  # fmt: skip


class _MaskingWarningFilter(logging.Filter):
    """Drops kombu's "defaulting to insecure SSL behaviour" warning, which here is about
    no connection at all: Celery builds a kombu Connection from the bare broker URL only
    to mask its password (in the ``conf`` control reply Flower asks for), and kombu
    warns that a rediss:// URL without TLS options would not be verified. The real
    connections carry ``broker_use_ssl`` (client/tls.py); installed only when they do."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Secure redis scheme specified (rediss)")


def install(app: Celery) -> None:
    install_transports()
    if app.conf.broker_use_ssl:
        logging.getLogger("kombu.connection").addFilter(_MaskingWarningFilter())
    signals.celeryd_after_setup.connect(_serve_profiles, weak=False)
    install_log_scrubbing()
    app.steps["worker"].add(Housekeeping)
