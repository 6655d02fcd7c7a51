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

from celery import Celery, bootsteps, signals

from jobgate.client import routing
from jobgate.client.celeryconf import VISIBILITY_TIMEOUT_ENV
from jobgate.client.clusters import publish_worker
from jobgate.client.connection import connect, tenant_from_env, url_from_env
from jobgate.client.coordination import Coordination
from jobgate.client.errors import BrokerUnavailableError
from jobgate.client.keys import Keys
from jobgate.client.profile_schema import ClusterProfile
from jobgate.workers.backends import get_backend
from jobgate.workers.broker import install_transports
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
        self.coordination: Coordination | None = None

    def start(self, worker: Any) -> None:
        profiles = list(served_profiles().values())
        url = url_from_env()
        self.coordination = Coordination(connect(url), Keys(tenant_from_env()), url)
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


def install(app: Celery) -> None:
    install_transports()
    signals.celeryd_after_setup.connect(_serve_profiles, weak=False)
    install_log_scrubbing()
    app.steps["worker"].add(Housekeeping)
