"""Redis Sentinel URLs: kombu's form, with the name of the monitored master appended.

    sentinel://[[user]:password@]host:port[/db];sentinel://host:port;...?master_name=NAME

Each ``;``-separated address is one sentinel. As in kombu and Celery, the password and
the database number are read from the first address (they are the master's, not the
sentinels'). kombu and Celery take the master's name as a transport option, not from the
URL; jobgate's one URL (``--url``, ``JOBGATE_URL``) carries it as ``?master_name=`` after
the last address, and hands kombu and Celery the URL without it plus the option.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

import redis
from redis.sentinel import Sentinel

from jobgate.client.errors import ConfigurationError
from jobgate.client.tls import ENV_VARS

SCHEME = "sentinel"
SEPARATOR = ";"
SENTINEL_FORM = "sentinel://[:password@]host:port[/db];sentinel://host:port;...?master_name=NAME"
_MASTER_NAME = re.compile(r"[A-Za-z0-9._-]+")
#: A sentinel that does not answer "which is the master?" within a second is passed over.
_SENTINEL_CONNECTION = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SCHEME}://")


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed sentinel URL; `kombu_url` is what kombu and Celery are given."""

    kombu_url: str
    sentinels: tuple[tuple[str, int], ...]
    master_name: str
    db: int
    username: str | None
    password: str | None

    def transport_options(self) -> dict[str, Any]:
        """kombu's and Celery's transport options for reaching the master."""
        return {"master_name": self.master_name, "sentinel_kwargs": dict(_SENTINEL_CONNECTION)}

    def connect(self, **connection: Any) -> redis.Redis:
        """A redis-py client for the current master; it asks the sentinels again on
        each new connection, so after a failover it reaches the promoted replica."""
        # redis.sentinel has no type hints
        sentinel = Sentinel(list(self.sentinels), sentinel_kwargs=dict(_SENTINEL_CONNECTION))  # type: ignore[no-untyped-call]
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            self.master_name,
            db=self.db,
            username=self.username,
            password=self.password,
            **connection,
        )
        return client


_NO_TLS = (
    "but jobgate does not reach Redis through Sentinel over TLS (sentinel:// URLs are "
    "plain text); use a rediss:// URL of the master, or a TLS proxy"
)


def refuse_tls_env(url: str) -> None:
    """ConfigurationError when a ``JOBGATE_TLS_*`` variable asks for TLS that a sentinel
    URL cannot give: connecting in plain text instead would ignore the operator's intent."""
    if named := [name for name in ENV_VARS if os.environ.get(name)]:
        raise _bad(url, f"{named[0]} asks for TLS, {_NO_TLS}")


def _bad(url: str, problem: str) -> ConfigurationError:
    from jobgate.client.connection import mask_url

    return ConfigurationError(
        f"Redis Sentinel URL {mask_url(url)!r}: {problem}; the form is {SENTINEL_FORM}"
    )


def _address(url: str, chunk: str, index: int, last: bool) -> SplitResult:
    parts = urlsplit(chunk)
    where = f"address {index + 1} ({parts.hostname})" if parts.hostname else f"address {index + 1}"
    if parts.scheme != SCHEME:
        raise _bad(url, f"{where} must start with {SCHEME}://")
    try:
        port = parts.port
    except ValueError:
        raise _bad(url, f"{where} has a port that is not a number") from None
    if not parts.hostname or port is None:
        raise _bad(url, f"{where} needs a host and a port (sentinels listen on 26379)")
    if parts.query and not last:
        raise _bad(url, "?master_name= goes after the last address only")
    if index and (parts.password or parts.username or parts.path.strip("/")):
        raise _bad(url, "the password and database go on the first address only")
    if parts.fragment:
        raise _bad(url, "a URL fragment ('#...') means nothing here")
    return parts


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Parse a sentinel URL; ConfigurationError naming what is wrong and the form."""
    chunks = url.split(SEPARATOR)
    addresses = [
        _address(url, chunk, i, last=i == len(chunks) - 1) for i, chunk in enumerate(chunks)
    ]
    query = parse_qs(addresses[-1].query, keep_blank_values=True)
    names = query.pop("master_name", [])
    if tls_params := sorted(k for k in query if k.startswith("ssl_")):
        raise _bad(url, f"{tls_params[0]} asks for TLS, {_NO_TLS}")
    if query:
        raise _bad(url, f"unknown parameter {sorted(query)[0]!r} (only master_name is read)")
    if not names or not names[0]:
        raise _bad(url, "the master's name is missing (add ?master_name=NAME, the name "
                        "the sentinels monitor it by)")  # fmt: skip
    if len(names) > 1 or not _MASTER_NAME.fullmatch(names[0]):
        raise _bad(url, "master_name must be one name of letters, digits, '.', '_' or '-'")
    first = addresses[0]
    db_text = first.path.strip("/") or "0"
    if not db_text.isdigit():
        raise _bad(url, f"the database {db_text!r} must be a number")
    return SentinelUrl(
        kombu_url=SEPARATOR.join(a._replace(query="").geturl() for a in addresses),
        sentinels=tuple((a.hostname or "", a.port or 0) for a in addresses),
        master_name=names[0],
        db=int(db_text),
        username=first.username or None,
        password=first.password,
    )
