"""TLS to Redis: one set of settings for every connection jobgate makes.

A ``rediss://`` URL verifies the server against the system's CAs unless told
otherwise. Left to themselves the libraries disagree: kombu (the broker) connects
without verifying anything, with a warning; Celery's result backend refuses the URL
without ``ssl_cert_reqs`` (a bare ValueError); redis-py verifies. So jobgate takes the
``ssl_*`` parameters out of the URL, adds the ``JOBGATE_TLS_*`` variables (the URL's
parameters win), and hands the same settings to redis-py (the job store), to kombu
(``broker_use_ssl``), to Celery's result backend (``redis_backend_use_ssl``) and so to
Flower, which reads ``broker_use_ssl`` too. A sentinel URL takes the same parameters
and variables for its sentinels and master (sentinel.py).

A failed handshake is told apart here (`tls_problem`) so the error says which of a
wrong CA, a plain-text server, a name mismatch or an expired certificate it was.
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis

from jobgate.client.errors import ConfigurationError

CA_ENV = "JOBGATE_TLS_CA"
CERT_ENV = "JOBGATE_TLS_CERT"
KEY_ENV = "JOBGATE_TLS_KEY"
ENV_VARS = (CA_ENV, CERT_ENV, KEY_ENV)

#: The URL parameters read, spelt as kombu, Celery and redis-py spell them.
CA_PARAM, CERT_PARAM, KEY_PARAM = "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"
REQS_PARAM, HOSTNAME_PARAM = "ssl_cert_reqs", "ssl_check_hostname"
_FILES = {CA_PARAM: CA_ENV, CERT_PARAM: CERT_ENV, KEY_PARAM: KEY_ENV}
_CERT_REQS = {
    "required": ssl.CERT_REQUIRED, "cert_required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL, "cert_optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE, "cert_none": ssl.CERT_NONE,
}  # fmt: skip
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class TlsSettings:
    """How to reach a Redis over TLS: whom to trust (`ca_certs`, or the system's CAs when
    None), what to present (`certfile`/`keyfile`, for mutual TLS) and how strictly."""

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    cert_reqs: ssl.VerifyMode = ssl.CERT_REQUIRED
    check_hostname: bool = True

    def options(self) -> dict[str, Any]:
        """Keyword arguments of redis-py's SSLConnection; kombu's ``broker_use_ssl`` and
        Celery's ``redis_backend_use_ssl`` take the same dict."""
        files = {CA_PARAM: self.ca_certs, CERT_PARAM: self.certfile, KEY_PARAM: self.keyfile}
        return {
            REQS_PARAM: self.cert_reqs,
            HOSTNAME_PARAM: self.check_hostname and self.cert_reqs != ssl.CERT_NONE,
            **{name: path for name, path in files.items() if path},
        }


def split_tls(url: str) -> tuple[str, TlsSettings | None]:
    """`url` (a redis://, rediss:// or unix:// URL) without its ``ssl_*`` parameters, and
    its TLS settings (None for plain text); ConfigurationError for a setting that cannot
    work, naming it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {k: v for k, v in query if k.startswith("ssl_")}
    rest = [(k, v) for k, v in query if not k.startswith("ssl_")]
    plain_url = parts._replace(query=urlencode(rest)).geturl()
    if parts.scheme != "rediss":
        if named := requested(given):
            raise ConfigurationError(
                f"{', '.join(named)} asks for TLS, but a {parts.scheme}:// URL is plain text: "
                f"use rediss://{parts.netloc.rpartition('@')[2]}{parts.path} (or drop it)"
            )
        return url, None
    return plain_url, tls_settings(given)


def requested(given: dict[str, str]) -> list[str]:
    """The URL parameters (`given`) and ``JOBGATE_TLS_*`` variables that ask for TLS."""
    return [*given, *(name for name in ENV_VARS if os.environ.get(name))]


def tls_settings(given: dict[str, str]) -> TlsSettings:
    """The TLS settings of a URL's ``ssl_*`` parameters (`given`) and the variables."""
    unknown = sorted(set(given) - {*_FILES, REQS_PARAM, HOSTNAME_PARAM})
    if unknown:
        known = ", ".join([*_FILES, REQS_PARAM, HOSTNAME_PARAM])
        raise ConfigurationError(f"unknown TLS parameter {unknown[0]!r} (jobgate reads {known})")
    env = {name: os.environ[name] for name in ENV_VARS if os.environ.get(name)}
    files = {param: _file(param, given, env) for param in _FILES}
    if files[KEY_PARAM] and not files[CERT_PARAM]:
        raise ConfigurationError(
            f"a client key ({KEY_PARAM} or {KEY_ENV}) needs its certificate: "
            f"set {CERT_PARAM} or {CERT_ENV} too"
        )
    reqs = given.get(REQS_PARAM, "required")
    if reqs.lower() not in _CERT_REQS:
        raise ConfigurationError(f"{REQS_PARAM}={reqs!r} must be required, optional or none")
    check = given.get(HOSTNAME_PARAM, "true")
    if check.lower() not in _BOOLS:
        raise ConfigurationError(f"{HOSTNAME_PARAM}={check!r} must be true or false")
    return TlsSettings(
        ca_certs=files[CA_PARAM],
        certfile=files[CERT_PARAM],
        keyfile=files[KEY_PARAM],
        cert_reqs=_CERT_REQS[reqs.lower()],
        check_hostname=_BOOLS[check.lower()],
    )


