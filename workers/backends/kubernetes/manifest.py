"""batch/v1 Job manifests from a JobSpec and a cluster profile, as plain dicts.

Nothing here talks to a cluster; tests validate every manifest against the
Kubernetes OpenAPI schema of the profile's `target_version` (kubernetes-validate,
strict). Values go into dict fields, never into YAML text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jobgate.client.errors import BackendError
from jobgate.client.models import JobSpec, Toleration, Volume
from jobgate.client.profile_schema import KubernetesProfile, KubernetesSettings, NamespaceOverrides
from jobgate.workers.backends.programs import job_name, jobgate_variables

#: Label keys jobgate puts on its Jobs and their pods.
LABEL_JOB_ID = "jobgate.io/job-id"
LABEL_CLUSTER = "jobgate.io/cluster"
LABEL_TENANT = "jobgate.io/tenant"
LABEL_OWNER = "jobgate.io/owner"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "jobgate"
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")
#: Where a `script` spec is written inside the container before it runs.
SCRIPT_PATH = "/tmp/jobgate-script"  # noqa: S108 - inside the job's own container
#: The variable that carries a `script` spec into the container.
SCRIPT_ENV = "JOBGATE_SCRIPT"
#: The staging program, run as ``python3 -c`` in the pod's staging containers.
STAGER_SOURCE = (Path(__file__).parent / "stager.py").read_text(encoding="utf-8")
#: The staging containers, the work volume, and the variable of the staging Secret.
FETCH_CONTAINER, UPLOAD_CONTAINER, WORK_VOLUME = "jobgate-fetch", "jobgate-upload", "jobgate-work"
STAGING_ENV = "JOBGATE_STAGING"
#: What a staging container asks for (it copies files: little CPU, bounded memory).
STAGING_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"},
                     "limits": {"memory": "512Mi"}}  # fmt: skip


def label_value(text: str) -> str:
    """Text as a valid label value: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends."""
    return _LABEL_VALUE.sub("_", text)[:63].strip("_.-")


def namespace_of(spec: JobSpec, settings: KubernetesSettings) -> str:
    return (spec.kubernetes.namespace if spec.kubernetes else None) or settings.namespace


def job_labels(profile: KubernetesProfile, job_id: str, tenant: str, owner: str) -> dict[str, str]:
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_JOB_ID: job_id,
        LABEL_CLUSTER: label_value(profile.name),
    }
    if tenant:
        labels[LABEL_TENANT] = label_value(tenant)
    if owner and label_value(owner):
        labels[LABEL_OWNER] = label_value(owner)
    return labels


def _container_command(spec: JobSpec) -> tuple[list[str], dict[str, str]]:
    """Command (exec form) and extra env: a string runs under /bin/sh -c, a list as is, a
    script is written to a file in the container and run (its shebang decides how)."""
    if isinstance(spec.command, list):
        return list(spec.command), {}
    if spec.command is not None:
        return ["/bin/sh", "-c", spec.command], {}
    assert spec.script is not None
    run = f'printf %s "${SCRIPT_ENV}" > {SCRIPT_PATH} && chmod +x {SCRIPT_PATH} && '
    run += f"exec {SCRIPT_PATH}" if spec.script.startswith("#!") else f"exec /bin/sh {SCRIPT_PATH}"
    return ["/bin/sh", "-c", run], {SCRIPT_ENV: spec.script}


def _env(spec: JobSpec, extra: dict[str, str], jobgate: dict[str, str]) -> list[Any]:
    values = {**spec.env, **extra, **jobgate}
    env: list[Any] = [{"name": k, "value": v} for k, v in sorted(values.items())]
    for name, ref in sorted(spec.secret_env.items()):
        kind, _, target = ref.partition(":")
        secret, _, key = target.partition("/")
        if kind != "k8s" or not key:
            raise BackendError(
                f"secret_env {name}: {ref!r} cannot reach a Kubernetes job; use a Kubernetes "
                "secret: 'k8s:<secret name>/<key>'"
            )
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    return env


def _resources(spec: JobSpec, settings: KubernetesSettings) -> dict[str, Any]:
    r = spec.resources
    requests: dict[str, str] = {"cpu": str(r.cpus)}
    if r.memory_mb:
        requests["memory"] = f"{r.memory_mb}Mi"
    limits = dict(requests)
    custom = spec.kubernetes.limits if spec.kubernetes else None
    if custom and custom.cpus:
        limits["cpu"] = f"{custom.cpus:g}"
    if custom and custom.memory_mb:
        limits["memory"] = f"{custom.memory_mb}Mi"
    if r.gpus:  # extended resources: request and limit must be equal
        requests[settings.gpu_resource] = limits[settings.gpu_resource] = str(r.gpus)
    return {"requests": requests, "limits": limits}


def _volume(volume: Volume) -> dict[str, Any]:
    source: dict[str, Any]
    if volume.pvc:
        source = {"persistentVolumeClaim": {"claimName": volume.pvc, "readOnly": volume.read_only}}
    elif volume.secret:
        source = {"secret": {"secretName": volume.secret}}
    elif volume.config_map:
        source = {"configMap": {"name": volume.config_map}}
    elif volume.host_path:
        source = {"hostPath": {"path": volume.host_path}}
    else:
        source = {"emptyDir": {}}
    return {"name": volume.name, **source}


def _mount(volume: Volume) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": volume.name, "mountPath": volume.mount_path,
                             "readOnly": volume.read_only}  # fmt: skip
    if volume.sub_path:
        mount["subPath"] = volume.sub_path
    return mount


def _toleration(t: Toleration) -> dict[str, Any]:
    out: dict[str, Any] = {"operator": t.operator}
    for key, value in (("key", t.key), ("value", t.value), ("effect", t.effect),
                       ("tolerationSeconds", t.toleration_seconds)):  # fmt: skip
        if value is not None:
            out[key] = value
    return out


def _term(key: str, operator: str, value: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": [value]}


def _affinity(spec: JobSpec, settings: KubernetesSettings) -> dict[str, Any] | None:
    """Node affinity from required/desired/prohibited labels and the preemptible switch
    (preemptible jobs prefer preemptible nodes; the others never land on one)."""
    options = spec.kubernetes
    if options is None:
        return None
    required = [_term(k, "In", v) for k, v in options.required_labels.items()]
    required += [_term(k, "NotIn", v) for k, v in options.prohibited_labels.items()]
    preferred = [_term(k, "In", v) for k, v in options.desired_labels.items()]
    if options.preemptible is True:
        preferred.append(_term(settings.preemptible_label, "In", "true"))
    elif options.preemptible is False:
        required.append(_term(settings.preemptible_label, "NotIn", "true"))
    node: dict[str, Any] = {}
    if required:
        node["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [{"matchExpressions": required}]
        }
    if preferred:
        node["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": 100, "preference": {"matchExpressions": [term]}} for term in preferred
        ]
    return {"nodeAffinity": node} if node else None


def _overridden(override: NamespaceOverrides | None, settings: KubernetesSettings,
                field: str) -> list[Any]:  # fmt: skip
    """The namespace override's list when it gives one, else the profile's."""
    chosen = getattr(override, field, None) if override else None
    return list(chosen if chosen is not None else getattr(settings, field))


def ttl_after_finished_s(profile: KubernetesProfile) -> int:
    """How long Kubernetes keeps a finished Job: well past the longest poll gap."""
    if profile.kubernetes.ttl_after_finished_s is not None:
        return profile.kubernetes.ttl_after_finished_s
    return max(3600, int(10 * profile.poll_interval_max_s))


def work_dir_of(spec: JobSpec, settings: KubernetesSettings) -> str:
    """Where a job with inputs or outputs runs (its spec gives no working_dir): an
    emptyDir the staging containers share."""
    return settings.staging_work_dir


def staging_secret_name(name: str) -> str:
    """The Secret that carries a job's presigned URLs (named after its Job)."""
    return f"{name}-staging"


