"""What a cluster profile may say: the backend and its settings, job defaults, polling,
retention, policy thresholds and storage.

Profiles hold no secret values: where a secret is needed they hold a reference
(``env:NAME``, a Kubernetes secret's name). ``docs/profiles.md`` is generated
from these models (``python scripts/profile_reference.py``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    field_validator,
    model_validator,
)

from jobgate.client.credentials import SECRET_REF_PREFIXES, CredentialRefs, is_sensitive_name
from jobgate.client.models import (
    ClusterName,
    EnvName,
    Label,
    OneLine,
    SchedulerName,
    SecretRef,
    Toleration,
    Volume,
)
from jobgate.client.scheduler_options import BSUB, SBATCH, check_allowed_names
from jobgate.client.strict_model import StrictModel

BackendKind = Literal["local", "slurm", "lsf", "kubernetes"]
BACKEND_KINDS: tuple[BackendKind, ...] = ("local", "slurm", "lsf", "kubernetes")
#: The error type of a profile whose `backend` is none of BACKEND_KINDS.
UNKNOWN_BACKEND = "unknown_backend"
_TEMPLATE_FIELDS = re.compile(r"{([^{}]*)}")
PathTemplate = Annotated[str, StringConstraints(min_length=1, max_length=512)]
#: A name or glob pattern of worker variables (see Policy.allowed_secret_vars).
SecretVarPattern = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_*?\[\]!-]{1,128}$")]
#: A directory for job files: no whitespace or '%' (scheduler output patterns use them).
WorkDir = Annotated[str, StringConstraints(pattern=r"^[^\s%]+$", max_length=1024)]


class LocalSettings(StrictModel):
    """The local backend: jobs are process groups on the worker's own host."""

    work_dir: str = Field(
        default="~/.local/state/jobgate/local",
        description="One directory per job: program, stdout/stderr, exit record.",
    )
    max_parallel: int | None = Field(
        default=None, ge=1, description="Array elements run at once when the spec gives no %N."
    )
    cancel_grace_s: float = Field(default=5.0, gt=0, le=300, description="SIGTERM to SIGKILL.")
    cgroups: bool = Field(
        default=True,
        description="Each job in a cgroup v2 of its own where the worker may make one; "
        "false: a job's processes are found by JOBGATE_JOB_ID in their environment.",
    )


class SchedulerCommandSettings(StrictModel):
    """How a backend runs its scheduler's command-line tools."""

    command_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="A scheduler command slower than this is killed."
    )
    command_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries of a command that failed transiently."
    )
    query_chunk: int = Field(
        default=500, ge=1, le=5000, description="Job ids per status command line."
    )
    query_all_above: int = Field(
        default=500,
        ge=0,
        le=1_000_000,
        description="Above this many active jobs, one status command about all of the "
        "worker user's jobs (squeue --me; bjobs -J '<prefix>-*') replaces the chunks of ids, "
        "and jobgate picks its jobs from the answer by id and name: one scheduler call per "
        "poll step however many jobs are active.",
    )


