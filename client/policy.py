"""Policy preflight: what a cluster's profile allows a job to ask for.

`evaluate_policy` runs every check that applies to the spec and the profile;
each check that runs produces one finding per thing it looked at: PASS, WARN or
BLOCK. A check whose threshold the profile does not set does not run. So, with
``include_passes=True``, an empty list means no check applied ("nothing ran"),
while a list of PASS findings means every check that applied passed. Without it,
only WARN and BLOCK findings are returned.

The client runs the preflight before it submits (against the profile a live
worker published), and the worker runs it again on every submit, whatever the
client did.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator

from jobgate.client.credentials import ENV_REF, K8S_REF_PREFIX, REDACTED, secret_var_refusal
from jobgate.client.models import JobSpec, LsfJobOptions, PolicyFinding, PolicyLevel
from jobgate.client.profile_schema import (
    BACKEND_KINDS,
    ClusterProfile,
    KubernetesProfile,
    LsfProfile,
    SlurmProfile,
)
from jobgate.client.scheduler_options import (
    BSUB,
    SBATCH,
    Asked,
    OptionsError,
    OptionTable,
    Passed,
    directive_words,
    env_options,
    lsf_asked,
    refusals,
    slurm_asked,
)

Check = Callable[[JobSpec, ClusterProfile], Iterator[PolicyFinding]]

#: Commands that never end on purpose, by what they look like in the command text.
NEVER_ENDING = (
    (re.compile(r"\bsleep\s+(infinity|inf)\b"), "sleep infinity"),
    (re.compile(r"\btail\s+-f\s+/dev/null\b"), "tail -f /dev/null"),
    (re.compile(r"\bwhile\s+(true|:)\s*;?\s*do\s+(sleep\s+\S+\s*;?\s*)?done\b"), "an empty loop"),
)


def _finding(code: str, level: PolicyLevel, message: str) -> PolicyFinding:
    return PolicyFinding(code=code, level=level, message=message)


def _limits(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    p, r = profile.policy, spec.resources
    asked = (
        ("cpus", r.cpus, p.max_cpus, "cpus"),
        ("memory", r.memory_mb, p.max_memory_mb, "MB of memory"),
        ("gpus", r.gpus, p.max_gpus, "gpus"),
        ("walltime", r.walltime_s, p.max_walltime_s, "s of walltime"),
        (
            "array",
            len(spec.array.indices) if spec.array else None,
            p.max_array_size,
            "array elements",
        ),
    )
    for what, value, limit, unit in asked:
        if limit is None or value is None:
            continue
        code = f"{what}-over-max"
        if value > limit:
            yield _finding(
                code,
                PolicyLevel.BLOCK,
                f"asks for {value} {unit}; cluster {profile.name} allows {limit}",
            )
        else:
            yield _finding(code, PolicyLevel.PASS, f"{value} {unit} within {limit}")


def _walltime(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    if not profile.policy.warn_missing_walltime:
        return
    if spec.resources.walltime_s is None:
        yield _finding(
            "walltime-missing",
            PolicyLevel.WARN,
            "no walltime: the job may run until the cluster's own limit",
        )
    else:
        yield _finding("walltime-missing", PolicyLevel.PASS, "walltime given")


def _never_ending(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    if not profile.policy.block_sleep_infinity:
        return
    text = " ".join(spec.command) if isinstance(spec.command, list) else (spec.command or "")
    text = f"{text}\n{spec.script or ''}"
    for pattern, what in NEVER_ENDING:
        if pattern.search(text):
            yield _finding(
                "never-ending-command",
                PolicyLevel.BLOCK,
                f"the command runs {what}, which never ends; batch jobs must finish",
            )
            return
    yield _finding("never-ending-command", PolicyLevel.PASS, "no never-ending command seen")


def _registry_path(image: str) -> str:
    """The image with its registry spelt out (docker.io for unqualified names)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if rest else f"docker.io/library/{image}"


