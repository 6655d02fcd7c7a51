"""Secrets on the worker: filling them into a job at submission, and keeping them
out of everything else.

Every secret value this process handles is added to one scrubber; a logging
filter on every handler (installed through Celery's logging signals, in the main
process and in each pool process) replaces such values in log records, and
failure reasons pass through the same scrubber before they are recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery import signals

from jobgate.client.credentials import (
    K8S_REF_PREFIX,
    REDACTED,
    ScrubbingFilter,
    SecretScrubber,
    resolve_ref,
)
from jobgate.client.errors import BackendError, ConfigurationError
from jobgate.client.models import JobSpec
from jobgate.client.policy import secret_ref_refusals
from jobgate.client.profile_schema import ClusterProfile

SCRUBBER = SecretScrubber()


def _add_filter(logger: logging.Logger | None = None, **kwargs: Any) -> None:
    """Give every handler of the root logger and of `logger` the scrubbing filter, once."""
    targets = [logging.getLogger(), *([logger] if logger is not None else [])]
    for target in targets:
        for handler in target.handlers:
            if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
                handler.addFilter(ScrubbingFilter(SCRUBBER))


def install_log_scrubbing() -> None:
    signals.after_setup_logger.connect(_add_filter, weak=False)
    signals.after_setup_task_logger.connect(_add_filter, weak=False)


def with_secrets(spec: JobSpec, secrets: Mapping[str, str], profile: ClusterProfile) -> JobSpec:
    """The spec to run: redacted env values filled from the job's secrets, and `secret_env`
    references resolved from this worker's environment, only as far as the profile allows
    (a refused reference is a BackendError, whatever the policy findings and overrides).
    Every value joins the scrubber."""
    refused = secret_ref_refusals(spec, profile)
    if refused:
        raise BackendError("; ".join(refused.values()))
    env = dict(spec.env)
    for name, value in spec.env.items():
        if value == REDACTED:
            if name not in secrets:
                raise BackendError(f"the secret value of {name} is no longer available")
            env[name] = secrets[name]
    cluster_refs = {n: r for n, r in spec.secret_env.items() if r.startswith(K8S_REF_PREFIX)}
    for name, ref in spec.secret_env.items():
        if name in cluster_refs:
            continue  # the cluster resolves it (a Kubernetes secretKeyRef)
        try:
            env[name] = resolve_ref(ref)
        except ConfigurationError as e:
            raise BackendError(f"secret_env {name}: {e}") from e
    SCRUBBER.add(env[name] for name in (*secrets, *spec.secret_env) if name in env)
    return spec.model_copy(update={"env": env, "secret_env": cluster_refs})
