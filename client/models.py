"""The contract between client and workers: job specs, statuses and records.

Every model forbids unknown fields, so a misspelt option is an error at the
client, not a silently ignored setting on a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from jobgate.client.credentials import REDACTED, is_sensitive_name
from jobgate.client.files import InputFile, OutputGlob, OutputsReport
from jobgate.client.ids import JOB_ID_PATTERN
from jobgate.client.plain_data import PlainDataError, check_plain_data
from jobgate.client.strict_model import StrictModel

MAX_ARRAY_ELEMENTS = 100_000
#: The largest array index (Slurm's MaxArraySize cannot exceed 4,000,001).
MAX_ARRAY_INDEX = 4_000_000
#: The error type of a value that cannot be stored (see jobgate.client.plain_data); its
#: context holds the path below the field that failed.
PLAIN_DATA_ERROR = "plain_data"

#: An RFC 1123 label: job and cluster names, tags, run ids, namespaces. Safe in queue
#: names, scheduler job names, Kubernetes labels and file names.
Label = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
ClusterName = Label
#: Queue, partition, account or project names as schedulers spell them.
SchedulerName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
#: One line of text: no NUL, no carriage return, no newline (it cannot start a second
#: directive or command wherever it is written).
OneLine = Annotated[str, StringConstraints(pattern=r"^[^\x00\r\n]*$", max_length=4096)]
#: A reference to a secret in the worker's environment.
#: ``env:NAME`` (a variable of the worker's environment) or, on Kubernetes,
#: ``k8s:<secret>/<key>`` (a key of a Secret in the job's namespace).
SecretRef = Annotated[
    str,
    StringConstraints(
        pattern=r"^(env:[A-Za-z_][A-Za-z0-9_]{0,127}|k8s:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
        r"/[-._a-zA-Z0-9]{1,253})$"
    ),
]
#: A container image reference.
Image = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}$")]
AbsolutePath = Annotated[str, StringConstraints(pattern=r"^/[^\x00\r\n]*$", max_length=4096)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL byte")
    return value


#: A jobgate job id (see jobgate.client.ids).
JobId = Annotated[str, StringConstraints(pattern=JOB_ID_PATTERN.pattern)]


class JobStatus(StrEnum):
    """Where a job is in its life. NEW: accepted by the gateway, not yet on the cluster."""

    NEW = "NEW"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_pending(self) -> bool:
        return self in PENDING_STATES

    @property
    def is_running(self) -> bool:
        return self is JobStatus.RUNNING

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_STATES

    @property
    def is_active(self) -> bool:
        return self not in FINISHED_STATES

    @classmethod
    def finished_states(cls) -> frozenset[JobStatus]:
        return FINISHED_STATES

    @classmethod
    def active_states(cls) -> frozenset[JobStatus]:
        return ACTIVE_STATES


PENDING_STATES = frozenset({JobStatus.NEW, JobStatus.PENDING})
FINISHED_STATES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATES = frozenset(JobStatus) - FINISHED_STATES


#: ASCII digits only: str.isdigit and \d also take other scripts' digits (Arabic-Indic 3-5).
_ARRAY_ITEM = re.compile(r"^([0-9]+)(?:-([0-9]+)(?::([0-9]+))?)?$")
_ARRAY_LIMIT = re.compile(r"^[0-9]+$")


class ArraySpec(StrictModel):
    """A job array: element indices and how many may run at once.

    Written as in Slurm: ``"0-4%2"`` (indices 0..4, at most 2 at once),
    ``"1,3,10-20:5"`` (a list with a stepped range). It serializes back to that text.
    """

    indices: list[int]
    max_concurrent: int | None = Field(default=None, ge=1, le=MAX_ARRAY_ELEMENTS)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_array_text(value)
        return value

    @field_validator("indices")
    @classmethod
    def _check_indices(cls, indices: list[int]) -> list[int]:
        if not indices:
            raise ValueError("an array needs at least one index")
        if len(indices) > MAX_ARRAY_ELEMENTS:
            raise ValueError(f"an array may have at most {MAX_ARRAY_ELEMENTS} elements")
        if min(indices) < 0:
            raise ValueError("array indices must be >= 0")
        if max(indices) > MAX_ARRAY_INDEX:
            raise ValueError(f"array indices must be <= {MAX_ARRAY_INDEX}")
        return sorted(set(indices))

    @model_serializer
    def _to_text(self) -> str:
        return format_array_text(self.indices, self.max_concurrent)


def parse_array_text(text: str) -> dict[str, Any]:
    """Parse ``"0-4%2"``-style array text into ArraySpec fields; ValueError names the part.
    Numbers are ASCII digits, indices at most MAX_ARRAY_INDEX, steps at least 1."""
    body, percent, limit = text.strip().partition("%")
    indices: list[int] = []
    for item in body.split(","):
        match = _ARRAY_ITEM.match(item.strip())
        if not match:
            raise ValueError(
                f"array item {item!r} is not N, A-B or A-B:STEP (e.g. '0-9%2' or '1,3,5-7')"
            )
        start, end, step = match.groups()
        if any(len(n) > len(str(MAX_ARRAY_INDEX)) for n in (start, end or "", step or "")):
            raise ValueError(f"array item {item!r}: indices must be <= {MAX_ARRAY_INDEX}")
        first, last, stride = int(start), int(end if end is not None else start), int(step or 1)
        if last < first:
            raise ValueError(f"array range {item!r} ends before it starts")
        if stride < 1:
            raise ValueError(f"array range {item!r}: the step must be at least 1")
        count = (last - first) // stride + 1
        if len(indices) + count > MAX_ARRAY_ELEMENTS:
            raise ValueError(f"an array may have at most {MAX_ARRAY_ELEMENTS} elements")
        indices.extend(range(first, last + 1, stride))
    if percent and not _ARRAY_LIMIT.match(limit):
        raise ValueError(f"array concurrency limit {limit!r} after '%' is not a number")
    if percent and len(limit) > len(str(MAX_ARRAY_ELEMENTS)):
        raise ValueError(f"array concurrency limit after '%' must be <= {MAX_ARRAY_ELEMENTS}")
    return {"indices": indices, "max_concurrent": int(limit) if percent else None}


def format_array_text(indices: Iterable[int], max_concurrent: int | None) -> str:
    """The compact text of sorted indices: runs of consecutive numbers become ranges."""
    parts: list[str] = []
    run: list[int] = []
    for index in indices:
        if run and index != run[-1] + 1:
            parts.append(_run_text(run))
            run = []
        run.append(index)
    if run:
        parts.append(_run_text(run))
    text = ",".join(parts)
    return f"{text}%{max_concurrent}" if max_concurrent else text


def _run_text(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


class Resources(StrictModel):
    """What a job asks of the cluster. Units are in the names."""

    cpus: int = Field(default=1, ge=1)
    memory_mb: int | None = Field(default=None, ge=1)
    gpus: int = Field(default=0, ge=0)
    walltime_s: int | None = Field(default=None, ge=1)
    queue: SchedulerName | None = None
    account: SchedulerName | None = None


class Toleration(StrictModel):
    """A Kubernetes toleration."""

    key: OneLine | None = Field(default=None, description="Taint key; none: every taint.")
    operator: Literal["Equal", "Exists"] = "Equal"
    value: OneLine | None = Field(default=None, description="Taint value, with Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0, description="With NoExecute.")


class Volume(StrictModel):
    """A volume mounted into a Kubernetes job's container; exactly one source."""

    name: Label = Field(description="Volume name in the pod.")
    mount_path: AbsolutePath = Field(description="Where it appears in the container.")
    read_only: bool = False
    sub_path: OneLine | None = Field(default=None, description="Mount only this sub-path.")
    pvc: Label | None = Field(default=None, description="A PersistentVolumeClaim's name.")
    secret: Label | None = Field(default=None, description="A Secret's name.")
    config_map: Label | None = Field(default=None, description="A ConfigMap's name.")
    empty_dir: bool = Field(default=False, description="A scratch directory.")
    host_path: AbsolutePath | None = Field(
        default=None, description="A host directory (policy blocks it in job specs)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        sources = [self.pvc, self.secret, self.config_map, self.host_path]
        if sum(s is not None for s in sources) + self.empty_dir != 1:
            raise ValueError(
                f"volume {self.name}: give exactly one of pvc, secret, config_map, "
                "empty_dir, host_path"
            )
        return self


class KubernetesLimits(StrictModel):
    """Limits when they differ from the requests (the job's resources)."""

    cpus: float | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, ge=1)


