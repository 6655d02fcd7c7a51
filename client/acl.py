"""Redis ACL users for one tenant: what each role of jobgate may run, on which keys and
channels, and how a refusal (NOPERM) reads.

Every key and channel of a tenant, jobgate's and Celery's, starts with
``jobgate:<tenant>:`` (keys.py; kombu's ``global_keyprefix``), so a user confined to
that prefix sees nothing of other tenants. Commands are granted by name, not by
category, so that nothing can list or flush the keyspace (KEYS, SCAN, FLUSHALL) or
change the server (CONFIG). Three things of Redis shape the rules:

- A PSUBSCRIBE pattern is allowed only if it is literally one of the user's channel
  patterns (glob matching applies to channels, not to patterns), so the exact patterns
  kombu subscribes to are listed: ``<prefix>/<db>.celery.pidbox`` (workers' control
  commands) and ``<prefix>/<db>.celeryev/*`` (task events, Flower). kombu puts the
  database number into the fanout topic: the rules depend on it.
- Commands a Lua script runs (jobgate's scripts in client/lua/, kombu's, redis-py's
  lock) are checked against the caller's ACL, so the script's commands are granted too.
- A selector (``(...)``) grants its commands only on its own keys: a worker given
  clusters may consume (BRPOP, RPOP) those clusters' queues only, while it may still
  put a message back on any queue of the tenant (kombu restores unacknowledged
  messages of every cluster).

Passwords never appear in the lines: a password is given as its SHA-256 (``#<hex>``).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import redis
from kombu.exceptions import OperationalError
from pydantic import TypeAdapter, ValidationError

from jobgate.client import routing
from jobgate.client.errors import ConfigurationError, PermissionDeniedError
from jobgate.client.keys import Keys, check_tenant
from jobgate.client.models import ClusterName

Role = Literal["submitter", "worker", "viewer", "flower"]
ROLES: tuple[Role, ...] = ("submitter", "worker", "viewer", "flower")
Format = Literal["setuser", "aclfile"]
USER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
#: Shown in place of a password that was not given; replace it before loading the lines.
PLACEHOLDER_PASSWORD = ">CHANGE-ME"  # noqa: S105 - a placeholder, by design
_CLUSTER = TypeAdapter(ClusterName)
#: A job id is 26 characters (ids.py): the record key, and no key beyond it.
_JOB_ID_GLOB = "?" * 26

#: Every client: health checks, Redis's clock, transactions, scripts (by SHA, loaded
#: once: EVALSHA, SCRIPT LOAD, SCRIPT EXISTS from a pipeline; no EVAL of ad-hoc code).
_COMMON = ("ping", "time", "multi", "exec", "discard", "watch", "unwatch",
           "evalsha", "script|load", "script|exists")  # fmt: skip
#: Reading job records, their history and event streams, the list indexes (list.lua)
#: and the workers' heartbeats (a stale heartbeat's name is removed from the set).
_READ_RECORDS = ("hget", "hgetall", "hmget", "lrange", "exists", "xread", "xrevrange",
                 "zcard", "zscore", "zrangebylex", "zrevrangebylex", "smembers", "mget",
                 "srem")  # fmt: skip
#: Recording a job and its transitions (create.lua, transition.lua), and queueing it for
#: a worker to submit (submit_enqueue.lua: lapsed claims back, a drainer slot armed).
_WRITE_RECORDS = ("hset", "hdel", "rpush", "xadd", "zadd", "zrem", "publish",
                  "zrangebyscore", "set")  # fmt: skip
#: A Celery client: declare the queue and send (kombu), wait for the answer (the result
#: backend's SUBSCRIBE, GET) and forget it.
_SEND_AND_WAIT = ("lpush", "llen", "sadd", "pexpire", "get", "mget", "del",
                  "subscribe", "unsubscribe")  # fmt: skip
#: A Celery worker besides: kombu's consumer (unacked bookkeeping and its restore, the
#: pidbox, events, binding tables), the result backend's writes, jobgate's store and
#: coordination (leases, locks, heartbeats, counters, retention), the submit queue's
#: claims (submit_claim.lua).
_WORKER = ("setex", "incr", "incrby", "expire", "pttl", "hlen", "hincrby", "zpopmin",
           "zrange", "zrangebyscore", "zrevrangebyscore", "psubscribe", "punsubscribe")  # fmt: skip
#: Consuming a queue: only on the queues a worker serves (a selector, with --clusters).
_CONSUME = ("brpop", "rpop")
#: Flower: a kombu consumer of the events and of control replies, reading results and
#: queue lengths; sending control commands (PUBLISH on the pidbox). It never pushes to a
#: task queue (no LPUSH/RPUSH on them): its send-task cannot enqueue.
_FLOWER = ("brpop", "llen", "del", "exists", "sadd", "srem", "smembers", "zadd", "zrem",
           "zrange", "zrangebyscore", "set", "get", "mget", "hget", "pexpire", "publish",
           "subscribe", "unsubscribe", "psubscribe", "punsubscribe")  # fmt: skip


@dataclass(frozen=True)
class Grant:
    """What one selector of an ACL user allows: commands, key rules, channel patterns."""

    commands: tuple[str, ...]
    keys: tuple[str, ...]
    channels: tuple[str, ...] = ()
    selectors: tuple[Grant, ...] = field(default=())

    def rules(self) -> list[str]:
        """The ACL rules of this selector (without user, password or selectors)."""
        rules = ["resetkeys", *self.keys, "resetchannels", *(f"&{c}" for c in self.channels)]
        return [*rules, "-@all", *(f"+{c}" for c in sorted(set(self.commands)))]


def fanout_topic(tenant: str, exchange: str, db: int) -> str:
    """The channel kombu publishes a fanout exchange's messages on (prefix included)."""
    return f"{Keys(tenant).prefix}/{db}.{exchange}"


