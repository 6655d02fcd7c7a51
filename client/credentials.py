"""Secrets: which names are sensitive, references to secrets, credentials, scrubbing.

A name is sensitive when one of its words is SECRET, TOKEN, PASSWORD, PASSWD,
KEY or CREDENTIAL. Words are split at non-alphanumerics and camelCase humps and
matched whole, so ``AWS_SECRET_ACCESS_KEY`` and ``apiToken`` are sensitive while
``SECRETS_PATH`` and ``KEYBOARD`` are not.

A job spec's `env` values of sensitive names, and of the names its `secret_names`
lists, are kept out of the job record; any other value is stored as given.

Profiles and job specs never hold a secret by value where a reference will do:
``env:NAME`` names a variable in the worker's environment. A job may reference only
the variables its cluster's profile allows (`secret_var_refusal`): the worker's
environment also holds the worker's own secrets (its Redis URL, Flower's password,
cloud keys), which no job may read unless the operator names them one by one.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jobgate.client.errors import ConfigurationError

SENSITIVE_WORDS = frozenset({"SECRET", "TOKEN", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL"})
REDACTED = "<redacted>"
UNSET = "<unset>"
MASK = "***"

_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]{0,127})$")
#: References to a Kubernetes Secret's key, resolved by the cluster, never by jobgate.
K8S_REF_PREFIX = "k8s:"
SECRET_REF_PREFIXES = ("env:", K8S_REF_PREFIX)
#: The shortest value the scrubber removes from text; shorter ones would mangle it.
MIN_SCRUB_LENGTH = 4


#: Families of variables that belong to jobgate, Celery, Flower, Redis clients, Kubernetes
#: and cloud SDKs (they hold the worker's own credentials): a job's secret_env may read
#: one only when the profile names it exactly, never through a pattern.
PROTECTED_VAR_PREFIXES = (
    "JOBGATE_", "CELERY_", "FLOWER_", "REDIS", "KUBE", "AWS_", "BOTO_", "GOOGLE_",
    "GCLOUD_", "CLOUDSDK_", "AZURE_", "ARM_", "OS_", "VAULT_",
)  # fmt: skip
#: Where a profile lists the worker variables jobs may reference.
ALLOWED_SECRET_VARS_FIELD = "policy.allowed_secret_vars"  # noqa: S105 - a field name


def is_protected_var(name: str) -> bool:
    """A variable of jobgate's, a library's or a cloud SDK's own (PROTECTED_VAR_PREFIXES)."""
    return name.upper().startswith(PROTECTED_VAR_PREFIXES)


def secret_var_refusal(
    name: str,
    allowed: Iterable[str],
    exact: Collection[str] = (),
    protected: Collection[str] = (),
) -> str | None:
    """Why a job may not read worker variable `name` through ``env:NAME``, or None if it
    may: `allowed` holds names and glob patterns (fnmatch, case-sensitive); a protected
    name (PROTECTED_VAR_PREFIXES, or one of `protected`: the worker's own credentials a
    profile names) must be listed exactly, in `allowed` or in `exact` (the references
    the profile's own defaults make)."""
    patterns = list(allowed)
    if name in exact or name in patterns:
        return None
    if name in protected:
        return (
            f"{name} holds the worker's own storage credentials; only its exact name in "
            f"the cluster profile's {ALLOWED_SECRET_VARS_FIELD} lets jobs read it"
        )
    if is_protected_var(name):
        return (
            f"{name} is one of the worker's own variables (jobgate's, Celery's, Flower's, "
            "Redis's, Kubernetes' or a cloud SDK's); only its exact name in the cluster "
            f"profile's {ALLOWED_SECRET_VARS_FIELD} lets jobs read it"
        )
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
        return None
    return (
        f"the cluster profile does not let jobs read worker variable {name}: add it (or a "
        f"pattern matching it) to {ALLOWED_SECRET_VARS_FIELD}"
    )


def name_words(name: str) -> list[str]:
    """The words of a variable or field name, upper-cased."""
    return [w.upper() for w in _WORDS.findall(name)]


def is_sensitive_name(name: str) -> bool:
    return any(word in SENSITIVE_WORDS for word in name_words(name))


def redact_sensitive_map(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with sensitive names' values replaced by ``<redacted>`` and None by ``<unset>``.

    Nested mappings are redacted the same way.
    """
    redacted: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            redacted[name] = UNSET
        elif is_sensitive_name(name):
            redacted[name] = REDACTED
        elif isinstance(value, Mapping):
            redacted[name] = redact_sensitive_map(value)
        else:
            redacted[name] = value
    return redacted


def resolve_ref(ref: str, environ: Mapping[str, str] | None = None) -> str:
    """The value an ``env:NAME`` reference points to; ConfigurationError naming NAME if unset."""
    match = ENV_REF.match(ref)
    if not match:
        raise ConfigurationError(f"{ref!r} is not a secret reference (write env:VARIABLE_NAME)")
    name = match.group(1)
    value = (os.environ if environ is None else environ).get(name)
    if value is None:
        raise ConfigurationError(f"secret reference {ref} points to an unset variable {name}")
    return value


@dataclass(frozen=True)
class StorageCredentials:
    """S3 credentials and where they came from; the repr shows no secret."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    source: str = "arguments"

    def __repr__(self) -> str:
        key = self.access_key_id
        shown = f"{key[:4]}…" if len(key) > 8 else MASK
        token = UNSET if self.session_token is None else MASK
        return (
            f"StorageCredentials(source={self.source!r}, access_key_id={shown!r}, "
            f"secret_access_key={MASK!r}, session_token={token!r})"
        )


@dataclass(frozen=True)
class CredentialRefs:
    """Where a profile says the storage credentials are (references, never values)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def resolve_credentials(
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    refs: CredentialRefs | None = None,
    environ: Mapping[str, str] | None = None,
) -> StorageCredentials:
    """Storage credentials from, in order: the arguments, the environment
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), the
    profile's references. The first complete source wins; a half-given pair is an error.
    """
    env = os.environ if environ is None else environ
    if access_key_id is not None or secret_access_key is not None:
        if access_key_id is None or secret_access_key is None:
            raise ConfigurationError("give both access_key_id and secret_access_key, or neither")
        return StorageCredentials(access_key_id, secret_access_key, session_token, "arguments")
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        return StorageCredentials(
            env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"],
            env.get("AWS_SESSION_TOKEN"),
            "environment",
        )
    if refs is not None:
        return StorageCredentials(
            resolve_ref(refs.access_key_id, env),
            resolve_ref(refs.secret_access_key, env),
            resolve_ref(refs.session_token, env) if refs.session_token else None,
            "profile",
        )
    raise ConfigurationError(
        "no storage credentials: pass access_key_id and secret_access_key, set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add storage.credentials "
        "references (env:NAME) to the cluster profile"
    )


class SecretScrubber:
    """Removes known secret values from text (log lines, error messages, reasons)."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        self._values.update(v for v in values if len(v) >= MIN_SCRUB_LENGTH)

    def scrub(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text


class ScrubbingFilter(logging.Filter):
    """A logging filter for every record it passes: mapping arguments are redacted by
    name (`redact_sensitive_map`), and known secret values are scrubbed from the text."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = redact_sensitive_map(record.args)
        message = record.getMessage()
        scrubbed = self.scrubber.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True
