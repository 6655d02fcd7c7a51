"""The Kubernetes backend: `backend` maps jobgate jobs to batch/v1 Jobs; `api` reaches the
cluster (the official client or kubectl); `manifest` and `status` are the pure functions
that build Job manifests and read Jobs and pods."""

from jobgate.workers.backends.kubernetes.backend import KubernetesBackend
from jobgate.workers.backends.kubernetes.manifest import render_job_manifest
from jobgate.workers.backends.kubernetes.status import classify_job

__all__ = ["KubernetesBackend", "classify_job", "render_job_manifest"]
