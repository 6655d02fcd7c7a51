"""Redis Sentinel URLs: kombu's form, with the name of the monitored master appended.

    sentinel://[[user]:password@]host:port[/db];sentinel://host:port;...?master_name=NAME

Each ``;``-separated address is one sentinel. As in kombu and Celery, the password and
the database number are read from the first address (they are the master's, not the
sentinels'). kombu and Celery take the master's name as a transport option, not from the
URL; jobgate's one URL (``--url``, ``JOBGATE_URL``) carries it as ``?master_name=`` after
the last address, and hands kombu and Celery the URL without it plus the option.

Over TLS: the ``ssl_*`` parameters of rediss:// URLs (tls.py) go there too, after the
last address; they, or any ``JOBGATE_TLS_*`` variable, make jobgate reach the sentinels
and the master over TLS with the same settings (the sentinels' TLS port, and
``tls-replication yes`` so they reach the servers over TLS too). ``ssl_cert_reqs=required``
alone asks for TLS verified against the system's CAs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

import redis
from redis.sentinel import Sentinel

from jobgate.client.errors import ConfigurationError
from jobgate.client.tls import TlsSettings, requested, tls_problem, tls_settings

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
    #: how to reach the sentinels and the master over TLS; None: in plain text
    tls: TlsSettings | None = None

    def _over_tls(self) -> dict[str, Any]:
        """redis-py's connection options for TLS, or none in plain text."""
        return {"ssl": True, **self.tls.options()} if self.tls else {}

    def _sentinel_kwargs(self) -> dict[str, Any]:
        return {**_SENTINEL_CONNECTION, **self._over_tls()}

    def transport_options(self) -> dict[str, Any]:
        """kombu's and Celery's transport options for reaching the master."""
        return {"master_name": self.master_name, "sentinel_kwargs": self._sentinel_kwargs()}

    def tls_problem(self) -> str | None:
        """What keeps TLS to the sentinels from working, asked of each in turn (redis-py's
        "No master found" keeps no cause); None when it is not TLS or they answer."""
        if self.tls is None:
            return None
        for host, port in self.sentinels:
            client = redis.Redis(host=host, port=port, **self._sentinel_kwargs())
            try:
                client.ping()
            except redis.RedisError as e:
                if problem := tls_problem(e):
                    return problem
            finally:
                client.close()
        return None

    def connect(self, **connection: Any) -> redis.Redis:
        """A redis-py client for the current master; it asks the sentinels again on
        each new connection, so after a failover it reaches the promoted replica."""
        # redis.sentinel has no type hints
        sentinel = Sentinel(list(self.sentinels), sentinel_kwargs=self._sentinel_kwargs())  # type: ignore[no-untyped-call]
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            self.master_name,
            db=self.db,
            username=self.username,
            password=self.password,
            **connection,
            **self._over_tls(),
        )
        return client


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
    given = {k: query.pop(k)[-1] for k in sorted(query) if k.startswith("ssl_")}
    if query:
        raise _bad(url, f"unknown parameter {sorted(query)[0]!r} (master_name and ssl_* are read)")
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
        tls=tls_settings(given) if requested(given) else None,
    )
