"""The Redis transport workers consume with: kombu's own, with one fix.

With kombu 5.7.0 and Celery 5.7.0 a worker exits ("Unrecoverable error:
AttributeError('NoneType' object has no attribute 'hostname')") when Redis goes away
while the worker holds unacknowledged messages, as it always does while jobs run (the
polling chain's next step is a countdown task). On the connection error Celery first
`collect`s the connection, which closes its channel; the channel's close reads the
reply of its pending BRPOP first, that read raises ConnectionError, and the close stops
half way. Celery then closes the connection again: by now the transport has let go of
its client, and the second close, restoring the unacknowledged messages, builds a
connection pool from a client that is None.

Here a BRPOP whose connection is gone has nothing left to read, so the first close goes
all the way. Its restore of the unacknowledged messages fails while Redis is down (a
connection error, which Celery expects and ignores); the messages stay in Redis' own
``unacked`` hash, and kombu's sweep returns them to their queues once they are older
than the visibility timeout. A polling chain whose step was among them is replaced by
reconcile as soon as its lease expires. No upstream release fixes this yet (kombu and
Celery 5.7.0 are the newest); reproduced by tests/faults/test_redis_restart.py.
"""

from __future__ import annotations

from queue import Empty
from typing import Any

import kombu.transport
from kombu.transport import redis as kombu_redis


class _CloseAfterLostBrpop:
    """Mixin for a kombu Redis channel: `close` survives a BRPOP connection that is gone."""

    _in_poll: Any
    connection_errors: tuple[type[BaseException], ...]

    def close(self) -> None:
        if self._in_poll:
            try:
                self._brpop_read()  # type: ignore[attr-defined]
            except Empty:
                pass
            except self.connection_errors:
                pass  # the reply died with its connection; _brpop_read has reset _in_poll
        super().close()  # type: ignore[misc]


class Channel(_CloseAfterLostBrpop, kombu_redis.Channel):
    pass


class SentinelChannel(_CloseAfterLostBrpop, kombu_redis.SentinelChannel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel


#: URL scheme -> the transport a worker uses for it.
TRANSPORTS = {
    "redis": f"{__name__}:Transport",
    "rediss": f"{__name__}:Transport",
    "sentinel": f"{__name__}:SentinelTransport",
}


def install_transports() -> None:
    """Make kombu resolve the Redis URL schemes to the transports here, in this process
    (before its first connection: kombu caches what a name resolved to).

    Through kombu's alias table, not the ``broker_transport`` setting: when a connection
    fails, kombu switches to the next address of the URL (each sentinel of a sentinel
    URL) and takes the transport from that address's scheme, dropping the setting
    (kombu 5.7.0), and the next outage would end the worker as above. Reproduced by
    tests/faults/test_sentinel.py (failover after failover).
    """
    kombu.transport.TRANSPORT_ALIASES.update(TRANSPORTS)