class KubernetesJobOptions(StrictModel):
    """Kubernetes-only settings of one job."""

    namespace: Label | None = None
    privileged: bool = False
    service_account: Label | None = None
    volumes: list[Volume] = Field(default_factory=list)
    limits: KubernetesLimits | None = None
    node_selector: dict[str, OneLine] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    required_labels: dict[str, OneLine] = Field(
        default_factory=dict, description="Nodes must carry these labels (node affinity)."
    )
    desired_labels: dict[str, OneLine] = Field(
        default_factory=dict, description="Nodes with these labels are preferred."
    )
    prohibited_labels: dict[str, OneLine] = Field(
        default_factory=dict, description="Nodes with these labels are never used."
    )
    preemptible: bool | None = Field(
        default=None,
        description="True: may run on (and prefers) preemptible nodes; False: never on them.",
    )


def _check_directive(directive: str) -> str:
    if directive.lstrip().startswith("#"):
        raise ValueError(
            f"give the directive without its prefix (it is added for you): {directive!r}"
        )
    return directive


class LsfJobOptions(StrictModel):
    """LSF-only settings of one job: directives (without '#BSUB') and bsub arguments."""

    directives: list[Annotated[OneLine, AfterValidator(_check_directive)]] = Field(
        default_factory=list
    )
    extra_args: list[OneLine] = Field(default_factory=list)


