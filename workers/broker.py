"""The Redis transport workers consume with: kombu's own, with fixes.

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

An entry of a queue's Redis list that is not a message at all (not JSON, or not kombu's
envelope of properties, headers and body) also stopped the worker ("Unrecoverable
error: JSONDecodeError"), since kombu parses it in the event loop; so did a broadcast
(e.g. on the pidbox channel) that is JSON but no envelope. Here such an entry is logged
and dropped, as kombu already does for a broadcast that is not JSON; a message in a
good envelope whose body is poison is Celery's to reject. Reproduced by
tests/faults/test_poison_messages.py.

Over TLS, the handshake is bounded by the connect timeout rather than the read timeout
(client/tls.py): a plain-text server never answers one.
"""

from __future__ import annotations

import json
import logging
from queue import Empty
from typing import Any

import kombu.transport
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Message

from jobgate.client.tls import HandshakeBoundSSLConnection

log = logging.getLogger(__name__)


class UnreadableEnvelopeError(Exception):
    """A queue entry that is not kombu's message envelope."""


class _Envelope(Message):
    """A message read from a queue; an entry that is not an envelope raises
    UnreadableEnvelopeError rather than whatever kombu trips on."""

    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        try:
            super().__init__(payload, channel, **kwargs)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UnreadableEnvelopeError(f"{type(e).__name__}: {e}") from e


class _SturdyChannel:
    """Mixin for a kombu Redis channel: `close` survives a BRPOP connection that is gone,
    and an entry of a queue (or a broadcast) that is not a message is dropped, not fatal."""

    _in_poll: Any
    connection_errors: tuple[type[BaseException], ...]
    Message: type[Message] = _Envelope

    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))  # type: ignore[misc]
        except (json.JSONDecodeError, UnicodeDecodeError, UnreadableEnvelopeError) as e:
            log.error(
                "dropped a queue entry that is not a message (not kombu's JSON envelope; "
                "sent by something other than a Celery client?): %s",
                e,
            )
            raise Empty() from e

    def _receive_one(self, c: Any) -> bool | None:
        try:
            return super()._receive_one(c)  # type: ignore[misc,no-any-return]
        except UnreadableEnvelopeError as e:
            log.error("dropped a broadcast that is not a message (not kombu's envelope): %s", e)
            return None

    def close(self) -> None:
        if self._in_poll:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors:
                pass  # the reply died with its connection; _brpop_read has reset _in_poll
        super().close()  # type: ignore[misc]


class Channel(_SturdyChannel, kombu_redis.Channel):
    #: over TLS, a server that does not answer the handshake is given up on within the
    #: connect timeout, not the read timeout
    connection_class_ssl = HandshakeBoundSSLConnection


class SentinelChannel(_SturdyChannel, kombu_redis.SentinelChannel):
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
