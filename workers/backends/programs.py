"""What a job runs and with which environment: the same for every backend.

The variables every job finds in its environment are named here once; the worker's
own settings (``JOBGATE_*``, ``CELERY_*``) never reach a job.
"""

from __future__ import annotations

import os
import shlex

from jobgate.client.errors import BackendError
from jobgate.client.models import JobSpec
from jobgate.client.profile_schema import HostProfile, ProfileBase
from jobgate.workers.backends.base import JobSubmission

#: The job's jobgate id.
JOB_ID_ENV = "JOBGATE_JOB_ID"
#: The name of the cluster it runs on.
CLUSTER_ENV = "JOBGATE_CLUSTER"
#: Who submitted it.
OWNER_ENV = "JOBGATE_OWNER"
#: An array element's index.
ARRAY_INDEX_ENV = "JOBGATE_ARRAY_INDEX"
#: Worker settings that must not leak into a user's job environment.
PRIVATE_ENV_PREFIXES = ("JOBGATE_", "CELERY_")


def jobgate_variables(job_id: str, cluster: str, owner: str) -> dict[str, str]:
    """What jobgate tells every job about itself (the owner only when known)."""
    ids = {JOB_ID_ENV: job_id, CLUSTER_ENV: cluster}
    return {**ids, OWNER_ENV: owner} if owner else ids


def job_name(profile: ProfileBase, job_id: str) -> str:
    """The scheduler's name for a job: how jobgate finds its own jobs again."""
    return f"{profile.job_name_prefix}-{job_id}"


def render_program(spec: JobSpec, profile: HostProfile) -> str:
    """The executable file a task runs: a script with a shebang, from command or script.

    A spec with an `image` runs inside it through the profile's container runtime
    (``apptainer exec [options] docker://<image> <argv>``): a string command or a script
    without a shebang under /bin/sh -c, a list as it is. The environment is inherited.
    """
    if spec.image is not None:
        return _in_container(spec, profile)
    if isinstance(spec.command, list):
        return f"#!/bin/sh\nexec {shlex.join(spec.command)}\n"
    text = spec.command if spec.command is not None else spec.script
    assert text is not None
    return text if text.startswith("#!") else f"#!/bin/sh\n{text}\n"


def _in_container(spec: JobSpec, profile: HostProfile) -> str:
    containers = profile.containers
    if containers is None:
        raise BackendError(
            f"cluster {profile.name} has no container runtime for image {spec.image}: "
            "give the profile 'containers: {runtime: apptainer}'"
        )
    if isinstance(spec.command, list):
        argv = list(spec.command)
    else:
        text = spec.command if spec.command is not None else spec.script
        assert text is not None
        if text.startswith("#!"):
            raise BackendError("a script with its own interpreter line cannot run in an image "
                               "yet: give it as command=['python3', '-c', ...]")  # fmt: skip
        argv = ["/bin/sh", "-c", text]
    runtime = [containers.program or containers.runtime, "exec", *containers.options]
    return f"#!/bin/sh\nexec {shlex.join([*runtime, f'docker://{spec.image}', *argv])}\n"


def job_environment(job: JobSubmission, profile: ProfileBase) -> dict[str, str]:
    """The worker's environment minus its own settings, then the job's env, then
    jobgate's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE_ENV_PREFIXES)}
    env.update(job.spec.env)
    env.update(jobgate_variables(job.job_id, profile.name, job.owner))
    return env
