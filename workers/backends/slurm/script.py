"""Slurm job scripts and sbatch command lines, as pure functions.

A job lives in ``<work_dir>/<jobgate id>/`` (a directory compute nodes can see):
the program, the batch script (kept for debugging), stdout/stderr, and per task an
exit record the script's wrapper writes (exit code, start, end) so that the
outcome is known even after Slurm has forgotten the job.
"""

from __future__ import annotations

import re
from pathlib import Path

from jobgate.client.errors import BackendError
from jobgate.client.models import JobSpec
from jobgate.client.profile_schema import SlurmProfile
from jobgate.client.scheduler_options import SBATCH, env_refusal, owned_or_unreadable
from jobgate.workers.backends.base import JobSubmission
from jobgate.workers.backends.jobfiles import JobFiles, batch_script
from jobgate.workers.backends.programs import job_name

_JOB_ID = re.compile(r"^(\d+)(?:;(\S+))?$")


class SlurmFiles(JobFiles):
    script_suffix = "sbatch"
    backend_id_suffix = "slurm-id"

    def output_pattern(self, stream: str, array: bool) -> str:
        """sbatch's --output/--error pattern (%a: the array index)."""
        name = f"{self.job_id}.%a.{stream}" if array else f"{self.job_id}.{stream}"
        return str(self.directory / name)


def format_walltime(seconds: int) -> str:
    """Seconds as Slurm's --time: HH:MM:SS, or D-HH:MM:SS from a day on."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def directives(job: JobSubmission, profile: SlurmProfile, files: SlurmFiles) -> list[str]:
    """The #SBATCH options of a job: the spec's resources over the profile's settings."""
    spec, settings, dependencies = job.spec, profile.slurm, job.dependencies
    r = spec.resources
    options = [
        f"--job-name={job_name(profile, job.job_id)}",
        f"--output={files.output_pattern('out', spec.array is not None)}",
        f"--error={files.output_pattern('err', spec.array is not None)}",
        f"--cpus-per-task={r.cpus}",
        f"--chdir={spec.working_dir or files.directory}",
    ]
    optional = {
        "--mem": f"{r.memory_mb}M" if r.memory_mb else None,
        "--gres": f"gpu:{r.gpus}" if r.gpus else None,
        "--time": format_walltime(r.walltime_s) if r.walltime_s else None,
        "--partition": r.queue or settings.partition,
        "--account": r.account or settings.account,
        "--qos": settings.qos,
        "--constraint": settings.constraint,
        "--array": spec.array.model_dump() if spec.array else None,
        "--dependency": "afterok:" + ":".join(dependencies) if dependencies else None,
    }
    options += [f"{flag}={value}" for flag, value in optional.items() if value]
    for option in options:
        if any(c.isspace() for c in option):
            raise BackendError(f"#SBATCH {option!r}: Slurm directives cannot contain whitespace")
    return options


def render_script(options: list[str], files: SlurmFiles, array: bool) -> str:
    """The batch script: directives, then the wrapper that runs the program once."""
    index = "SLURM_ARRAY_TASK_ID" if array else None
    return batch_script("#SBATCH", options, files, index, redirect=False)


def submit_argv(profile: SlurmProfile, spec: JobSpec, script: Path) -> list[str]:
    """sbatch's command line: the profile's extra arguments first, then the job's (which,
    like the variables of the job's env that sbatch reads as options, may never be
    options jobgate sets itself, or words that are no options: the policy checks the
    rest)."""
    job_args = spec.slurm.extra_args if spec.slurm else []
    refused = owned_or_unreadable(SBATCH, job_args)
    if refused:
        raise BackendError(f"slurm.extra_args: {refused}")
    refused = env_refusal(SBATCH, spec.env)  # sbatch reads SBATCH_* variables as options
    if refused:
        raise BackendError(refused)
    return ["sbatch", "--parsable", *profile.slurm.extra_args, *job_args, str(script)]


def parse_submitted(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` ("1234", or "1234;cluster")."""
    match = _JOB_ID.match(stdout.strip())
    if not match:
        raise BackendError(f"sbatch --parsable printed {stdout.strip()!r}, not a job id")
    return match.group(1)