def _staging_container(
    name: str, mode: str, settings: KubernetesSettings, work_dir: str, secret: str, key: str
) -> dict[str, Any]:
    return {
        "name": name,
        "image": settings.staging_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python3", "-c", STAGER_SOURCE, mode, work_dir],
        "env": [{"name": STAGING_ENV, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}],
        "resources": STAGING_RESOURCES,
        "volumeMounts": [{"name": WORK_VOLUME, "mountPath": work_dir, "readOnly": mode != "fetch"}],
    }


def _add_staging(
    pod: dict[str, Any],
    container: dict[str, Any],
    spec: JobSpec,
    settings: KubernetesSettings,
    name: str,
) -> None:
    """The work directory as an emptyDir; an init container that fetches the inputs into
    it, and a native sidecar (an init container that restarts "Always") that uploads the
    outputs when the kubelet stops it, after the job's container ended."""
    work_dir, secret = work_dir_of(spec, settings), staging_secret_name(name)
    pod["volumes"] = [*pod.get("volumes", []), {"name": WORK_VOLUME, "emptyDir": {}}]
    container["volumeMounts"] = [
        *container.get("volumeMounts", []),
        {"name": WORK_VOLUME, "mountPath": work_dir},
    ]
    init: list[dict[str, Any]] = []
    if spec.inputs:
        init.append(_staging_container(FETCH_CONTAINER, "fetch", settings, work_dir, secret,
                                       "fetch"))  # fmt: skip
    if spec.outputs:
        uploader = _staging_container(UPLOAD_CONTAINER, "sidecar", settings, work_dir, secret,
                                      "upload")  # fmt: skip
        ready = f"/tmp/jobgate-uploader-ready-{name}"  # noqa: S108 - the uploader's own /tmp
        uploader["command"].append(ready)
        # Started means waiting for SIGTERM: the job's container must not end before.
        probe = ["python3", "-c", f"import os, sys; sys.exit(not os.path.exists({ready!r}))"]
        uploader["startupProbe"] = {"exec": {"command": probe}, "periodSeconds": 1,
                                    "failureThreshold": 120}  # fmt: skip
        init.append({**uploader, "restartPolicy": "Always"})
        pod["terminationGracePeriodSeconds"] = settings.staging_upload_grace_s
    pod["initContainers"] = init