class SlurmSettings(SchedulerCommandSettings):
    """Slurm (sbatch/squeue/sacct/scancel) on the worker's host."""

    partition: SchedulerName | None = Field(default=None, description="sbatch --partition.")
    account: SchedulerName | None = Field(default=None, description="sbatch --account.")
    qos: SchedulerName | None = Field(default=None, description="sbatch --qos.")
    constraint: OneLine | None = Field(default=None, description="sbatch --constraint.")
    extra_args: list[OneLine] = Field(
        default_factory=list, description="Extra sbatch arguments, before the job's own."
    )
    job_options: list[OneLine] = Field(
        default_factory=list,
        description="sbatch options jobs may pass in slurm.extra_args (either spelling: "
        "--cpus-per-task or -c); empty: none. Options jobgate sets itself (--job-name, "
        "--output, --error, --array, --chdir, --dependency, --parsable, --export, ...) "
        "can never be listed; resource options are checked against the policy limits. "
        "See docs/policy.md.",
    )
    work_dir: WorkDir = Field(
        default="~/.local/state/jobgate/slurm",
        description="Job scripts, output and exit records; must be visible from compute nodes.",
    )
    query_concurrency: int = Field(default=4, ge=1, le=16, description="Chunks queried at once.")
    requeue_preempted: bool = Field(
        default=False, description="A preempted job is requeued (PENDING), not CANCELLED."
    )
    accounting: Literal["slurmdbd", "jobcomp", "none"] = Field(
        default="slurmdbd",
        description="Where finished jobs are looked up once squeue forgets them: sacct on "
        "the accounting database, sacct -c on a JobCompType=jobcomp/filetxt file, or nowhere "
        "(then only the jobs' exit records tell).",
    )
    submit_via: Literal["sbatch", "slurmrestd"] = Field(
        default="sbatch",
        description="How jobs are submitted: by running sbatch, or by a POST to slurmrestd "
        "(Slurm 22.05's API v0.0.38) on `rest_socket`, which spares the fork of sbatch (some "
        "3 CPU-ms per job). A job slurmrestd cannot take as sbatch would (extra_args, a GPU "
        "request, variables sbatch reads as options in its environment) goes through sbatch, "
        "and so does every job while slurmrestd cannot be reached; both are logged.",
    )
    rest_socket: Annotated[str, StringConstraints(min_length=1, max_length=107)] | None = Field(
        default=None,
        description="slurmrestd's unix socket, served with rest_auth/local (jobs are "
        "submitted as the user the worker runs as); required with submit_via slurmrestd.",
    )

    @field_validator("job_options")
    @classmethod
    def _known_options(cls, names: list[str]) -> list[str]:
        return check_allowed_names(SBATCH, names)

    @model_validator(mode="after")
    def _rest_socket_given(self) -> Self:
        if self.submit_via == "slurmrestd" and not self.rest_socket:
            raise ValueError("submit_via slurmrestd needs rest_socket (slurmrestd's unix socket)")
        return self


class LsfSettings(SchedulerCommandSettings):
    """IBM Spectrum LSF (bsub/bjobs/bkill/bhist) on the worker's host."""

    work_dir: WorkDir = Field(
        default="~/.local/state/jobgate/lsf",
        description="Job scripts, output and exit records; must be visible from compute nodes.",
    )
    bhist: bool = Field(
        default=True,
        description="Ask bhist about jobs bjobs has forgotten (after CLEAN_PERIOD) that left "
        "no exit record, e.g. killed by a limit; without it such jobs end as lost.",
    )

    queue: SchedulerName | None = Field(default=None, description="bsub -q.")
    project: SchedulerName | None = Field(default=None, description="bsub -P.")
    lsf_units: Literal["KB", "MB", "GB", "TB"] = Field(
        default="MB", description="LSF_UNIT_FOR_LIMITS of the cluster, for -M and rusage[mem]."
    )
    extra_directives: list[OneLine] = Field(
        default_factory=list,
        description="Whole '#BSUB ...' lines appended verbatim to every job script.",
    )
    directives_skip: list[OneLine] = Field(
        default_factory=list,
        description="Generated directives containing any of these substrings are left out.",
    )
    extra_args: list[OneLine] = Field(
        default_factory=list, description="Extra bsub arguments, before the job's own."
    )
    job_options: list[OneLine] = Field(
        default_factory=list,
        description="bsub options jobs may pass in lsf.directives and lsf.extra_args (e.g. "
        "-n, -W, -q); empty: none. Options jobgate sets itself (-J, -o, -e, -cwd, -env, -w, "
        "-L, ...) can never be listed; resource options are checked against the policy "
        "limits. See docs/policy.md.",
    )
    login_shell: OneLine | None = Field(default=None, description="bsub -L: the login shell.")
    env_mode: Literal["all", "none"] = Field(
        default="all",
        description="bsub -env: the worker's whole environment, or (none) only the job's own "
        "variables and jobgate's, by name.",
    )

    @field_validator("job_options")
    @classmethod
    def _known_options(cls, names: list[str]) -> list[str]:
        return check_allowed_names(BSUB, names)

    @field_validator("extra_directives")
    @classmethod
    def _whole_directives(cls, lines: list[str]) -> list[str]:
        for line in lines:
            if not line.startswith("#BSUB "):
                raise ValueError(f"extra_directives are whole lines starting '#BSUB ': {line!r}")
        return lines