def grant(role: Role, tenant: str, *, clusters: Sequence[str] = (), db: int = 0) -> Grant:
    """The permissions of `role` in `tenant` on Redis database `db`; `clusters` confines
    a worker's consuming to those clusters' queues (all of the tenant's if empty)."""
    keys = Keys(check_tenant(tenant))
    prefix = keys.prefix
    if db < 0:
        raise ConfigurationError(f"db {db} must be a database number >= 0")
    extra = ("select",) if db else ()
    events_pattern = fanout_topic(tenant, "celeryev/*", db)
    pidbox = fanout_topic(tenant, "celery.pidbox", db)
    results = f"{prefix}celery-task-meta-*"
    if clusters and role != "worker":
        raise ConfigurationError("--clusters applies to the worker role only")
    if role == "submitter":
        return Grant(
            (*_COMMON, *_READ_RECORDS, *_WRITE_RECORDS, *_SEND_AND_WAIT, *extra),
            (f"~{prefix}*",),
            (keys.channel, results),
        )
    if role == "worker":
        base = (*_COMMON, *_READ_RECORDS, *_WRITE_RECORDS, *_SEND_AND_WAIT, *_WORKER, *extra)
        channels = (keys.channel, results, pidbox, events_pattern)
        if not clusters:
            return Grant((*base, *_CONSUME), (f"~{prefix}*",), channels)
        # answers to its own control commands: <uuid>.reply.celery.pidbox and its priority lists
        consumed = [f"~{prefix}*.reply.celery.pidbox*"]
        for cluster in clusters:
            for queue in (routing.queue(_cluster(cluster)), routing.poll_queue(cluster)):
                # the queue and its priority lists (<queue>\x06\x16<n>); cluster names
                # hold no dot, so no other cluster's queue matches
                consumed += [f"~{prefix}{queue}", f"~{prefix}{queue}[^-.a-z0-9]*"]
        return Grant(base, (f"~{prefix}*",), channels, (Grant(_CONSUME, tuple(consumed)),))
    if role == "viewer":
        readable = (keys.job(_JOB_ID_GLOB), keys.history("*"), keys.events("*"),
                    keys.index_all, f"{keys.index_prefix('*')}*", keys.worker("*"),
                    keys.stats("*"))  # fmt: skip
        return Grant(
            (*_COMMON, *_READ_RECORDS, *extra),
            (*(f"%R~{k}" for k in readable), f"~{keys.workers}"),
            (keys.channel,),
        )
    if role == "flower":
        writable = (f"{prefix}_kombu.*", f"{prefix}*.reply.celery.pidbox*", f"{prefix}celeryev.*",
                    f"{prefix}unacked_mutex")  # fmt: skip
        watched = (f"{prefix}unacked", f"{prefix}unacked_index", results,
                   f"{prefix}{routing.queue('*')}")  # fmt: skip
        return Grant(
            (*_COMMON, *_FLOWER, *extra),
            (*(f"~{k}" for k in writable), *(f"%R~{k}" for k in watched)),
            (pidbox, events_pattern, results),
        )
    raise ConfigurationError(f"role {role!r} is not one of {', '.join(ROLES)}")