class SlurmJobOptions(StrictModel):
    """Slurm-only settings of one job: extra sbatch arguments."""

    extra_args: list[OneLine] = Field(default_factory=list)


class JobSpec(StrictModel):
    """What to run. Exactly one of `command` (shell text, or an argv list) and `script`.

    `env` values whose names look secret (see jobgate.client.credentials), or that
    `secret_names` marks secret, never reach the job record; `secret_env` names
    variables of the worker's environment (``env:NAME``) to pass to the job.
    """

    name: Label
    command: str | list[str] | None = None
    script: str | None = None
    image: Image | None = None
    resources: Resources = Field(default_factory=Resources)
    env: dict[EnvName, Annotated[str, AfterValidator(_no_nul)]] = Field(default_factory=dict)
    secret_env: dict[EnvName, SecretRef] = Field(default_factory=dict)
    secret_names: list[EnvName] = Field(
        default_factory=list,
        max_length=1000,
        description="Names in `env` whose values are secret whatever the name (names with "
        "a word SECRET, TOKEN, PASSWORD, PASSWD, KEY or CREDENTIAL are secret anyway).",
    )
    working_dir: AbsolutePath | None = None
    array: ArraySpec | None = None
    run_id: Label | None = None
    tags: list[Label] = Field(default_factory=list)
    labels: dict[SchedulerName, Annotated[str, StringConstraints(max_length=63)]] = Field(
        default_factory=dict
    )
    inputs: list[InputFile] = Field(
        default_factory=list,
        max_length=1000,
        description="Local files or directories (paths, or {src, dest}) staged into the "
        "job's work directory through the cluster's S3 storage.",
    )
    outputs: list[OutputGlob] = Field(
        default_factory=list,
        max_length=1000,
        description="Globs relative to the work directory of the files to keep in S3.",
    )
    depends_on: list[JobId] = Field(
        default_factory=list,
        description="jobgate ids of jobs on the same cluster that must succeed first.",
    )
    lsf: LsfJobOptions | None = None
    slurm: SlurmJobOptions | None = None
    kubernetes: KubernetesJobOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """Every string valid Unicode, nothing nested deeper than jobgate's readers take."""
        try:
            check_plain_data(data)
        except PlainDataError as e:
            raise PydanticCustomError(PLAIN_DATA_ERROR, e.problem, {"path": e.path}) from None
        return data

    @field_validator("secret_names")
    @classmethod
    def _unique_secret_names(cls, names: list[str]) -> list[str]:
        return sorted(set(names))

    @field_validator("command")
    @classmethod
    def _check_command(cls, command: str | list[str] | None) -> str | list[str] | None:
        if isinstance(command, list) and not command:
            raise ValueError("an argv command needs at least the program")
        if isinstance(command, str) and not command.strip():
            raise ValueError("command is empty")
        parts = command if isinstance(command, list) else [command or ""]
        if any("\x00" in part for part in parts):
            raise ValueError("command contains a NUL byte")
        return command

    @field_validator("script")
    @classmethod
    def _check_script(cls, script: str | None) -> str | None:
        if script is not None and "\x00" in script:
            raise ValueError("script contains a NUL byte")
        return script

    @field_validator("working_dir")
    @classmethod
    def _check_working_dir(cls, path: str | None) -> str | None:
        if path is not None and ".." in path.split("/"):
            raise ValueError("working_dir must not contain '..'")
        return path

    @field_validator("inputs", mode="before")
    @classmethod
    def _paths_are_sources(cls, inputs: Any) -> Any:
        if isinstance(inputs, list):
            return [{"src": i} if isinstance(i, str) else i for i in inputs]
        return inputs

    @field_validator("inputs")
    @classmethod
    def _distinct_destinations(cls, inputs: list[InputFile]) -> list[InputFile]:
        seen: set[str] = set()
        for item in inputs:
            if item.destination in seen:
                raise ValueError(f"two inputs land at {item.destination!r}; give one a dest")
            seen.add(item.destination)
        return inputs

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return sorted(set(tags))

    @model_validator(mode="after")
    def _one_program(self) -> Self:
        if (self.command is None) == (self.script is None):
            raise ValueError("give exactly one of 'command' and 'script'")
        if self.working_dir and (self.inputs or self.outputs):
            raise ValueError(
                "inputs and outputs are staged in the job's own work directory; "
                "drop working_dir (the job starts there)"
            )
        unknown = [n for n in self.secret_names if n not in self.env]
        if unknown:
            raise ValueError(
                f"secret_names {', '.join(unknown)}: not in env (secret_names marks env "
                "values secret; give the value in env)"
            )
        return self

    def is_secret(self, name: str) -> bool:
        """Whether the value of env `name` is secret: by its name, or by `secret_names`."""
        return is_sensitive_name(name) or name in self.secret_names

    def secret_values(self) -> dict[str, str]:
        """The env values that must not reach the job record (see `is_secret`)."""
        return {k: v for k, v in self.env.items() if self.is_secret(k)}

    def redacted(self) -> JobSpec:
        """The spec as the job record keeps it: secret env values replaced by REDACTED."""
        env = {k: REDACTED if self.is_secret(k) else v for k, v in self.env.items()}
        return self.model_copy(update={"env": env})


