"""KubeApiServer: the emulated API server and the controls a test holds.

with KubeApiServer() as api:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", namespace="jobs")
    ...                                   # clients use the kubeconfig
    pod = api.create_pod_for("jobs", "my-job")
    api.set_pod_running(pod); api.append_log(pod, "hello\\n")
    api.finish_pod(pod, 0); api.complete_job("jobs", "my-job")
"""

from __future__ import annotations

import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from . import crud, kubeconfig, kubelet, tlsgen
from .api import Api
from .auth import ANONYMOUS, Authenticator, Rule
from .autorun import AutoRunner
from .cluster import Cluster
from .faults import Fault, Faults
from .httpd import ApiHTTPServer, RequestLog, RequestRecord
from .jobctl import JobController
from .outcomes import Decide, Outcome, OutcomePlayer
from .processes import ProcessPlayer
from .resources import JOBS, PODS, SECRETS

JsonObj = dict[str, Any]

DEFAULT_USER = "system:serviceaccount:default:jobgate"
DEFAULT_TOKEN = "kubeemu-token"
UNSCHEDULABLE = (
    "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
    "1 No preemption victims found for incoming pod."
)
WAITING_MESSAGES = {
    "ErrImagePull": 'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": '
    'failed to resolve reference "{ref}": {ref}: not found',
    "ImagePullBackOff": 'Back-off pulling image "{image}"',
    "InvalidImageName": 'Failed to apply default image tag "{image}": couldn\'t parse image name '
    '"{image}": invalid reference format',
    "CreateContainerConfigError": 'secret "missing" not found',
}