class NamespaceOverrides(StrictModel):
    """Settings that replace the cluster's for jobs in one namespace."""

    service_account: Label | None = Field(default=None, description="Replaces the cluster's.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, description="Replaces the cluster's."
    )
    node_selector: dict[str, OneLine] | None = Field(default=None, description="Replaces it.")
    tolerations: list[Toleration] | None = Field(default=None, description="Replace them.")
    volumes: list[Volume] | None = Field(default=None, description="Replace the cluster's.")


class KubernetesSettings(StrictModel):
    """A Kubernetes cluster reached through the API (or kubectl)."""

    namespace: Label = Field(default="default", description="Where jobs are created.")
    image: OneLine | None = Field(default=None, description="Image for specs that give none.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="For the job's container."
    )
    image_pull_secrets: list[Label] = Field(
        default_factory=list, description="Names of docker-registry secrets in the namespace."
    )
    service_account: Label | None = Field(default=None, description="The pods' service account.")
    container_name: Label = Field(default="job", description="Name of the job's container.")
    gpu_resource: OneLine = Field(
        default="nvidia.com/gpu", description="Extended resource name GPUs are requested as."
    )
    node_selector: dict[str, OneLine] = Field(default_factory=dict, description="For every pod.")
    tolerations: list[Toleration] = Field(default_factory=list, description="For every pod.")
    volumes: list[Volume] = Field(
        default_factory=list, description="Mounted into every job (PVCs, secrets, config maps)."
    )
    namespace_overrides: dict[Label, NamespaceOverrides] = Field(
        default_factory=dict, description="Per-namespace replacements ('hooks')."
    )
    kubeconfig: OneLine | None = Field(
        default=None,
        description="Path; default: $KUBECONFIG or ~/.kube/config, else the in-cluster "
        "service account.",
    )
    context: OneLine | None = Field(default=None, description="kubeconfig context to use.")
    use_kubectl: bool = Field(default=False, description="Use kubectl instead of the API client.")
    kubectl: OneLine = Field(default="kubectl", description="The kubectl program, for use_kubectl.")
    target_version: Annotated[str, StringConstraints(pattern=r"^1\.[0-9]{2}$")] = Field(
        default="1.32", description="Kubernetes minor version manifests are checked against."
    )
    backoff_limit: int = Field(default=0, ge=0, le=100, description="Job retries of failed pods.")
    ttl_after_finished_s: int | None = Field(
        default=None,
        ge=60,
        description="Job ttlSecondsAfterFinished; default: 10 x poll_interval_max_s, at "
        "least 1 hour, so the outcome is read before Kubernetes deletes the Job.",
    )
    pod_failure_policy: bool = Field(
        default=False,
        description="Fail the Job at once when its container exits non-zero (no retries), "
        "but not when the pod was disrupted (evicted, preempted).",
    )
    image_error_grace_s: float = Field(
        default=120.0, ge=0, description="ErrImagePull/ImagePullBackOff/... for this long: FAILED."
    )
    pending_timeout_s: float | None = Field(
        default=None, gt=0, description="A job pending longer than this is FAILED (none: never)."
    )
    preemptible_label: OneLine = Field(
        default="cloud.google.com/gke-preemptible",
        description="Node label (and taint key) of preemptible nodes, for jobs' preemptible.",
    )
    request_timeout_s: float = Field(default=30.0, gt=0, le=600, description="Per API call.")
    request_attempts: int = Field(
        default=4,
        ge=1,
        le=10,
        description="Tries of a call that failed with 429, 5xx or a dropped connection.",
    )
    output_tail_bytes: int = Field(
        default=65536,
        ge=0,
        le=16 << 20,
        description="How much of a finished job's log the gateway keeps, for after "
        "Kubernetes deletes the Job (0: none).",
    )
    credentials_refresh_s: float = Field(
        default=300.0, gt=0, description="Reload the kubeconfig or service account token."
    )
    staging_image: OneLine = Field(
        default="python:3.12-slim",
        description="Image (with python3) of the containers that fetch a job's inputs and "
        "upload its outputs.",
    )
    staging_work_dir: Annotated[str, StringConstraints(pattern=r"^/[^\x00]*$")] = Field(
        default="/jobgate/work",
        description="Where a job with inputs or outputs runs: an emptyDir mounted there.",
    )
    staging_upload_grace_s: int = Field(
        default=600,
        ge=30,
        le=24 * 3600,
        description="The pod's terminationGracePeriodSeconds: how long the uploader has "
        "once the job's container ended.",
    )
    staging_url_expires_s: int = Field(
        default=24 * 3600,
        ge=600,
        le=7 * 24 * 3600,
        description="How long the pod's presigned URLs work, plus the job's walltime for "
        "the upload policy (at most 7 days, SigV4's limit).",
    )