class Transition(StrictModel):
    """One status change of a job, with when jobgate saw it."""

    status: JobStatus
    at: datetime
    reason: str | None = None
    exit_code: int | None = None


class ElementState(StrictModel):
    """The state of one element of a job array."""

    index: int
    status: JobStatus
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class PolicyLevel(StrEnum):
    """How a policy finding weighs: PASS < WARN < BLOCK."""

    PASS = "PASS"  # noqa: S105 - a level, not a password
    WARN = "WARN"
    BLOCK = "BLOCK"

    @property
    def rank(self) -> int:
        return ("PASS", "WARN", "BLOCK").index(self.value)


class PolicyFinding(StrictModel):
    """One result of the policy preflight: a check's code, its level and what it found."""

    code: str
    level: PolicyLevel
    message: str


class JobRecord(StrictModel):
    """Everything jobgate knows of a job; the job store's copy is the source of truth."""

    id: str
    cluster: ClusterName
    owner: str
    name: str
    tags: list[str] = Field(default_factory=list)
    spec: JobSpec
    result_id: str
    status: JobStatus
    reason: str | None = None
    exit_code: int | None = None
    backend_id: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    history: list[Transition] = Field(default_factory=list)
    elements: list[ElementState] = Field(default_factory=list)
    findings: list[PolicyFinding] = Field(default_factory=list)
    allow_policy_risk: bool = False
    policy_override: bool = Field(
        default=False, description="True when BLOCK findings were bypassed (allow_policy_risk)."
    )
    outputs: OutputsReport | None = Field(
        default=None, description="Outputs and logs kept in S3 (jobs with inputs or outputs)."
    )

    @property
    def settled(self) -> bool:
        """Finished, and its outputs kept, if it has any to keep: a job that reached the
        cluster with inputs or outputs is settled once the worker recorded its outputs."""
        if not self.status.is_finished:
            return False
        stages = bool(self.spec.inputs or self.spec.outputs)
        return not stages or not self.backend_id or self.outputs is not None