class KubeApiServer:
    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        user: str = DEFAULT_USER,
        tls: bool = False,
        anonymous: bool = False,
        namespaces: Iterable[str] = ("default",),
        gc_delay_s: float = 0.05,
        watch_history: int = 10_000,
    ) -> None:
        self.token = token
        self.user = user
        self.tls = tls
        self.cluster = Cluster(gc_delay_s=gc_delay_s, watch_history=watch_history)
        self.jobs_ctl = JobController(self.cluster)
        self.auth = Authenticator(anonymous)
        self.auth.add(user, token, None)
        self.faults = Faults()
        self.log = RequestLog()
        for name in namespaces:
            self.cluster.create_namespace(name)
        self._httpd: ApiHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._auto: AutoRunner | None = None
        self._auto_kind = ""  # "outcomes" or "processes" while the automatic mode runs
        self.ca_pem: bytes | None = None

    # lifecycle -----------------------------------------------------------------
    def start(self) -> KubeApiServer:
        context = None
        if self.tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="kubeemu-tls-")
            cert, key = tlsgen.make(Path(self._tmp.name))
            self.ca_pem = cert.read_bytes()
            context = tlsgen.server_context(cert, key)
        api = Api(self.cluster, self.auth, "")
        self._httpd = ApiHTTPServer(("127.0.0.1", 0), api, self.faults, self.log, context)
        api.server_address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kubeemu-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._auto is not None:
            self._auto.stop()
        self.cluster.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.close_connections()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the server first"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def write_kubeconfig(
        self,
        path: Path | str,
        *,
        token: str | None = "",
        namespace: str = "default",
        context: str = "kubeemu",
    ) -> Path:
        """A kubeconfig for this server. ``token=""``: the server's token; ``None``: no
        credentials. The namespace is created if it does not exist yet."""
        self.cluster.create_namespace(namespace)
        text = kubeconfig.render(
            self.url, self.token if token == "" else token, namespace, context, self.ca_pem
        )
        return kubeconfig.write(Path(path), text)

    # request log -----------------------------------------------------------------
    def requests(self, method: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Requests seen so far, oldest first; ``path`` is a regex searched in the path."""
        return [
            r
            for r in self.log.all()
            if (method is None or r.method == method.upper())
            and (path is None or re.search(path, r.path))
        ]

    def clear_requests(self) -> None:
        self.log.clear()

    # faults ------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        count: int | None = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        retry_after: int | None = None,
        message: str | None = None,
    ) -> Fault:
        """Answer the next ``count`` matching requests (``None``: all) with ``status``:
        429 TooManyRequests (Retry-After, default 1 s), 500 InternalError, 503
        ServiceUnavailable, 504 Timeout, or any other code."""
        return self.faults.add(Fault(status, count, method, path, retry_after, message))

    def drop_next(
        self, count: int | None = 1, *, method: str | None = None, path: str | None = None
    ) -> Fault:
        """Close the connection of the next ``count`` matching requests unanswered."""
        return self.faults.add(Fault(None, count, method, path))

    def set_latency(self, seconds: float) -> None:
        self.faults.latency_s = seconds

    def clear_faults(self) -> None:
        self.faults.clear()

    # users and RBAC ----------------------------------------------------------------
    def add_user(self, name: str, token: str, rules: list[Rule] | None = None) -> None:
        self.auth.add(name, token, rules)

    def revoke_token(self, token: str) -> None:
        """Requests with this bearer token get 401 from now on (credential rotation)."""
        self.auth.revoke(token)

    def set_rules(self, rules: list[Rule] | None, user: str | None = None) -> None:
        """Allow only what ``rules`` allow to ``user`` (default: the server's user;
        ``"system:anonymous"`` for tokenless requests); ``None`` allows everything."""
        self.auth.set_rules(user or self.user, rules)

    # objects -------------------------------------------------------------------------
    def create_namespace(self, name: str) -> None:
        self.cluster.create_namespace(name)

    def job(self, namespace: str, name: str) -> JsonObj | None:
        return self.cluster.store.get(JOBS, namespace, name)

    def secret(self, namespace: str, name: str) -> JsonObj | None:
        """A Secret as stored: ``data`` base64-encoded (``stringData`` folded in)."""
        return self.cluster.store.get(SECRETS, namespace, name)

    def jobs(self, namespace: str | None = None) -> list[JsonObj]:
        return self.cluster.store.list(JOBS, namespace)[0]

    def pod(self, name: str, namespace: str | None = None) -> JsonObj | None:
        try:
            return self.cluster.store.get(PODS, self._pod_namespace(name, namespace), name)
        except LookupError:
            return None

    def pods(self, namespace: str | None = None, job_name: str | None = None) -> list[JsonObj]:
        items = self.cluster.store.list(PODS, namespace)[0]
        if job_name is None:
            return items
        return [p for p in items if (p["metadata"].get("labels") or {}).get("job-name") == job_name]

    def create_job(self, namespace: str, body: JsonObj) -> JsonObj:
        """Create a Job as a client would (defaults, validation), without HTTP."""
        return crud.create(self.cluster, JOBS, namespace, body, False)

    def _pod_namespace(self, name: str, namespace: str | None) -> str:
        if namespace is not None:
            return namespace
        found = self.cluster.store.find(PODS, lambda p: p["metadata"]["name"] == name)
        if not found:
            raise LookupError(f"no pod named {name}")
        if len(found) > 1:
            raise ValueError(f"pod name {name} is in several namespaces: pass namespace=")
        return str(found[0]["metadata"]["namespace"])

    # kubelet and scheduler ------------------------------------------------------------
    def create_pod_for(self, namespace: str, job_name: str) -> str:
        """Create a pod for the Job as its controller does (Pending, not scheduled)."""
        return self.jobs_ctl.create_pod(namespace, job_name)

    def _pod(self, pod: str, namespace: str | None, change: Callable[[JsonObj], None]) -> JsonObj:
        return self.jobs_ctl.change_pod(self._pod_namespace(pod, namespace), pod, change)

    def schedule_pod(self, pod: str, *, namespace: str | None = None) -> JsonObj:
        """Bind the pod to the node: its containers wait in ContainerCreating."""
        return self._pod(pod, namespace, kubelet.schedule)

    def set_pod_waiting(
        self,
        pod: str,
        reason: str = "ContainerCreating",
        message: str | None = None,
        *,
        namespace: str | None = None,
        container: str | None = None,
    ) -> JsonObj:
        """Containers wait with ``reason`` (ErrImagePull, ImagePullBackOff,
        InvalidImageName, CreateContainerConfigError, ContainerCreating, ...)."""

        def change(doc: JsonObj) -> None:
            text = message
            if text is None and reason in WAITING_MESSAGES:
                image = doc["spec"]["containers"][0].get("image", "")
                ref = kubelet.resolved_image(image)
                text = WAITING_MESSAGES[reason].format(image=image, ref=ref)
            kubelet.waiting(doc, reason, text, container)

        return self._pod(pod, namespace, change)

    def set_pod_unschedulable(
        self, pod: str, message: str = UNSCHEDULABLE, *, namespace: str | None = None
    ) -> JsonObj:
        return self._pod(pod, namespace, lambda doc: kubelet.unschedulable(doc, message))

    def set_pod_running(
        self, pod: str, *, namespace: str | None = None, container: str | None = None
    ) -> JsonObj:
        return self._pod(pod, namespace, lambda doc: kubelet.running(doc, container))

    def finish_pod(
        self,
        pod: str,
        exit_code: int = 0,
        reason: str | None = None,
        *,
        namespace: str | None = None,
        container: str | None = None,
    ) -> JsonObj:
        """The container exits (reason default: Completed for 0, else Error; OOMKilled
        is usually exit code 137). A Job's pod is counted into its Job's status."""
        why = reason or ("Completed" if exit_code == 0 else "Error")
        return self._pod(
            pod, namespace, lambda doc: kubelet.terminated(doc, exit_code, why, container)
        )

    def append_log(
        self,
        pod: str,
        text: str,
        *,
        namespace: str | None = None,
        container: str | None = None,
        at: datetime | None = None,
    ) -> None:
        ns = self._pod_namespace(pod, namespace)
        doc = self.cluster.store.get(PODS, ns, pod)
        if doc is None:
            raise LookupError(f"no pod {ns}/{pod}")
        name = container or doc["spec"]["containers"][0]["name"]
        self.cluster.logs.append(ns, pod, name, text, at)

    # job controller ----------------------------------------------------------------------
    def job_started(self, namespace: str, name: str) -> JsonObj:
        """startTime, and active/ready/terminating counted from the Job's pods."""
        return self.jobs_ctl.sync(namespace, name)

    def set_job_counts(self, namespace: str, name: str, **counts: int) -> JsonObj:
        """Set status counters directly: active=, ready=, succeeded=, failed=, terminating=."""
        return self.jobs_ctl.set_counts(namespace, name, **counts)

    def complete_job(self, namespace: str, name: str) -> JsonObj:
        return self.jobs_ctl.complete(namespace, name)

    def fail_job(
        self,
        namespace: str,
        name: str,
        reason: str = "BackoffLimitExceeded",
        message: str | None = None,
        failed: int | None = None,
    ) -> JsonObj:
        """FailureTarget and Failed conditions (BackoffLimitExceeded, DeadlineExceeded,
        PodFailurePolicy, ...); pods still running are deleted, as the controller does."""
        return self.jobs_ctl.fail(namespace, name, reason, message, failed)

    def suspend_job(self, namespace: str, name: str) -> JsonObj:
        return self.jobs_ctl.suspend(namespace, name, True)

    def resume_job(self, namespace: str, name: str) -> JsonObj:
        return self.jobs_ctl.suspend(namespace, name, False)

    def run_job(self, namespace: str, name: str, exit_code: int = 0, log: str = "") -> str:
        """All of it at once: a pod that runs, logs ``log``, exits, and the Job
        Complete (exit 0) or Failed with BackoffLimitExceeded. Returns the pod name."""
        pod = self.create_pod_for(namespace, name)
        self.set_pod_running(pod, namespace=namespace)
        if log:
            self.append_log(pod, log, namespace=namespace)
        self.finish_pod(pod, exit_code, namespace=namespace)
        if exit_code == 0:
            self.complete_job(namespace, name)
        else:
            self.fail_job(namespace, name)
        return pod

    # automatic mode ----------------------------------------------------------------------
    def start_auto(self, outcome: Outcome | Decide | None = None) -> None:
        """Run every Job (existing and new) automatically: one Outcome for all, or a
        function (job, attempt) -> Outcome. Calling it again replaces the outcome."""
        self._refuse_other("outcomes", "start_auto")
        if self._auto is not None:
            self._auto.stop()
        fixed = outcome if isinstance(outcome, Outcome) else Outcome()
        decide: Decide = outcome if callable(outcome) else (lambda job, attempt: fixed)
        self._start_runner("outcomes", OutcomePlayer(decide))

    def start_processes(
        self, *, env: Mapping[str, str] | None = None, work_dir: Path | None = None
    ) -> None:
        """Run every Job (existing unfinished and new) for real: its pod's container
        ``command`` + ``args`` as a local process in its own process group (the image is
        ignored), with ``env`` (default: PATH, HOME, LANG of this process) plus the
        container's ``env`` values, in its ``workingDir`` if that exists here, else in
        ``work_dir`` (default: a temporary directory, removed at the end). Output goes
        to the pod's log as it is written, the exit code to the container's status;
        failures are retried up to backoffLimit; activeDeadlineSeconds and deleting the
        pod or its Job stop the process. ``stop_auto()`` / ``stop()`` kill what is left."""
        self._refuse_other("processes", "start_processes")
        if self._auto is not None:
            raise RuntimeError("start_processes(): process mode is running already")
        self._start_runner("processes", ProcessPlayer(self.cluster, env, work_dir))

    def _refuse_other(self, kind: str, call: str) -> None:
        if self._auto is not None and self._auto_kind != kind:
            running = "start_auto()" if self._auto_kind == "outcomes" else "start_processes()"
            raise RuntimeError(
                f"{call}(): {running} is running; start_auto() and start_processes() are "
                "mutually exclusive: stop_auto() first"
            )

    def _start_runner(self, kind: str, player: OutcomePlayer | ProcessPlayer) -> None:
        self._auto = AutoRunner(self.cluster, self.jobs_ctl, player)
        self._auto_kind = kind
        self._auto.start()

    def stop_auto(self) -> None:
        """End the automatic mode, either kind; in process mode, kill what still runs."""
        if self._auto is not None:
            self._auto.stop()
            self._auto = None
            self._auto_kind = ""


__all__ = ["ANONYMOUS", "KubeApiServer", "Outcome", "Rule"]
