"""Images on clusters without Kubernetes: run through the profile's container runtime.

No Apptainer runs here: a stand-in `apptainer` on PATH (its command-line boundary)
records its arguments and runs what would run inside the image.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobgate.client import Gateway, JobSpec, JobStatus
from jobgate.client.errors import BackendError
from jobgate.client.policy import evaluate_policy
from jobgate.client.profiles import load_profile
from jobgate.workers.backends.programs import render_program
from tests.support.workers import ProfileFactory, WorkerFactory

STAND_IN = """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/calls"
[ "$1" = exec ] || exit 90
shift
while [ "${1#docker://}" = "$1" ]; do shift; done
shift
exec "$@"
"""


def test_an_image_runs_through_the_profiles_container_runtime(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "apptainer").write_text(STAND_IN)
    (shim / "apptainer").chmod(0o755)
    profile = make_profile(containers={"runtime": "apptainer", "options": ["--nv"]})
    start_worker(profile, env={**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"})
    command = "echo inside $JOBGATE_JOB_ID for $JOBGATE_OWNER"
    job = gateway.submit(JobSpec(name="c", image="python:3.11-slim", command=command), "local")
    assert job.wait(timeout_s=60).status is JobStatus.SUCCEEDED
    assert "".join(job.logs()) == f"inside {job.id} for {job.record().owner}\n"
    calls = (shim / "calls").read_text().splitlines()
    assert calls == ["exec", "--nv", "docker://python:3.11-slim", "/bin/sh", "-c", command]


def test_without_a_runtime_an_image_is_refused_with_the_fix(make_profile: ProfileFactory) -> None:
    profile = load_profile(str(make_profile()))
    (finding,) = [f for f in evaluate_policy(JobSpec(name="c", image="alpine", command="true"),
                                             profile) if f.code == "image-unsupported"]  # fmt: skip
    assert "containers: {runtime: apptainer}" in finding.message
    with pytest.raises(BackendError, match="no container runtime"):
        render_program(JobSpec(name="c", image="alpine", command="true"), profile)


def test_argv_and_interpreter_scripts(make_profile: ProfileFactory) -> None:
    runtime = {"runtime": "singularity", "program": "/opt/sing/bin/singularity"}
    profile = load_profile(str(make_profile(containers=runtime)))
    argv = render_program(JobSpec(name="c", image="alpine", command=["ls", "a b"]), profile)
    assert argv == "#!/bin/sh\nexec /opt/sing/bin/singularity exec docker://alpine ls 'a b'\n"
    with pytest.raises(BackendError, match="interpreter line"):
        render_program(
            JobSpec(name="c", image="alpine", script="#!/usr/bin/env python3\n"), profile
        )