class JobQuery(StrictModel):
    """Which jobs to list: every filter given must match. Pages run in creation order
    (`reverse`: newest first); `after` continues after the last id of a page."""

    statuses: frozenset[JobStatus] | None = Field(
        default=None, description="Any of these statuses (an empty set matches nothing)."
    )
    cluster: str | None = None
    tags: frozenset[str] | None = Field(default=None, description="Every one of these tags.")
    owner: str | None = None
    name: str | None = None
    since: datetime | None = Field(default=None, description="Created at or after.")
    until: datetime | None = Field(default=None, description="Created at or before.")
    reverse: bool = False
    limit: int = 100
    after: str | None = None


def aggregate_elements(elements: list[ElementState]) -> tuple[JobStatus, int | None, str | None]:
    """The status of an array from its elements: (status, exit code, reason).

    Finished only when every element has finished; then FAILED if any failed,
    else CANCELLED if any was cancelled, else SUCCEEDED. While elements remain, the
    array is RUNNING once any element has started or finished.
    """
    if not elements:
        return JobStatus.PENDING, None, None
    statuses = [e.status for e in elements]
    if all(s.is_finished for s in statuses):
        failed = [e for e in elements if e.status is JobStatus.FAILED]
        if failed:
            indices = ", ".join(str(e.index) for e in failed[:10])
            more = " …" if len(failed) > 10 else ""
            reason = f"{len(failed)} of {len(elements)} elements failed (indices {indices}{more})"
            return JobStatus.FAILED, failed[0].exit_code, reason
        if any(s is JobStatus.CANCELLED for s in statuses):
            return JobStatus.CANCELLED, None, "elements cancelled"
        return JobStatus.SUCCEEDED, 0, None
    if any(s is JobStatus.RUNNING or s.is_finished for s in statuses):
        return JobStatus.RUNNING, None, None
    for status in (JobStatus.SUSPENDED, JobStatus.UNKNOWN):
        if status in statuses:
            return status, None, None
    return JobStatus.PENDING, None, None


@dataclass(frozen=True)
class Observation:
    """A job's state as seen at one moment, with whatever details the backend reported."""

    status: JobStatus
    reason: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    elements: list[ElementState] = field(default_factory=list)
    #: The gateway ends this job although the scheduler still holds it (e.g. a dependency
    #: failed and it would wait forever): once recorded, cancel it on the scheduler.
    stop_on_scheduler: bool = False


@dataclass(frozen=True)
class StatusUpdate:
    """What to record for one job: what was seen, the backend id if now known, and
    optionally the status the job must still be in for the update to apply."""

    job_id: str
    seen: Observation
    backend_id: str | None = None
    only_from: JobStatus | None = None


class TransitionResult(StrEnum):
    """What applying an observation did to a record (the rules are in lua/transition.lua)."""

    APPLIED = "applied"  # the status changed
    UPDATED = "updated"  # same status, new details
    SAME = "same"  # nothing new
    STALE = "stale"  # older than the last observation applied
    MOVED_ON = "moved on"  # not in the status the update required
    FINISHED = "finished"  # a finished job never changes again
    MISSING = "missing"  # no such record


@dataclass(frozen=True)
class TransitionOutcome:
    """What a transition did, and the status the job had before it."""

    outcome: TransitionResult
    previous: JobStatus | None

    @property
    def applied(self) -> bool:
        return self.outcome is TransitionResult.APPLIED

    @property
    def changed(self) -> bool:
        """The record changed (a new status, or new details of the same one)."""
        return self.outcome in (TransitionResult.APPLIED, TransitionResult.UPDATED)