def _containers(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    if not isinstance(profile, KubernetesProfile):
        if spec.image and profile.containers is None:
            yield _finding(
                "image-unsupported",
                PolicyLevel.BLOCK,
                f"cluster {profile.name} ({profile.backend}) does not run containers; "
                "drop 'image', submit to a kubernetes cluster, or give the profile "
                "'containers: {runtime: apptainer}'",
            )
        return
    image = spec.image or profile.kubernetes.image
    if image is None:
        yield _finding(
            "image-missing",
            PolicyLevel.BLOCK,
            f"cluster {profile.name} runs containers: the job needs an image",
        )
        return
    allowed = profile.policy.allowed_registries
    if allowed:
        full = _registry_path(image)
        if any(full == a or full.startswith(a.rstrip("/") + "/") for a in allowed):
            yield _finding(
                "image-registry", PolicyLevel.PASS, f"{full} is from an allowed registry"
            )
        else:
            yield _finding(
                "image-registry",
                PolicyLevel.BLOCK,
                f"image {full} is not from an allowed registry ({', '.join(allowed)})",
            )
    options = spec.kubernetes
    if options is None:
        return
    if options.privileged:
        yield _finding(
            "privileged-container", PolicyLevel.BLOCK, "privileged containers are not allowed"
        )
    for volume in options.volumes:
        if volume.host_path is not None:
            yield _finding(
                "hostpath-volume",
                PolicyLevel.BLOCK,
                f"volume {volume.name} mounts host path {volume.host_path}",
            )
    limits, r = options.limits, spec.resources
    if profile.policy.warn_request_limit_mismatch and limits is not None:
        differ = (limits.cpus is not None and limits.cpus != r.cpus) or (
            limits.memory_mb is not None and limits.memory_mb != r.memory_mb
        )
        level = PolicyLevel.WARN if differ else PolicyLevel.PASS
        yield _finding(
            "requests-limits-mismatch",
            level,
            "limits differ from requests: the pod may be throttled or evicted"
            if differ
            else "limits equal requests",
        )


def _namespace(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    allowed = profile.policy.allowed_namespaces
    if not isinstance(profile, KubernetesProfile) or not allowed:
        return
    namespace = (spec.kubernetes.namespace if spec.kubernetes else None) or (
        profile.kubernetes.namespace
    )
    if namespace in allowed:
        yield _finding("namespace", PolicyLevel.PASS, f"namespace {namespace} is allowed")
    else:
        yield _finding(
            "namespace",
            PolicyLevel.BLOCK,
            f"namespace {namespace} is not allowed ({', '.join(allowed)})",
        )


def _other_backend_options(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    for kind in BACKEND_KINDS:
        if kind != profile.backend and getattr(spec, kind, None) is not None:
            yield _finding(
                "options-ignored",
                PolicyLevel.WARN,
                f"'{kind}' options are ignored on {profile.backend} cluster {profile.name}",
            )


def secret_ref_refusals(spec: JobSpec, profile: ClusterProfile) -> dict[str, str]:
    """The spec's `secret_env` names whose ``env:NAME`` reference the profile does not
    allow (policy.allowed_secret_vars, or a reference of the profile's own defaults),
    with why. The variables of the profile's storage credentials, like the worker's own
    families, need their exact name. The worker refuses these whatever the findings say."""
    own = {m.group(1) for v in profile.defaults.env.values() if (m := ENV_REF.match(v))}
    credentials = profile.storage.credentials if profile.storage else None
    storage_refs = [credentials.access_key_id, credentials.secret_access_key,
                    credentials.session_token] if credentials else []  # fmt: skip
    protected = {m.group(1) for ref in storage_refs if ref and (m := ENV_REF.match(ref))}
    refused = {}
    for name, ref in sorted(spec.secret_env.items()):
        match = ENV_REF.match(ref)
        if match is None:
            continue  # a k8s: reference, resolved by the cluster in the job's namespace
        allowed = profile.policy.allowed_secret_vars
        why = secret_var_refusal(match.group(1), allowed, own, protected)
        if why is not None:
            refused[name] = f"secret_env {name} ({ref}): {why}"
    return refused


def _secret_refs(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    refs = [n for n, r in spec.secret_env.items() if ENV_REF.match(r)]
    if not refs:
        return
    refused = secret_ref_refusals(spec, profile)
    for reason in refused.values():
        yield _finding("secret-env-not-allowed", PolicyLevel.BLOCK, reason)
    if not refused:
        yield _finding("secret-env-not-allowed", PolicyLevel.PASS, "secret_env references allowed")


def _job_options(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    """A job's own scheduler options, on the command line or in its env (variables the
    scheduler reads as options): readable, not jobgate's, allowed by the profile
    (job_options), and asking no more than the policy limits."""
    r = spec.resources
    groups: list[tuple[str, list[Passed]]]
    try:
        if isinstance(profile, SlurmProfile):
            table, allowed = SBATCH, profile.slurm.job_options
            args = spec.slurm.extra_args if spec.slurm else []
            groups = [("slurm.extra_args", _words(SBATCH, "slurm.extra_args", args)),
                      ("env", env_options(SBATCH, spec.env))]  # fmt: skip
        elif isinstance(profile, LsfProfile):
            table, allowed = BSUB, profile.lsf.job_options
            own = spec.lsf or LsfJobOptions()
            try:
                words = [*directive_words(own.directives), *own.extra_args]
            except OptionsError as e:
                raise OptionsError(f"lsf.directives: {e}") from None
            field = "lsf.directives/extra_args"
            groups = [(field, _words(BSUB, field, words)), ("env", env_options(BSUB, spec.env))]
        else:
            return
    except OptionsError as e:
        yield _finding("job-options", PolicyLevel.BLOCK, str(e))
        return
    passed = [p for _, group in groups for p in group]
    if not passed:
        return
    refused = [
        f"{field} {why}" for field, group in groups for why in refusals(table, group, allowed)
    ]
    for reason in refused:
        yield _finding("job-options", PolicyLevel.BLOCK, reason)
    if refused:
        return
    yield _finding("job-options", PolicyLevel.PASS, "the job's own scheduler options are allowed")
    field = " and ".join(field for field, group in groups if group)
    try:
        if isinstance(profile, SlurmProfile):
            asked = slurm_asked(passed, r.cpus, r.memory_mb, r.gpus)
        else:
            asked = lsf_asked(passed, profile.lsf.lsf_units)
    except OptionsError as e:
        yield _finding("job-options", PolicyLevel.BLOCK, f"{field}: {e}")
        return
    yield from _asked_limits(field, asked, profile)


def _words(table: OptionTable, field: str, words: list[str]) -> list[Passed]:
    try:
        return table.parse(words)
    except OptionsError as e:
        raise OptionsError(f"{field}: {e}") from None


def _asked_limits(field: str, asked: Asked, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    p = profile.policy
    for what, value, limit, unit in (
        ("cpus", asked.cpus, p.max_cpus, "cpus"),
        ("memory", asked.memory_mb, p.max_memory_mb, "MB of memory"),
        ("gpus", asked.gpus, p.max_gpus, "gpus"),
        ("walltime", asked.walltime_s, p.max_walltime_s, "s of walltime"),
    ):
        if limit is None or value is None:
            continue
        shown = "unlimited" if math.isinf(value) else f"{value:g}"
        if value > limit:
            yield _finding(
                f"{what}-over-max",
                PolicyLevel.BLOCK,
                f"{field} asks for {shown} {unit}; cluster {profile.name} allows {limit}",
            )
        else:
            yield _finding(
                f"{what}-over-max", PolicyLevel.PASS, f"{field}: {shown} {unit} within {limit}"
            )


#: Backends that turn depends_on into scheduler dependencies.
DEPENDENCY_BACKENDS = frozenset({"slurm", "lsf"})


def _dependencies(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    if spec.depends_on and profile.backend not in DEPENDENCY_BACKENDS:
        yield _finding(
            "depends-on-unsupported",
            PolicyLevel.BLOCK,
            f"the {profile.backend} backend does not support depends_on",
        )


def _lsf_array_indices(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    if profile.backend == "lsf" and spec.array and min(spec.array.indices) < 1:
        yield _finding(
            "lsf-array-index",
            PolicyLevel.BLOCK,
            "LSF array indices start at 1: number the elements from 1 (e.g. 1-10, not 0-9)",
        )


def _kubernetes_limits(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    """What a Kubernetes job cannot carry, and Kubernetes secrets anywhere else."""
    cluster_refs = [n for n, r in spec.secret_env.items() if r.startswith(K8S_REF_PREFIX)]
    if profile.backend != "kubernetes":
        if cluster_refs:
            yield _finding(
                "k8s-secret-elsewhere",
                PolicyLevel.BLOCK,
                f"secret_env {', '.join(cluster_refs)}: k8s: references work only on "
                "Kubernetes clusters; use env:NAME",
            )
        return
    values = [n for n, v in spec.env.items() if v == REDACTED or spec.is_secret(n)]
    values += [n for n, r in spec.secret_env.items() if not r.startswith(K8S_REF_PREFIX)]
    if values:
        yield _finding(
            "secret-value-on-kubernetes",
            PolicyLevel.BLOCK,
            f"{', '.join(sorted(values))}: secret values would be written into the Job for "
            "anyone who can read it; put them in a Kubernetes Secret and use secret_env "
            "'k8s:<secret>/<key>'",
        )
    if spec.array:
        yield _finding(
            "array-unsupported",
            PolicyLevel.BLOCK,
            "arrays are not supported on Kubernetes yet: submit one job per index",
        )


def _staging(spec: JobSpec, profile: ClusterProfile) -> Iterator[PolicyFinding]:
    if not (spec.inputs or spec.outputs):
        return
    if profile.storage is None:
        yield _finding(
            "storage-missing",
            PolicyLevel.BLOCK,
            f"cluster {profile.name} has no storage for inputs and outputs: its profile needs "
            "a storage block (prefix: s3://bucket/path)",
        )


CHECKS: tuple[Check, ...] = (
    _limits,
    _walltime,
    _never_ending,
    _containers,
    _namespace,
    _other_backend_options,
    _dependencies,
    _lsf_array_indices,
    _kubernetes_limits,
    _staging,
    _secret_refs,
    _job_options,
)


def evaluate_policy(
    spec: JobSpec, profile: ClusterProfile, *, include_passes: bool = False
) -> list[PolicyFinding]:
    """The findings of every check that applies; PASS findings only if `include_passes`."""
    findings = [finding for check in CHECKS for finding in check(spec, profile)]
    if include_passes:
        return findings
    return [f for f in findings if f.level is not PolicyLevel.PASS]


def summarize_preflight(findings: list[PolicyFinding]) -> tuple[PolicyLevel, str]:
    """The worst level, and one line per WARN or BLOCK finding. No findings: (PASS, "")."""
    level = max((f.level for f in findings), key=lambda lv: lv.rank, default=PolicyLevel.PASS)
    lines = [
        f"{f.level.value} {f.code}: {f.message}"
        for f in findings
        if f.level is not PolicyLevel.PASS
    ]
    return level, "\n".join(lines)


def blocking(findings: list[PolicyFinding]) -> list[PolicyFinding]:
    return [f for f in findings if f.level is PolicyLevel.BLOCK]
