"""The Kubernetes backend: each jobgate job is a batch/v1 Job.

Manifests and status are pure functions (manifest, status); api reaches the cluster
through the official client or kubectl. Status is batched: per namespace in use, one
labelled list of Jobs per poll, plus one labelled list of pods for the jobs not decided
as succeeded (pending or running ones, and failed ones for their exit code). The backend
id is ``<namespace>/<job name>``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jobgate.client.errors import BackendError
from jobgate.client.models import JobStatus, Observation
from jobgate.client.profile_schema import KubernetesProfile, KubernetesSettings
from jobgate.workers.backends.base import Backend, JobSubmission, LogChunk, LogRange, chunks
from jobgate.workers.backends.kubernetes.api import ClientApi, ClusterApi, KubectlApi
from jobgate.workers.backends.kubernetes.manifest import (
    LABEL_CLUSTER,
    LABEL_JOB_ID,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    job_labels,
    label_value,
    namespace_of,
    render_job_manifest,
    render_staging_secret,
    staging_secret_name,
)
from jobgate.workers.backends.kubernetes.status import (
    IMAGE_ERRORS,
    classify_job,
    exit_code,
    newest_first,
    pod_waiting_reason,
    started_finished,
    timestamp,
)

if TYPE_CHECKING:
    from jobgate.client.models import JobRecord
    from jobgate.workers.context import ClusterContext
    from jobgate.workers.staging.outputs import Kept
    from jobgate.workers.staging.s3 import JobStorage

log = logging.getLogger(__name__)
DELETED_OUTSIDE = "deleted outside jobgate"
#: Label selectors are sent in URLs: this many job ids per pod list.
SELECTOR_CHUNK = 100


def _split(backend_id: str) -> tuple[str, str]:
    namespace, _, name = backend_id.partition("/")
    if not name:
        raise BackendError(f"{backend_id!r} is not a Kubernetes backend id (<namespace>/<name>)")
    return namespace, name


def connect(settings: KubernetesSettings) -> ClusterApi:
    """The client, or kubectl when the profile asks for it or no client configuration
    loads (said in the log: the two must not be confused when debugging)."""
    if settings.use_kubectl:
        return KubectlApi(settings)
    try:
        return ClientApi(settings)
    except BackendError as e:
        log.warning("%s; using %s instead of the API client", e, settings.kubectl)
        return KubectlApi(settings)


class KubernetesBackend(Backend[KubernetesProfile]):
    kind = "kubernetes"
    keeps_output = False  # ttlSecondsAfterFinished deletes the Job, its pods and their logs

    def __init__(self, profile: KubernetesProfile) -> None:
        super().__init__(profile)
        self.settings = profile.kubernetes
        self.api = connect(self.settings)
        self._storage: JobStorage | None = None

    def _selector(self) -> str:
        return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_CLUSTER}={label_value(self.profile.name)}"

    def _namespaces(self) -> list[str]:
        return sorted({self.settings.namespace, *self.settings.namespace_overrides})

    # -- submit ------------------------------------------------------------------

    def submit(self, job: JobSubmission) -> str:
        if job.dependencies:
            raise BackendError("the Kubernetes backend does not run dependencies")
        manifest = render_job_manifest(
            job.spec, self.profile, job.job_id, tenant=job.tenant, owner=job.owner
        )
        namespace = namespace_of(job.spec, self.settings)
        staged = bool(job.spec.inputs or job.spec.outputs)
        if staged:
            self._put_staging_secret(job, namespace, manifest["metadata"]["name"])
        try:
            return f"{namespace}/{self.api.create_job(namespace, manifest)}"
        except BackendError as e:
            if staged and not e.transient:
                self.api.delete_secret(namespace, staging_secret_name(manifest["metadata"]["name"]))
            raise

    # -- job files (staging.py) -------------------------------------------------------

    def _put_staging_secret(self, job: JobSubmission, namespace: str, name: str) -> None:
        """The Secret with the pod's presigned URLs, before the Job that reads it."""
        from jobgate.workers.backends.kubernetes.staging import staging_data

        if self.profile.storage is None:
            raise BackendError(f"cluster {self.profile.name} has no storage for job files")
        if self._storage is None:
            from jobgate.workers.staging.s3 import JobStorage

            self._storage = JobStorage(self.profile.storage, self.profile.name)
        data = staging_data(self._storage, self.settings, job.job_id, job.spec)
        labels = job_labels(self.profile, job.job_id, job.tenant, job.owner)
        self.api.put_secret(namespace, render_staging_secret(name, namespace, labels, data))

    def keep_outputs(self, ctx: ClusterContext, record: JobRecord) -> Kept:
        """What the job's uploader kept (outputs.keep_outputs asks the backend)."""
        from jobgate.workers.backends.kubernetes.staging import keep_outputs

        return keep_outputs(ctx, record)

    def drop_staging_secret(self, backend_id: str) -> None:
        namespace, name = _split(backend_id)
        self.api.delete_secret(namespace, staging_secret_name(name))

    def find(self, job_id: str) -> str | None:
        """Nothing to look up before a submit: creating a Job whose name exists already
        (an earlier attempt) answers with that Job, so a first submit costs one call."""
        return None

    def discover(self, job_ids: Sequence[str]) -> dict[str, str]:
        wanted = set(job_ids)
        found: dict[str, str] = {}
        for namespace in self._namespaces():
            for job in self.api.list_jobs(namespace, self._selector()):
                metadata = job.get("metadata") or {}
                job_id = (metadata.get("labels") or {}).get(LABEL_JOB_ID)
                if job_id in wanted:
                    found[job_id] = f"{namespace}/{metadata.get('name')}"
        return found

    # -- status --------------------------------------------------------------------

    def query(self, jobs: Mapping[str, str]) -> dict[str, Observation]:
        by_namespace: dict[str, dict[str, str]] = {}
        for job_id, backend_id in jobs.items():
            namespace, name = _split(backend_id)
            by_namespace.setdefault(namespace, {})[job_id] = name
        result: dict[str, Observation] = {}
        for namespace, names in by_namespace.items():
            result.update(self._query_namespace(namespace, names))
        return result

    def _query_namespace(self, namespace: str, names: Mapping[str, str]) -> dict[str, Observation]:
        listed = {(j.get("metadata") or {}).get("name"): j
                  for j in self.api.list_jobs(namespace, self._selector())}  # fmt: skip
        # Pods of the jobs the conditions leave open, and of failed ones (their exit code):
        # a succeeded Job needs none.
        need_pods = [job_id for job_id, name in names.items()
                     if name in listed and classify_job(listed[name], [])[0] is not
                     JobStatus.SUCCEEDED]  # fmt: skip
        pods = self._pods(namespace, need_pods)
        now = time.time()
        result = {}
        for job_id, name in names.items():
            job = listed.get(name)
            if job is None:
                result[job_id] = Observation(JobStatus.FAILED, DELETED_OUTSIDE)
                continue
            result[job_id] = self._observe(job, pods.get(job_id, []), now)
        return result

    def _pods(self, namespace: str, job_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        pods: dict[str, list[dict[str, Any]]] = {}
        for chunk in chunks(sorted(job_ids), SELECTOR_CHUNK):
            selector = f"{LABEL_JOB_ID} in ({','.join(chunk)})"
            for pod in self.api.list_pods(namespace, selector):
                job_id = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_JOB_ID)
                pods.setdefault(str(job_id), []).append(pod)
        return pods

    def _observe(self, job: dict[str, Any], pods: list[dict[str, Any]], now: float) -> Observation:
        status, reason = classify_job(job, pods)
        started, finished = started_finished(job)
        if status is JobStatus.PENDING:
            stuck = self._stuck(job, pods, now)
            if stuck:
                return Observation(JobStatus.FAILED, stuck, stop_on_scheduler=True)
        code = exit_code(pods) if status.is_finished else None
        if status is JobStatus.FAILED and code is not None:
            reason = f"{reason} (exit code {code})"
        if status is JobStatus.SUCCEEDED:
            code = 0
        return Observation(status, reason, code, started, finished if status.is_finished else None)

    def _stuck(self, job: dict[str, Any], pods: list[dict[str, Any]], now: float) -> str | None:
        """Why a pending job should fail now: an image error past its grace, or the
        profile's pending timeout."""
        for pod in newest_first(pods):
            waiting = pod_waiting_reason(pod)
            created = timestamp((pod.get("metadata") or {}).get("creationTimestamp"))
            if not waiting or waiting[0] not in IMAGE_ERRORS or created is None:
                continue
            if now - created.timestamp() >= self.settings.image_error_grace_s:
                return f"{waiting[0]}: {waiting[1]}".rstrip(": ")
        timeout = self.settings.pending_timeout_s
        created = timestamp((job.get("metadata") or {}).get("creationTimestamp"))
        if timeout is not None and created is not None and now - created.timestamp() > timeout:
            return f"pending for more than {timeout:g} s"
        return None

    # -- cancel and logs --------------------------------------------------------------

    def cancel(self, jobs: Mapping[str, str]) -> None:
        for backend_id in sorted(set(jobs.values())):
            self.api.delete_job(*_split(backend_id))

    def logs(self, job_id: str, backend_id: str, wanted: LogRange) -> LogChunk:
        if wanted.stream != "stdout":
            raise BackendError("Kubernetes keeps one log per container, stdout and stderr "
                               "together: read stdout")  # fmt: skip
        if wanted.index is not None:
            raise BackendError(f"job {job_id} is not an array; do not give an index")
        namespace, _ = _split(backend_id)
        pods = list(
            reversed(newest_first(self.api.list_pods(namespace, f"{LABEL_JOB_ID}={job_id}")))
        )
        # Read only up to the end of the chunk asked for: a long log is not fetched whole
        # for every chunk of it.
        end = wanted.offset + wanted.max_bytes
        read = b""
        for pod in pods:
            if len(read) >= end:
                break
            name = (pod.get("metadata") or {}).get("name", "")
            header = f"==> pod {name} <==\n".encode() if len(pods) > 1 else b""
            limit = max(1, end - len(read) - len(header))
            try:
                text = self.api.pod_log(namespace, name, self.settings.container_name, limit)
            except BackendError as e:
                if "waiting to start" in str(e) or "ContainerCreating" in str(e):
                    continue  # no output yet
                raise
            read += header + text
        data = read[wanted.offset : end]
        return LogChunk(data, wanted.offset + len(data))