def _cluster(name: str) -> str:
    try:
        return _CLUSTER.validate_python(name)
    except ValidationError as e:
        raise ConfigurationError(f"cluster {name!r} is not a cluster name") from e


def password_rule(password: str | None) -> str:
    """``#<sha256>`` of the password (Redis stores only that), or the placeholder."""
    if password is None:
        return PLACEHOLDER_PASSWORD
    if not password or any(c.isspace() for c in password):
        raise ConfigurationError("the password must be non-empty, without whitespace")
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def user_rules(user: str, access: Grant, password: str | None) -> list[str]:
    """Every rule of one user, from nothing: `reset` first, so that loading the lines
    again takes away whatever the user was given before."""
    if not USER_PATTERN.match(user):
        raise ConfigurationError(
            f"user {user!r} may hold only letters, digits and . _ @ - (max 64)"
        )
    rules = ["reset", "on", password_rule(password), *access.rules()]
    return rules + [f"({' '.join(s.rules())})" for s in access.selectors]


def render(user: str, rules: Iterable[str], form: Format) -> str:
    """One ``ACL SETUSER`` command (for redis-cli) or one aclfile line."""
    words = list(rules)
    if form == "aclfile":
        return " ".join(["user", user, *words])
    return " ".join(["ACL", "SETUSER", user, *(shlex.quote(w) for w in words)])


# -- what a refusal says -----------------------------------------------------------------

#: Redis's refusal texts (a command's, or a script's), and what to say of each.
_REFUSALS = (
    (re.compile(r"no permissions to run the '([^']+)' command"), "it may not run {0}"),
    (re.compile(r"no permissions to access one of the keys"), "a key outside its patterns"),
    (re.compile(r"no permissions to access one of the channels"), "a channel outside its patterns"),
    (re.compile(r"script can't run this command"), "a command a script runs"),
    (re.compile(r"script can't access at least one of the keys"), "a key a script touches"),
)


def refusal(error: BaseException) -> tuple[str, str] | None:
    """What Redis refused and its own words, if `error` (or an error it wraps) is an ACL
    refusal."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, redis.RedisError | OperationalError):
            text = str(seen)
            for pattern, say in _REFUSALS:
                found = pattern.search(text)
                if found:
                    return say.format(*(g.upper() for g in found.groups())), text
            if isinstance(seen, redis.exceptions.NoPermissionError):
                return "a command", text
        seen = seen.__cause__ or seen.__context__
    return None


def denied(
    url: str, masked_url: str, operation: str, error: BaseException
) -> PermissionDeniedError | None:
    """The PermissionDeniedError for an ACL refusal of `operation`, or None if `error`
    is no refusal."""
    found = refusal(error)
    if found is None:
        return None
    user = urlsplit(url.split(";", 1)[0]).username or "default"
    return PermissionDeniedError(masked_url, user, operation, *found)
