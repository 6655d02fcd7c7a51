"""The Celery configuration that client and worker share.

JSON only, late acknowledgement, every key under the tenant's prefix. The
visibility timeout must stay far above the longest countdown: a countdown task
older than it is redelivered and runs twice (the poll lease absorbs that, but
it costs a wasted task).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from jobgate.client.connection import check_url
from jobgate.client.errors import ConfigurationError
from jobgate.client.keys import Keys, check_tenant
from jobgate.client.sentinel import is_sentinel, parse_sentinel_url
from jobgate.client.tls import split_tls

VISIBILITY_TIMEOUT_ENV = "JOBGATE_VISIBILITY_TIMEOUT_S"
DEFAULT_VISIBILITY_TIMEOUT_S = 3600
RESULT_EXPIRES_S = 24 * 3600


def visibility_timeout_s() -> int:
    raw = os.environ.get(VISIBILITY_TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_VISIBILITY_TIMEOUT_S
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"{VISIBILITY_TIMEOUT_ENV}={raw!r} must be a whole number > 0")
    return int(raw)


def celery_config(url: str, tenant: str) -> dict[str, Any]:
    """Settings for a Celery app that talks to `url` as `tenant`."""
    prefix = Keys(check_tenant(tenant)).prefix
    visibility = visibility_timeout_s()
    check_url(url)
    # kombu and Celery read a sentinel URL's master name from their transport options
    through_sentinels: dict[str, Any] = {}
    over_tls: dict[str, Any] = {}
    if is_sentinel(url):
        parsed = parse_sentinel_url(url)
        url, through_sentinels, tls = parsed.kombu_url, parsed.transport_options(), parsed.tls
    else:
        url, tls = split_tls(url)
    if tls is not None:
        # The same TLS settings for broker and result backend (and Flower, which reads
        # broker_use_ssl): kombu alone would not verify the server (tls.py)
        over_tls = {"broker_use_ssl": tls.options(), "redis_backend_use_ssl": tls.options()}
    return {
        "broker_url": url,
        "result_backend": url,
        **over_tls,
        "broker_transport_options": {
            **through_sentinels,
            "global_keyprefix": prefix,
            "visibility_timeout": visibility,
            # kombu sweeps `unacked` every interval x throttle seconds (100 s by
            # default); tie the sweep to the visibility timeout instead.
            "unacked_restore_interval": max(1, min(10, visibility // 10)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 5,
            "socket_timeout": 30,
        },
        "result_backend_transport_options": {
            **through_sentinels,
            "global_keyprefix": prefix,
            # Reconnecting to the result store outlasts a client's outage tolerance
            # (outages.DEFAULT_OUTAGE_S, 300 s): Celery's default gives up after 20 s
            # ("Retry limit exceeded ... must be restarted"), which ended a `logs -f`
            # waiting through a 30 s outage.
            "retry_policy": {
                "max_retries": 64,
                "interval_start": 0,
                "interval_step": 1,
                "interval_max": 5,
            },
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Task events cost a worker about 2.4 CPU-ms per submitted job (FACTS.md): off
        # unless asked for. Flower switches them on at runtime (its `enable_events`
        # control command, which it sends by default); `jobgate worker ... -- -E` too.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "result_expires": RESULT_EXPIRES_S,
        # A final record is ~1.4 KB of JSON and zlib makes it ~0.6 KB: most of what a
        # finished job costs Redis until its result expires. Celery marks compressed
        # results in-band (celery/backends/base.py, 5.7), so every reader decompresses them.
        "result_compression": "zlib",
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # A client facing a dead Redis fails within a couple of seconds, not minutes.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        "enable_utc": True,
        "timezone": "UTC",
    }


def make_celery(url: str, tenant: str, *, main: str = "jobgate") -> Celery:
    app = Celery(main, set_as_current=False)
    app.conf.update(celery_config(url, tenant))
    return app
