"""Every error jobgate raises to a user, under one root: `JobgateError`.

Third-party exceptions (redis, kombu, celery) are wrapped with ``from e`` so
that callers catch one tree and still see the cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobgate.client.models import PolicyFinding


class JobgateError(Exception):
    """Root of every error jobgate raises."""


class ConfigurationError(JobgateError):
    """A required setting is missing or malformed; the message says how to set it."""


class BrokerUnavailableError(JobgateError):
    """Redis (broker, result backend and job store) cannot be reached."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"Redis at {url} is unavailable: {cause}")
        self.url = url
        self.cause = cause


class PermissionDeniedError(BrokerUnavailableError, PermissionError):
    """Redis refused a command by ACL (NOPERM): the ACL user lacks the permission.

    A BrokerUnavailableError, so that whatever must happen when Redis cannot be used
    (a recorded job that cannot be queued is marked FAILED) happens; but never ridden
    out as an outage: waiting does not grant a permission.
    """

    def __init__(self, url: str, user: str, operation: str, refused: str, said: str) -> None:
        cause = f"ACL user {user!r} lacks the permission: {refused} (Redis: {said})"
        JobgateError.__init__(
            self,
            f"Redis at {url} refused {operation}: {cause}; ask the operator for a user "
            "whose role allows it (jobgate acl)",
        )
        self.url = url
        self.cause = cause
        self.user = user
        self.operation = operation
        self.refused = refused


class BrokerTlsError(BrokerUnavailableError):
    """Redis could not be reached over TLS: the cause says which of an untrusted CA, an
    expired certificate, a name mismatch, a plain-text server or a refused client
    certificate it was."""


class SpecInvalidError(JobgateError, ValueError):
    """A job spec, profile or argument failed validation."""


class ProfileNotFoundError(JobgateError):
    """No cluster profile has the requested name or path."""


class JobNotFoundError(JobgateError, KeyError):
    """No job record has this id (never submitted, or purged after its retention)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class JobTimeoutError(JobgateError, TimeoutError):
    """A wait for a job or for a worker's answer ran out of time."""


class BackendError(JobgateError):
    """A scheduler or backend call failed.

    ``transient`` says whether retrying the same call later can succeed
    (controller busy, socket timeout) or not (rejected job, bad option).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class SchedulerUnavailableError(BackendError):
    """The scheduler did not answer (timeout, daemon down); always transient."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


class StorageError(BackendError):
    """S3 refused or failed a transfer of job files (inputs, outputs, logs).

    The message names the bucket, object or part, never a presigned URL or a credential.
    """


class OutputsIncompleteError(JobgateError):
    """A finished job's outputs are not all in S3 yet: an upload failed (the reason
    says why) and the gateway retries it."""


class DestinationExistsError(JobgateError, FileExistsError):
    """A retrieve would replace a local file; pass overwrite=True (--overwrite) to allow it."""


class PolicyBlockedError(JobgateError):
    """The cluster's policy blocks the job; `findings` says why."""

    def __init__(self, cluster: str, findings: list[PolicyFinding], *, overridable: bool) -> None:
        lines = "\n".join(f"  {f.code}: {f.message}" for f in findings)
        how = (
            "submit with allow_policy_risk=True to take the risk (this profile allows it)"
            if overridable
            else "this profile allows no override"
        )
        super().__init__(f"cluster {cluster}'s policy blocks the job:\n{lines}\n({how})")
        self.findings = findings


class ClusterNotServedWarning(UserWarning):
    """No live worker serves the cluster: a job submitted to it waits in its queue."""