def render_staging_secret(name: str, namespace: str, labels: dict[str, str],
                          data: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """The v1 Secret of a job's staging containers: `data` by key ("fetch", "upload")."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": staging_secret_name(name),
            "namespace": namespace,
            "labels": labels,
        },
        "type": "Opaque",
        "stringData": data,
    }


def render_job_manifest(
    spec: JobSpec, profile: KubernetesProfile, job_id: str, *, tenant: str = "", owner: str = ""
) -> dict[str, Any]:
    """The batch/v1 Job that runs `spec` (secret values never appear: only references)."""
    settings = profile.kubernetes
    namespace = namespace_of(spec, settings)
    override = settings.namespace_overrides.get(namespace)
    options = spec.kubernetes
    image = spec.image or settings.image
    if image is None:
        raise BackendError(f"job {job_id} has no image and profile {profile.name} gives none")
    if spec.array is not None:
        raise BackendError("arrays are not supported on Kubernetes yet; submit one job per index")

    command, extra_env = _container_command(spec)
    container: dict[str, Any] = {
        "name": settings.container_name,
        "image": image,
        "imagePullPolicy": (override and override.image_pull_policy) or settings.image_pull_policy,
        "command": command,
        "env": _env(spec, extra_env, jobgate_variables(job_id, profile.name, owner)),
        "resources": _resources(spec, settings),
    }
    if spec.working_dir:
        container["workingDir"] = spec.working_dir
    stages = bool(spec.inputs or spec.outputs)
    if stages:
        container["workingDir"] = work_dir_of(spec, settings)
    if options and options.privileged:
        container["securityContext"] = {"privileged": True}
    volumes = [*_overridden(override, settings, "volumes"), *(options.volumes if options else [])]
    if volumes:
        container["volumeMounts"] = [_mount(v) for v in volumes]

    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if volumes:
        pod["volumes"] = [_volume(v) for v in volumes]
    if stages:
        _add_staging(pod, container, spec, settings, job_name(profile, job_id))
    node_selector = {**((override and override.node_selector) or settings.node_selector),
                     **(options.node_selector if options else {})}  # fmt: skip
    if node_selector:
        pod["nodeSelector"] = node_selector
    tolerations = [*_overridden(override, settings, "tolerations"),
                   *(options.tolerations if options else [])]  # fmt: skip
    pod_tolerations = [_toleration(t) for t in tolerations]
    if options and options.preemptible:
        pod_tolerations.append({"key": settings.preemptible_label, "operator": "Exists",
                                "effect": "NoSchedule"})  # fmt: skip
    if pod_tolerations:
        pod["tolerations"] = pod_tolerations
    if affinity := _affinity(spec, settings):
        pod["affinity"] = affinity
    account = (options.service_account if options else None) or (
        override.service_account if override else None) or settings.service_account  # fmt: skip
    if account:
        pod["serviceAccountName"] = account
    if settings.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": n} for n in settings.image_pull_secrets]

    labels = job_labels(profile, job_id, tenant, owner)
    job_spec: dict[str, Any] = {
        "backoffLimit": settings.backoff_limit,
        "ttlSecondsAfterFinished": ttl_after_finished_s(profile),
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
    }
    if spec.resources.walltime_s:
        job_spec["activeDeadlineSeconds"] = spec.resources.walltime_s
    if settings.pod_failure_policy:
        disrupted = {"type": "DisruptionTarget", "status": "True"}
        failed = {"containerName": settings.container_name, "operator": "NotIn", "values": [0]}
        job_spec["podFailurePolicy"] = {"rules": [
            {"action": "Ignore", "onPodConditions": [disrupted]},
            {"action": "FailJob", "onExitCodes": failed},
        ]}  # fmt: skip
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(profile, job_id), "namespace": namespace, "labels": labels},
        "spec": job_spec,
    }