def _file(param: str, given: dict[str, str], env: dict[str, str]) -> str | None:
    """A certificate or key path from the URL, else from its variable; it must be a
    readable file (a typo should not surface as a handshake failure)."""
    variable = _FILES[param]
    where, path = (param, given[param]) if param in given else (variable, env.get(variable))
    if path is None:
        return None
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigurationError(f"{where}={path!r} is not a readable file")
    return path


class HandshakeBoundSSLConnection(redis.SSLConnection):
    """redis-py's TLS connection with the handshake bounded by the connect timeout, not
    the read timeout: a plain-text Redis never answers a handshake, and the read timeout
    (30 s) is far longer than "the server is not there" should take to say."""

    def _wrap_socket_with_ssl(self, sock: socket.socket) -> Any:
        sock.settimeout(self.socket_connect_timeout)
        wrapped = super()._wrap_socket_with_ssl(sock)  # type: ignore[no-untyped-call]
        wrapped.settimeout(self.socket_timeout)
        return wrapped


#: OpenSSL verify codes (X509_V_ERR_*) of a certificate no trusted CA signed.
_UNTRUSTED = {2, 18, 19, 20, 21}
_EXPIRED, _NOT_YET_VALID = 10, 9
_NAME_MISMATCH = {62, 63, 64}
#: OpenSSL reasons for an answer that is no TLS at all.
_NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
            "HTTP_REQUEST", "UNKNOWN_PROTOCOL"}  # fmt: skip
_CLIENT_REFUSED = {"TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_BAD_CERTIFICATE",
                   "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                   "SSLV3_ALERT_HANDSHAKE_FAILURE"}  # fmt: skip
_CLIENT_CERT_HINT = f"set {CERT_ENV} and {KEY_ENV}, or {CERT_PARAM} and {KEY_PARAM}"


def tls_problem(error: BaseException) -> str | None:
    """What went wrong with TLS in `error` (or what caused it), in words a user can act
    on; None when TLS is not the cause."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _verify_problem(cause.verify_code, cause.verify_message)
        if isinstance(cause, ssl.SSLEOFError):
            return (
                "TLS: the server closed the connection during the handshake; it may "
                f"require a client certificate ({_CLIENT_CERT_HINT}) or refuse the one given"
            )
        if isinstance(cause, ssl.SSLError) and cause.reason in _CLIENT_REFUSED:
            return (
                f"TLS: the server refused this client ({cause.reason}); it requires a "
                f"client certificate signed by a CA it trusts ({_CLIENT_CERT_HINT})"
            )
        if isinstance(cause, ssl.SSLError) and cause.reason in _NOT_TLS:
            return (
                f"TLS: the server does not speak TLS ({cause.reason}); for a plain-text "
                "Redis use redis://"
            )
        if isinstance(cause, TimeoutError) and "handshake" in str(cause):
            return (
                "TLS: no answer to the TLS handshake; the server may not speak TLS (for a "
                "plain-text Redis use redis://)"
            )
        cause = cause.__cause__ or cause.__context__
    return None


def _verify_problem(code: int, message: str) -> str:
    failed = "TLS: certificate verify failed:"
    if code in _UNTRUSTED:
        return (
            f"{failed} the server's certificate is not signed by a CA this client trusts "
            f"({message}); name the CA that signed it with {CA_ENV} or ?{CA_PARAM}=PATH"
        )
    if code == _EXPIRED:
        return f"{failed} the server's certificate has expired ({message}); it needs a new one"
    if code == _NOT_YET_VALID:
        return f"{failed} the server's certificate is not valid yet ({message}); check clocks"
    if code in _NAME_MISMATCH:
        return (
            f"{failed} the server's certificate is for another name ({message}); connect by "
            "a name the certificate holds"
        )
    return f"{failed} {message} (OpenSSL verify code {code})"
