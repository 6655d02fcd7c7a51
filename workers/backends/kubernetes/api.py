"""The two ways to reach a Kubernetes API: the official client, and kubectl.

Both give the same five calls on plain dicts (the API's JSON), and the same
errors: transport failures, 429 (after its Retry-After) and 500/502/503/504 are
retried a bounded number of times and then raise SchedulerUnavailableError; 400,
401, 403, 404, 409 and 422 are never retried and become a BackendError that says
what was refused and why. No kubernetes or urllib3 exception leaves this module.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from jobgate.client.errors import BackendError, SchedulerUnavailableError
from jobgate.client.profile_schema import KubernetesSettings
from jobgate.workers.backends import commands

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_S = 0.5


class ClusterApi(Protocol):
    def create_job(self, namespace: str, manifest: dict[str, Any]) -> str: ...

    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def delete_job(self, namespace: str, name: str) -> None: ...

    def put_secret(self, namespace: str, manifest: dict[str, Any]) -> None: ...

    def delete_secret(self, namespace: str, name: str) -> None: ...

    def pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes: ...


def refused(status: int, verb: str, resource: str, namespace: str, message: str) -> BackendError:
    """A clear error for an answer that retrying cannot change."""
    where = f"{resource} in namespace {namespace}"
    if status == 401:
        return BackendError(f"Kubernetes did not accept the worker's credentials ({verb} "
                            f"{where}): renew the kubeconfig or service account token")  # fmt: skip
    if status == 403:
        return BackendError(f"RBAC: the worker's account may not {verb} {where} (403): "
                            f"{message}; see deploy/kubernetes/rbac.yaml")  # fmt: skip
    if status == 404:
        return BackendError(f"{where} does not exist (404 on {verb}): {message}")
    if status == 422:
        return BackendError(f"Kubernetes rejected the {resource} as invalid (422): {message}")
    return BackendError(f"Kubernetes refused to {verb} {where} ({status}): {message}")


def _check_namespace(manifest: dict[str, Any], namespace: str) -> None:
    given = (manifest.get("metadata") or {}).get("namespace")
    if given != namespace:
        raise BackendError(f"the Job manifest's namespace {given!r} is not the backend's "
                           f"{namespace!r}")  # fmt: skip


class ClientApi:
    """The official `kubernetes` client, its configuration reloaded every
    `credentials_refresh_s` (tokens and kubeconfigs get rotated under long-lived workers)."""

    def __init__(self, settings: KubernetesSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._api_client: Any = None
        self._loaded_at = 0.0
        self._api_client_now()

    def _load(self) -> Any:
        path = self.settings.kubeconfig or os.environ.get("KUBECONFIG")
        default = Path("~/.kube/config").expanduser()
        configuration = k8s.Configuration()
        try:
            if path or default.exists():
                k8s_config.load_kube_config(config_file=path or str(default),
                                        context=self.settings.context,
                                        client_configuration=configuration)  # fmt: skip
            else:
                k8s_config.load_incluster_config(client_configuration=configuration)
        except (ConfigException, OSError, ValueError) as e:
            raise BackendError(f"cannot load a Kubernetes configuration: {e}") from e
        # No urllib3 retries (they would also sleep out 429/503 Retry-After silently):
        # _call retries, bounded and logged. Set before the connection pool exists.
        configuration.retries = 0
        return k8s.ApiClient(configuration)

    def _api_client_now(self, *, reload: bool = False) -> Any:
        with self._lock:
            age_s = time.monotonic() - self._loaded_at
            if reload or self._api_client is None or age_s > self.settings.credentials_refresh_s:
                self._api_client, self._loaded_at = self._load(), time.monotonic()
            return self._api_client

    def _call(self, verb: str, resource: str, namespace: str, call: Callable[[Any], T]) -> T:
        failure = ""
        reloaded = False
        for attempt in range(self.settings.request_attempts):
            pause_s = BACKOFF_S * 2**attempt
            try:
                return call(self._api_client_now(reload=reloaded))
            except ApiException as e:
                message = _status_message(e.body) or str(e.reason)
                if e.status == 401 and not reloaded:
                    # rotated credentials: read the kubeconfig or token again, once
                    log.warning("Kubernetes answered 401 to %s %s: reloading credentials",
                                verb, resource)  # fmt: skip
                    reloaded = True
                    continue
                if e.status not in RETRIED_STATUSES:
                    raise refused(e.status, verb, resource, namespace, message) from None
                failure = f"{e.status} {message}"
                retry_after = (e.headers or {}).get("Retry-After")
                if e.status == 429 and retry_after and retry_after.isdigit():
                    pause_s = max(pause_s, float(retry_after))
            except HTTPError as e:
                failure = f"connection failed: {type(e).__name__}: {e}"
            if attempt + 1 < self.settings.request_attempts:
                log.warning("Kubernetes %s %s: %s; retrying in %g s", verb, resource, failure,
                            pause_s)  # fmt: skip
                time.sleep(pause_s)
        raise SchedulerUnavailableError(
            f"Kubernetes API: {verb} {resource} in {namespace} failed: {failure} "
            f"(gave up after {self.settings.request_attempts} attempts)"
        )

    def _batch(self, api_client: Any) -> Any:
        return k8s.BatchV1Api(api_client)

    def _core(self, api_client: Any) -> Any:
        return k8s.CoreV1Api(api_client)

    def _json(self, response: Any) -> Any:
        return json.loads(response.data)

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> str:
        """Create the Job; one that exists already under its name is this job (names carry
        the jobgate id), created by an earlier attempt whose answer was lost."""
        _check_namespace(manifest, namespace)
        name = str(manifest["metadata"]["name"])

        def create(c: Any) -> str:
            try:
                created = self._json(
                    self._batch(c).create_namespaced_job(namespace, manifest, **self._raw)
                )
            except ApiException as e:
                if e.status == 409:
                    log.info("Job %s/%s exists already: taken as this job's", namespace, name)
                    return name
                raise
            return str(created["metadata"]["name"])

        return self._call("create", "jobs.batch", namespace, create)

    @property
    def _raw(self) -> dict[str, Any]:
        """Answers as bytes, parsed here whatever the client version makes of them."""
        return {"_preload_content": False, "_request_timeout": self.settings.request_timeout_s}

    def _list(
        self, resource: str, namespace: str, selector: str, lister: Callable[[Any], Any]
    ) -> list[dict[str, Any]]:
        listed = self._call("list", resource, namespace, lambda c: self._json(
            lister(c)(namespace, label_selector=selector, **self._raw)))  # fmt: skip
        return list(listed.get("items") or [])

    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._list("jobs.batch", namespace, selector,
                          lambda c: self._batch(c).list_namespaced_job)  # fmt: skip

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._list("pods", namespace, selector, lambda c: self._core(c).list_namespaced_pod)

    def delete_job(self, namespace: str, name: str) -> None:
        def delete(c: Any) -> None:
            try:
                self._batch(c).delete_namespaced_job(
                    name, namespace, propagation_policy="Background", **self._raw)  # fmt: skip
            except ApiException as e:
                if e.status != 404:  # already gone: deleting is idempotent
                    raise

        self._call("delete", "jobs.batch", namespace, delete)

    def put_secret(self, namespace: str, manifest: dict[str, Any]) -> None:
        """Create the Secret, or replace the one an earlier attempt left under its name."""
        _check_namespace(manifest, namespace)
        name = str(manifest["metadata"]["name"])

        def put(c: Any) -> None:
            try:
                self._core(c).create_namespaced_secret(namespace, manifest, **self._raw)
            except ApiException as e:
                if e.status != 409:
                    raise
                self._core(c).replace_namespaced_secret(name, namespace, manifest, **self._raw)

        self._call("create", "secrets", namespace, put)

    def delete_secret(self, namespace: str, name: str) -> None:
        def delete(c: Any) -> None:
            try:
                self._core(c).delete_namespaced_secret(name, namespace, **self._raw)
            except ApiException as e:
                if e.status != 404:
                    raise

        self._call("delete", "secrets", namespace, delete)

    def pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes:
        """The log from its start (only its first `limit_bytes` when given)."""
        limit = {"limit_bytes": limit_bytes} if limit_bytes else {}
        return self._call("get", "pods/log", namespace, lambda c: bytes(
            self._core(c).read_namespaced_pod_log(pod, namespace, container=container,
                                                  **limit, **self._raw).data))  # fmt: skip


def _status_message(body: Any) -> str:
    """The message of a Kubernetes Status object in an error body."""
    try:
        status = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return str(body or "")[:300]
    return str(status.get("message") or "") if isinstance(status, dict) else ""


#: What kubectl prints when the API server is busy or unreachable.
KUBECTL_TRANSIENT = (
    "connection refused",
    "i/o timeout",
    "TLS handshake timeout",
    "Too Many Requests",
    "ServiceUnavailable",
    "InternalError",
    "the server is currently unable",
    "connection reset",
    "EOF",
    "Timeout",
)
#: kubectl's words for answers that retrying cannot change, and their HTTP status.
KUBECTL_REFUSALS = (
    (401, "Unauthorized"),
    (403, "Forbidden"),
    (403, "forbidden"),
    (404, "NotFound"),
    (422, "Invalid"),
    (409, "AlreadyExists"),
)


class KubectlApi:
    """kubectl, for clusters reached only through it (the profile's use_kubectl)."""

    def __init__(self, settings: KubernetesSettings) -> None:
        self.settings = settings
        self.policy = commands.RetryPolicy(
            timeout_s=settings.request_timeout_s,
            attempts=settings.request_attempts,
            transient=KUBECTL_TRANSIENT,
        )

    def _argv(self, *args: str) -> list[str]:
        argv = [self.settings.kubectl]
        if self.settings.kubeconfig:
            argv += ["--kubeconfig", self.settings.kubeconfig]
        if self.settings.context:
            argv += ["--context", self.settings.context]
        return [*argv, *args]

    def _run(self, verb: str, resource: str, namespace: str, args: list[str],
             input_text: str | None = None) -> str:  # fmt: skip
        result = commands.run(self._argv(*args), self.policy, input_text=input_text)
        if result.returncode == 0:
            return result.stdout
        said = result.stderr.strip()[-500:]
        for status, marker in KUBECTL_REFUSALS:
            if marker in said:
                raise refused(status, verb, resource, namespace, said)
        raise result.error(f"could not {verb} {resource} in {namespace}")

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> str:
        _check_namespace(manifest, namespace)
        out = self._run("create", "jobs.batch", namespace,
                        ["apply", "-n", namespace, "-o", "json", "-f", "-"],
                        input_text=json.dumps(manifest))  # fmt: skip
        return str(json.loads(out)["metadata"]["name"])

    def _list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-l", selector, "-o", "json"]
        return list(json.loads(self._run("list", kind, namespace, args)).get("items") or [])

    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._list("jobs.batch", namespace, selector)

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._list("pods", namespace, selector)

    def delete_job(self, namespace: str, name: str) -> None:
        self._run("delete", "jobs.batch", namespace,
                  ["delete", "job", name, "-n", namespace, "--ignore-not-found",
                   "--cascade=background", "--wait=false"])  # fmt: skip

    def put_secret(self, namespace: str, manifest: dict[str, Any]) -> None:
        """create, or replace (not apply: its last-applied annotation would copy the
        Secret's values into the object's metadata)."""
        _check_namespace(manifest, namespace)
        body = json.dumps(manifest)
        try:
            self._run("create", "secrets", namespace, ["create", "-n", namespace, "-f", "-"],
                      input_text=body)  # fmt: skip
        except BackendError as e:
            if "AlreadyExists" not in str(e) and "already exists" not in str(e):
                raise
            self._run("update", "secrets", namespace, ["replace", "-n", namespace, "-f", "-"],
                      input_text=body)  # fmt: skip

    def delete_secret(self, namespace: str, name: str) -> None:
        self._run("delete", "secrets", namespace,
                  ["delete", "secret", name, "-n", namespace, "--ignore-not-found",
                   "--wait=false"])  # fmt: skip

    def pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes:
        """The log from its start (only its first `limit_bytes` when given)."""
        args = ["logs", pod, "-n", namespace, "-c", container]
        if limit_bytes:
            args.append(f"--limit-bytes={limit_bytes}")
        return self._run("get", "pods/log", namespace, args).encode()
