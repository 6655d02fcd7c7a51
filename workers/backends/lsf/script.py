"""LSF job scripts and bsub command lines, as pure functions.

A job lives in ``<work_dir>/<jobgate id>/`` like a Slurm job: program, script
(kept for debugging), and per task an exit record the wrapper writes. The
program's stdout/stderr go to jobgate's own files; bsub's ``-o``/``-e`` files
(``lsf-%J.%I.out``/``.err``) get what LSF adds, its job report among it, so that
the job's own output stays clean. The script reaches bsub on stdin (``bsub <
script``), where LSF reads its ``#BSUB`` lines; bsub's command-line arguments
(the profile's, then the job's) override them.
"""

from __future__ import annotations

import math
import re

from jobgate.client.errors import BackendError
from jobgate.client.models import JobSpec, format_array_text
from jobgate.client.profile_schema import LsfProfile, LsfSettings
from jobgate.client.scheduler_options import (
    BSUB,
    OptionsError,
    directive_words,
    env_refusal,
    owned_or_unreadable,
)
from jobgate.workers.backends.base import JobSubmission
from jobgate.workers.backends.jobfiles import JobFiles, batch_script
from jobgate.workers.backends.programs import CLUSTER_ENV, JOB_ID_ENV, OWNER_ENV, job_name

_SUBMITTED = re.compile(r"^Job <(\d+)> is submitted to (?:default )?queue <([^>]*)>\.", re.M)
#: Characters a directive value cannot hold: LSF reads #BSUB lines with shell-like quoting.
_UNQUOTABLE = re.compile(r"[\"'\\$`\n]")
_MB_PER_UNIT = {"KB": 1 / 1024, "MB": 1, "GB": 1024, "TB": 1024 * 1024}


class LsfFiles(JobFiles):
    script_suffix = "bsub"
    backend_id_suffix = "lsf-id"

    def report_pattern(self, stream: str) -> str:
        """bsub's -o/-e: LSF's own output of each task (%J: job id, %I: array index)."""
        return str(self.directory / f"lsf-%J.%I.{stream}")


def memory_in_units(memory_mb: int, units: str) -> int:
    """Megabytes in the cluster's LSF_UNIT_FOR_LIMITS, rounded up (never below the ask)."""
    return math.ceil(memory_mb / _MB_PER_UNIT[units])


def array_name(name: str, spec: JobSpec) -> str:
    """bsub -J for an array: ``name[1-10]%3`` (LSF's syntax for indices and slot limit)."""
    if spec.array is None:
        return name
    limit = f"%{spec.array.max_concurrent}" if spec.array.max_concurrent else ""
    return f"{name}[{format_array_text(spec.array.indices, None)}]{limit}"


def _directive(flag: str, value: str | None = None) -> str:
    if value is None:
        return flag
    if _UNQUOTABLE.search(value):
        raise BackendError(f"#BSUB {flag} {value!r}: LSF directives cannot contain quotes, "
                           "backslashes, '$' or backticks")  # fmt: skip
    return f'{flag} "{value}"' if any(c.isspace() for c in value) else f"{flag} {value}"


def _propagated(job: JobSubmission, settings: LsfSettings) -> str:
    """bsub -env: everything, or only jobgate's variables and the job's own (by name:
    LSF takes the values from bsub's environment, so none is written down)."""
    if settings.env_mode == "all":
        return "all"
    own = {*job.spec.env, OWNER_ENV} if job.owner else set(job.spec.env)
    return ", ".join([JOB_ID_ENV, CLUSTER_ENV, *sorted(own)])


def directives(job: JobSubmission, profile: LsfProfile, files: LsfFiles) -> list[str]:
    """The #BSUB lines of a job (without the prefix): the spec's resources over the
    profile's settings, less those `directives_skip` matches, then the profile's extra
    lines and the job's own."""
    spec, settings, dependencies = job.spec, profile.lsf, job.dependencies
    r = spec.resources
    generated = [
        _directive("-J", array_name(job_name(profile, job.job_id), spec)),
        _directive("-o", files.report_pattern("out")),
        _directive("-e", files.report_pattern("err")),
        _directive("-n", str(r.cpus)),
        _directive("-R", "span[hosts=1]"),
        _directive("-cwd", spec.working_dir or str(files.directory)),
        _directive("-env", _propagated(job, settings)),
    ]
    if r.memory_mb:
        amount = str(memory_in_units(r.memory_mb, settings.lsf_units))
        generated += [_directive("-M", amount), _directive("-R", f"rusage[mem={amount}]")]
    optional = {
        "-gpu": f"num={r.gpus}" if r.gpus else None,
        "-W": str(math.ceil(r.walltime_s / 60)) if r.walltime_s else None,
        "-q": r.queue or settings.queue,
        "-P": r.account or settings.project,
        "-L": settings.login_shell,
        "-w": "&&".join(f"done({d})" for d in dependencies) if dependencies else None,
    }
    generated += [_directive(flag, value) for flag, value in optional.items() if value]
    kept = [d for d in generated if not any(skip in d for skip in settings.directives_skip)]
    extra = [line.removeprefix("#BSUB ") for line in settings.extra_directives]
    own = spec.lsf.directives if spec.lsf else []
    _refuse_owned("lsf.directives", own, words=True)
    return [*kept, *extra, *own]


def _refuse_owned(field: str, given: list[str], *, words: bool = False) -> None:
    """BackendError if a job's own options hold one jobgate sets itself, or a word that
    is no option (the policy checks the rest)."""
    try:
        refused = owned_or_unreadable(BSUB, directive_words(given) if words else given)
    except OptionsError as e:
        refused = str(e)
    if refused:
        raise BackendError(f"{field}: {refused}")


def render_script(options: list[str], files: LsfFiles, array: bool) -> str:
    """The script bsub reads on stdin: #BSUB lines, then the wrapper that runs the program."""
    index = "LSB_JOBINDEX" if array else None
    return batch_script("#BSUB", options, files, index, redirect=True)


def submit_argv(profile: LsfProfile, spec: JobSpec) -> list[str]:
    """bsub's command line (the script comes on stdin): the profile's extra arguments
    first, then the job's."""
    job_args = spec.lsf.extra_args if spec.lsf else []
    _refuse_owned("lsf.extra_args", job_args)
    refused = env_refusal(BSUB, spec.env)  # bsub reads LSB_*/LSF_* variables
    if refused:
        raise BackendError(refused)
    return ["bsub", *profile.lsf.extra_args, *job_args]


def parse_submitted(stdout: str) -> str:
    """The job id from bsub's ``Job <N> is submitted to queue <Q>.``; other lines (an
    esub's notes, say) may come before it."""
    match = _SUBMITTED.search(stdout)
    if not match:
        raise BackendError(f"bsub printed {stdout.strip()[-500:]!r}, not a submitted job")
    return match.group(1)
