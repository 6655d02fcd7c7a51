"""What a job runs and with which environment: the same for every backend that runs scripts."""

from __future__ import annotations

import os
import shlex

from jobgate.client.errors import BackendError
from jobgate.client.models import JobSpec
from jobgate.client.profile_schema import ClusterProfile

#: The submitter's name, in every job's environment (set at submission).
OWNER_ENV = "JOBGATE_OWNER"
#: Worker settings that must not leak into a user's job environment.
_PRIVATE_ENV_PREFIXES = ("JOBGATE_", "CELERY_")


def job_name(profile: ClusterProfile, job_id: str) -> str:
    """The scheduler's name for a job: how jobgate finds its own jobs again."""
    return f"{profile.job_name_prefix}-{job_id}"


def render_program(spec: JobSpec, profile: ClusterProfile) -> str:
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


def _in_container(spec: JobSpec, profile: ClusterProfile) -> str:
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


def job_environment(job_id: str, spec: JobSpec, profile: ClusterProfile) -> dict[str, str]:
    """The worker's environment minus its own settings, then the job's env, then ids.

    `spec` is the spec as run: profile defaults applied, secret values filled in.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}
    env.update(spec.env)
    env["JOBGATE_JOB_ID"] = job_id
    env["JOBGATE_CLUSTER"] = profile.name
    return env
