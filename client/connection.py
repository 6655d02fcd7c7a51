"""Redis connections and the translation of connection failures into jobgate errors."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from kombu.exceptions import OperationalError

from jobgate.client import acl
from jobgate.client.errors import BrokerTlsError, BrokerUnavailableError, ConfigurationError
from jobgate.client.sentinel import (
    SENTINEL_FORM,
    SEPARATOR,
    is_sentinel,
    parse_sentinel_url,
)
from jobgate.client.tls import HandshakeBoundSSLConnection, split_tls, tls_problem

URL_ENV = "JOBGATE_URL"
TENANT_ENV = "JOBGATE_TENANT"
#: The cluster profiles a worker serves (names or paths, comma-separated); set by
#: ``jobgate worker --profile``.
PROFILES_ENV = "JOBGATE_PROFILES"

P = ParamSpec("P")
R = TypeVar("R")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for messages and logs."""
    if is_sentinel(url):
        return SEPARATOR.join(_mask_one(a) for a in url.split(SEPARATOR))
    return _mask_one(url)


def _mask_one(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host_and_port = parts.netloc.rpartition("@")[2]  # as written, even a malformed port
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host_and_port}"))


def url_from_env() -> str:
    url = os.environ.get(URL_ENV)
    if not url:
        raise ConfigurationError(
            f"no Redis URL: set {URL_ENV} (e.g. redis://127.0.0.1:6379/0) or pass one"
        )
    return check_url(url)


def tenant_from_env() -> str:
    """``JOBGATE_TENANT``, or 'default'."""
    return os.environ.get(TENANT_ENV, "default")


def check_url(url: str) -> str:
    """`url` if it is a Redis URL jobgate can use, with TLS settings that can work
    (the ``JOBGATE_TLS_*`` variables included); ConfigurationError saying what is wrong."""
    if is_sentinel(url):
        parse_sentinel_url(url)
    elif urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"Redis URL {mask_url(url)!r} must start with redis://, rediss://, unix:// "
            f"or sentinel:// ({SENTINEL_FORM})"
        )
    else:
        split_tls(url)
    return url


#: How the job store's connections behave: text replies, bounded connect and read times.
_STORE_CONNECTION = {
    "decode_responses": True,
    "socket_connect_timeout": 5,
    "socket_timeout": 30,
    "health_check_interval": 30,
}


def connect(url: str) -> redis.Redis:
    """A redis-py client for the job store; through the sentinels for a sentinel URL."""
    if is_sentinel(url):
        return parse_sentinel_url(url).connect(**_STORE_CONNECTION)
    plain_url, tls = split_tls(url)
    if tls is None:
        return redis.Redis.from_url(url, **_STORE_CONNECTION)
    return redis.Redis.from_url(
        plain_url,
        connection_class=HandshakeBoundSSLConnection,
        **_STORE_CONNECTION,
        **tls.options(),
    )


@contextmanager
def broker_errors(url: str, operation: str = "a command") -> Iterator[None]:
    """Turn redis-py and kombu connection and authentication failures into
    BrokerUnavailableError (BrokerTlsError when TLS is what failed, saying how), and an
    ACL refusal (NOPERM) of `operation` into PermissionDeniedError."""
    try:
        yield
    except (
        redis.ConnectionError,
        redis.TimeoutError,
        redis.AuthenticationError,
        redis.exceptions.ResponseError,  # NOPERM, from a command or from a script
        OperationalError,
    ) as e:
        refused = acl.denied(url, mask_url(url), operation, e)
        if refused is not None:
            raise refused from e
        if isinstance(e, redis.exceptions.ResponseError) and not isinstance(
            e, redis.exceptions.ReadOnlyError
        ):
            raise
        problem = tls_problem(e)
        if problem is None and is_sentinel(url):
            problem = parse_sentinel_url(url).tls_problem()
        if problem:
            raise BrokerTlsError(mask_url(url), problem) from e
        raise BrokerUnavailableError(mask_url(url), _cause(url, e)) from e


def _cause(url: str, error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if urlsplit(url).scheme == "redis" and isinstance(
        error.__cause__ or error.__context__, ConnectionResetError
    ):
        # a TLS-only server resets a plain-text connection at its first command
        text += " (if the server speaks TLS only, use rediss://)"
    return text


class _HasUrl(Protocol):
    url: str


S = TypeVar("S", bound=_HasUrl)


def guarded(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """A method of a Redis-backed object whose connection failures name its (masked) URL."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with broker_errors(self.url, method.__qualname__):
            return method(self, *args, **kwargs)

    return wrapper
