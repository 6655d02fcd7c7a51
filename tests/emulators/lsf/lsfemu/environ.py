"""The environment a job runs with: what bsub -env propagates, plus LSF's own variables."""

from __future__ import annotations

import itertools
import os
import pwd
import re
from collections.abc import Mapping

from .errors import LsfError
from .model import Job, Task

#: Variables LSF never takes from the submission environment (set for the job instead).
NOT_PROPAGATED = frozenset(
    {
        "HOME", "LS_JOBPID", "LSB_ACCT_MAP", "LSB_EXIT_PRE_ABORT", "LSB_EXIT_REQUEUE",
        "LSB_EVENT_ATTRIB", "LSB_HOSTS", "LSB_INTERACTIVE", "LSB_INTERACTIVE_SSH",
        "LSB_INTERACTIVE_TTY", "LSB_JOBFILENAME", "LSB_JOBID", "LSB_JOBINDEX", "LSB_JOBNAME",
        "LSB_MCPU_HOSTS", "LSB_QUEUE", "LSB_BATCH_JID", "PWD", "OLDPWD",
    }
)  # fmt: skip

_ITEM_SPLIT = re.compile(r",(?=(?:[^']*'[^']*')*[^']*$)")


def _bad_env() -> LsfError:
    return LsfError("Bad argument for option -env. Job not submitted.")


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Expand $NAME and ${NAME} from the submission environment, as the docs allow."""

    def replace(match: re.Match[str]) -> str:
        return env.get(match[1] or match[2], "")

    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, value)


def submission_environment(spec: str | None, env: Mapping[str, str]) -> dict[str, str]:
    """What ``-env spec`` (default "all") takes from the submission environment."""
    base = {k: v for k, v in env.items() if k not in NOT_PROPAGATED}
    if spec is None:
        return base
    items = [item.strip() for item in _ITEM_SPLIT.split(spec) if item.strip()]
    if not items:
        raise _bad_env()
    if items[0].lower() == "none":
        if len(items) > 1:
            raise _bad_env()
        return {}
    result: dict[str, str] = {}
    if items[0].lower() == "all":
        result = dict(base)
        items = items[1:]
    for item in items:
        if item.startswith("~"):
            result.pop(item[1:].strip(), None)
            continue
        name, eq, value = item.partition("=")
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or name.lower() in {"all", "none"}:
            raise _bad_env()
        if eq:
            result[name] = _expand(value, env)
        elif name in env:
            result[name] = env[name]
    return result


def job_environment(job: Job, task: Task, cwd: str, out: str, err: str) -> dict[str, str]:
    """The complete environment of one task."""
    env = dict(job.env)
    try:
        account = pwd.getpwnam(job.user)
        env.setdefault("USER", job.user)
        env.setdefault("LOGNAME", job.user)
        env.setdefault("SHELL", account.pw_shell or "/bin/sh")
        env["HOME"] = account.pw_dir
    except KeyError:
        env.setdefault("HOME", os.environ.get("HOME", "/"))
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    hosts = " ".join([job.exec_host] * job.slots)
    env.update(
        {
            "PWD": cwd,
            "LSB_JOBID": str(job.jobid),
            "LSB_JOBINDEX": str(task.index),
            "LSB_BATCH_JID": job.task_id(task),
            "LSB_JOBNAME": job.task_name(task),
            "LSB_QUEUE": job.queue,
            "LSB_SUBCWD": job.subcwd,
            "LS_SUBCWD": job.subcwd,
            "LSB_SUB_HOST": job.from_host,
            "LSB_HOSTS": hosts,
            "LSB_MCPU_HOSTS": f"{job.exec_host} {job.slots}",
            "LSB_DJOB_NUMPROC": str(job.slots),
            "LSB_MAX_NUM_PROCESSORS": str(job.slots),
            "LSB_EXEC_CLUSTER": job.cluster,
            "LSB_JOBFILENAME": job.script,
            "LSB_PROJECT_NAME": job.project,
            "LSFUSER": job.user,
            "LSB_JOB_EXECUSER": job.user,
        }
    )
    if out:
        env["LSB_OUTPUTFILE"] = out
    if err:
        env["LSB_ERRORFILE"] = err
    if job.is_array:
        indices = [t.index for t in job.tasks]
        env["LSB_JOBINDEX_END"] = str(max(indices))
        steps = {b - a for a, b in itertools.pairwise(indices)}
        env["LSB_JOBINDEX_STEP"] = str(steps.pop() if len(steps) == 1 else 1)
    if job.resreq:
        env["LSB_EFFECTIVE_RSRCREQ"] = job.resreq
    return env