class DefaultResources(StrictModel):
    """Resources a job gets when its spec does not say."""

    cpus: int | None = Field(default=None, ge=1, description="CPUs per task.")
    memory_mb: int | None = Field(default=None, ge=1, description="Memory per task.")
    gpus: int | None = Field(default=None, ge=0, description="GPUs per task.")
    walltime_s: int | None = Field(default=None, ge=1, description="Run time limit.")
    queue: SchedulerName | None = Field(default=None, description="Queue or partition.")
    account: SchedulerName | None = Field(default=None, description="Account or project.")


class JobDefaults(StrictModel):
    """Job defaults: the job's own values win, then these, then jobgate's built-in ones."""

    resources: DefaultResources = Field(
        default_factory=DefaultResources, description="Resources a spec does not set."
    )
    env: dict[EnvName, OneLine] = Field(
        default_factory=dict,
        description="Environment for every job. A value 'env:NAME' is a reference to the "
        "worker's environment, 'k8s:<secret>/<key>' to a Kubernetes Secret's key; sensitive "
        "names must use one.",
    )

    @field_validator("env")
    @classmethod
    def _no_secret_values(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if is_sensitive_name(name) and not value.startswith(SECRET_REF_PREFIXES):
                raise ValueError(
                    f"{name} looks secret: give a reference (env:VARIABLE_NAME, or on "
                    "Kubernetes k8s:<secret>/<key>), not a value"
                )
        return env


class Policy(StrictModel):
    """Thresholds and rules that preflight checks and the worker enforces."""

    max_cpus: int | None = Field(default=None, ge=1, description="More CPUs: BLOCK.")
    max_memory_mb: int | None = Field(default=None, ge=1, description="More memory: BLOCK.")
    max_gpus: int | None = Field(default=None, ge=0, description="More GPUs: BLOCK.")
    max_walltime_s: int | None = Field(default=None, ge=1, description="Longer: BLOCK.")
    max_array_size: int | None = Field(default=None, ge=1, description="More elements: BLOCK.")
    warn_missing_walltime: bool = Field(default=True, description="No walltime: WARN.")
    block_sleep_infinity: bool = Field(
        default=True, description="Block commands that never end on purpose (sleep infinity…)."
    )
    warn_request_limit_mismatch: bool = Field(
        default=True, description="Kubernetes limits that differ from requests: WARN."
    )
    allowed_registries: list[OneLine] = Field(
        default_factory=list, description="Image registries allowed; empty: any."
    )
    allowed_namespaces: list[Label] = Field(
        default_factory=list, description="Kubernetes namespaces allowed; empty: any."
    )
    allow_overrides: bool = Field(
        default=False, description="Whether allow_policy_risk=True may bypass BLOCK findings."
    )
    allowed_secret_vars: list[SecretVarPattern] = Field(
        default_factory=list,
        description="Worker environment variables jobs' secret_env may read (env:NAME): "
        "names or glob patterns (*, ?, [...]); empty: none (the profile's own defaults.env "
        "references are always allowed). Variables of jobgate (JOBGATE_*), Celery, Flower, "
        "Redis clients, Kubernetes and cloud SDKs (AWS_*, GOOGLE_*, AZURE_*, ...) are "
        "allowed only by their exact name, never by a pattern.",
    )


class StorageCredentialRefs(StrictModel):
    """Where the worker finds S3 credentials: references (env:NAME), never values."""

    access_key_id: SecretRef = Field(description="e.g. env:LAB_S3_KEY_ID")
    secret_access_key: SecretRef = Field(description="e.g. env:LAB_S3_SECRET")
    session_token: SecretRef | None = Field(default=None, description="For temporary credentials.")

    def refs(self) -> CredentialRefs:
        return CredentialRefs(self.access_key_id, self.secret_access_key, self.session_token)


class Storage(StrictModel):
    """S3-compatible storage for job inputs, outputs and logs."""

    prefix: Annotated[
        str, StringConstraints(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
    ] = Field(description="s3://bucket/path under which jobs' files go.")
    endpoint_url: OneLine | None = Field(default=None, description="For S3-compatible stores.")
    region: OneLine | None = Field(default=None, description="The S3 region.")
    inputs: PathTemplate = Field(
        default="{prefix}/{run_id}/inputs/{filename}",
        description="Where inputs are; placeholders {prefix}, {run_id}, {filename}.",
    )
    outputs: PathTemplate = Field(
        default="{prefix}/{run_id}/outputs/{filename}", description="Where outputs go."
    )
    logs: PathTemplate = Field(
        default="{prefix}/{run_id}/logs/{filename}", description="Where logs go."
    )
    credentials: StorageCredentialRefs | None = Field(
        default=None,
        description="Where the worker finds its S3 keys; default: the standard AWS chain "
        "(AWS_* variables, ~/.aws, instance roles).",
    )
    presign_endpoint_url: OneLine | None = Field(
        default=None,
        description="The S3 endpoint as clients reach it, for the URLs they are handed "
        "(when it differs from endpoint_url, e.g. behind a proxy); default: endpoint_url.",
    )
    presign_expires_s: int = Field(
        default=3600, ge=60, le=7 * 24 * 3600, description="How long a presigned URL works."
    )
    work_dir_retention_s: float = Field(
        default=24 * 3600.0,
        ge=0,
        description="How long a finished job's work directory stays on the cluster once its "
        "outputs and logs are in S3 (0: removed at once); kept while an upload failed.",
    )
    max_outputs: int = Field(
        default=10_000,
        ge=1,
        le=10_000,
        description="The most files one job's outputs may match; more fails the outputs.",
    )

    @field_validator("inputs", "outputs", "logs")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        unknown = set(_TEMPLATE_FIELDS.findall(template)) - {"prefix", "run_id", "filename"}
        if unknown:
            known = "{prefix}, {run_id}, {filename}"
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; use {known}")
        if "{filename}" not in template:
            raise ValueError("a path template needs {filename}")
        return template


class ContainerSettings(StrictModel):
    """How a local, Slurm or LSF cluster runs jobs that give an `image`."""

    runtime: Literal["apptainer", "singularity"] = Field(
        description="The container runtime on the compute nodes."
    )
    program: OneLine | None = Field(default=None, description="Its path; default: runtime.")
    options: list[OneLine] = Field(
        default_factory=list, description="Arguments after 'exec', e.g. --nv, --bind /scratch."
    )


class ProfileBase(StrictModel):
    """What every cluster profile says, whatever its backend."""

    name: ClusterName = Field(description="The cluster's name: cluster= in the client, queues.")
    defaults: JobDefaults = Field(default_factory=JobDefaults, description="Job defaults.")
    job_name_prefix: Label = Field(
        default="jobgate", description="Scheduler job names are <prefix>-<jobgate id>."
    )
    poll_interval_min_s: float = Field(
        default=2.0, gt=0, le=600, description="Polling cadence while jobs change."
    )
    poll_interval_max_s: float = Field(
        default=60.0, gt=0, le=600, description="Polling cadence after a long quiet spell."
    )
    lease_ttl_s: float | None = Field(
        default=None, gt=0, description="How long a dead polling chain holds its lease."
    )
    reconcile_interval_s: float = Field(
        default=30.0, gt=0, le=3600, description="Restart dead chains, adopt strays, purge."
    )
    resubmit_after_s: float = Field(
        default=600.0, gt=0, description="Re-send the submit of a job still NEW after this long."
    )
    submit_retry_backoff_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="First pause before retrying a submit that failed transiently (scheduler "
        "unreachable); doubled for each of the 5 retries, at most 60 s.",
    )
    lost_grace_s: float = Field(
        default=300.0, ge=0, description="A job missing from the scheduler is lost after this."
    )
    retention_s: int = Field(default=7 * 24 * 3600, ge=60, description="Finished records kept.")
    result_expires_s: int = Field(
        default=24 * 3600, ge=60, description="Final results kept in the Celery result backend."
    )
    policy: Policy = Field(default_factory=Policy, description="What jobs may ask for.")
    storage: Storage | None = Field(default=None, description="S3 storage for job files.")

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        """A block this backend does not have, given as null, is absent: profiles were one
        model with every backend's block until 0.1, and workers published them so."""
        if not isinstance(data, dict):
            return data
        foreign = {*BACKEND_KINDS, "containers"} - set(cls.model_fields)
        return {k: v for k, v in data.items() if not (k in foreign and v is None)}

    @model_validator(mode="after")
    def _intervals_in_order(self) -> Self:
        if self.poll_interval_max_s < self.poll_interval_min_s:
            raise ValueError("poll_interval_max_s is below poll_interval_min_s")
        return self

    @property
    def effective_lease_ttl_s(self) -> float:
        return self.lease_ttl_s or 3 * self.poll_interval_max_s + 10


class HostProfile(ProfileBase):
    """A cluster whose jobs run as programs on hosts (local, Slurm, LSF): images only
    through a container runtime there."""

    containers: ContainerSettings | None = Field(
        default=None,
        description="Run jobs that give an image through Apptainer/Singularity (not on "
        "Kubernetes, which runs images itself); without it such jobs are refused.",
    )


class LocalProfile(HostProfile):
    """Jobs run as process groups on the worker's own host."""

    backend: Literal["local"] = Field(default="local", description="What runs the jobs.")
    local: LocalSettings = Field(
        default_factory=LocalSettings, description="Settings of a local backend."
    )


class SlurmProfile(HostProfile):
    """Jobs go to Slurm through the commands on the worker's host."""

    backend: Literal["slurm"] = Field(description="What runs the jobs.")
    slurm: SlurmSettings = Field(
        default_factory=SlurmSettings, description="Settings of a Slurm backend."
    )


class LsfProfile(HostProfile):
    """Jobs go to IBM Spectrum LSF through the commands on the worker's host."""

    backend: Literal["lsf"] = Field(description="What runs the jobs.")
    lsf: LsfSettings = Field(default_factory=LsfSettings, description="Settings of an LSF backend.")


class KubernetesProfile(ProfileBase):
    """Jobs are batch/v1 Jobs on a Kubernetes cluster."""

    backend: Literal["kubernetes"] = Field(description="What runs the jobs.")
    kubernetes: KubernetesSettings = Field(
        default_factory=KubernetesSettings, description="Settings of a Kubernetes backend."
    )


def _backend_of(data: Any) -> Any:
    """The tag that picks a profile's model: its `backend`, local when none is given."""
    if isinstance(data, dict):
        return data.get("backend", "local")
    return getattr(data, "backend", None)


#: One cluster as workers serve it: the model of its backend, picked by `backend`, holds
#: that backend's settings block and refuses the others'.
ClusterProfile = Annotated[
    Annotated[LocalProfile, Tag("local")]
    | Annotated[SlurmProfile, Tag("slurm")]
    | Annotated[LsfProfile, Tag("lsf")]
    | Annotated[KubernetesProfile, Tag("kubernetes")],
    Discriminator(
        _backend_of,
        custom_error_type=UNKNOWN_BACKEND,
        custom_error_message="Input should be "
        + ", ".join(repr(kind) for kind in BACKEND_KINDS[:-1])
        + f" or {BACKEND_KINDS[-1]!r}",
    ),
]
PROFILE_ADAPTER: TypeAdapter[ClusterProfile] = TypeAdapter(ClusterProfile)


def profile_from_data(data: object) -> ClusterProfile:
    """A profile from plain data (parsed YAML or JSON); pydantic's ValidationError if invalid."""
    return PROFILE_ADAPTER.validate_python(data)
