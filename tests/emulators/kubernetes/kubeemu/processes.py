"""Process mode's Player: the kubelet runs each pod's container command as a local
process (localproc.py), so a Job's pod shows real output, exit codes and
cancellation. The image is ignored; ``command`` + ``args`` run in exec form with the
given environment plus the container's ``env`` values, in ``workingDir`` when that
exists here, else in the mode's work directory.

A pod's process is stopped (SIGTERM, SIGKILL after min(grace period, 2) s) when the
pod is deleted or marked for deletion, and when its Job is, with any propagation
policy; at the end of the mode everything left is killed and reaped.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from . import kubelet
from .autorun import Attempt, End, Exited
from .cluster import Cluster
from .localproc import LocalContainer
from .resources import JOBS, PODS, SECRETS
from .store import Event

JsonObj = dict[str, Any]

MAX_GRACE_S = 2.0
MAX_SIDECAR_GRACE_S = 60.0
STOP_WAIT_S = 5.0
DEFAULT_ENV = ("PATH", "HOME", "LANG")
NO_COMMAND = (
    'failed to generate container "{name}" spec: failed to generate spec: no command '
    "specified (kubeemu runs the container's command and args; it has no image entrypoint)"
)
START_ERROR = (
    "failed to create containerd task: failed to create shim task: OCI runtime create "
    "failed: runc create failed: unable to start container process: exec: "
    '"{program}": {why}: unknown'
)


def default_env() -> dict[str, str]:
    env = {name: os.environ[name] for name in DEFAULT_ENV if name in os.environ}
    env.setdefault("PATH", os.defpath)
    return env


SecretLookup = Callable[[str, str], "str | None"]


def container_env(
    base: Mapping[str, str], container: JsonObj, secret: SecretLookup | None = None
) -> dict[str, str]:
    """``base`` plus the container's env entries: ``value`` (absent: ""); a
    ``valueFrom.secretKeyRef`` of a Secret in the store and a key it has gives that
    key's value (``secret(name, key)``); any other ``valueFrom`` (a missing Secret,
    ConfigMaps, fields: not emulated) is left out."""
    env = dict(base)
    for entry in container.get("env") or []:
        name = entry.get("name")
        if not name:
            continue
        if "valueFrom" in entry:
            ref = entry["valueFrom"].get("secretKeyRef") or {}
            value = secret(ref["name"], ref["key"]) if secret and "key" in ref else None
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        else:
            env[name] = str(entry.get("value") or "")
    return env


def _argv(container: JsonObj) -> list[str]:
    return [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]


def grace_of(pod: JsonObj) -> float:
    """deletionGracePeriodSeconds if the delete set one, else the pod's
    terminationGracePeriodSeconds; at most MAX_GRACE_S."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return min(float(grace), MAX_GRACE_S)


def _start_error(program: str, error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        why = "executable file not found in $PATH" if "/" not in program else "no such file"
    elif isinstance(error, PermissionError):
        why = "permission denied"
    else:
        why = error.strerror or str(error)
    return START_ERROR.format(program=program, why=why)


class _Running:
    """A pod's started (or starting) containers and what they belong to."""

    def __init__(self, job_uid: str, grace_s: float) -> None:
        self.containers: list[LocalContainer] = []
        self.job_uid = job_uid
        self.grace_s = grace_s


class ProcessPlayer:
    def __init__(
        self, cluster: Cluster, env: Mapping[str, str] | None, work_dir: Path | None
    ) -> None:
        self.cluster = cluster
        self.env = dict(env) if env is not None else default_env()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kubeemu-pods-")
            work_dir = Path(self._tmp.name)
        self.work_dir = Path(work_dir)
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], _Running] = {}
        self._stopping = False

    # the player ------------------------------------------------------------------------
    def play(self, attempt: Attempt) -> Exited | End:
        ns, name = attempt.namespace, attempt.pod
        if not attempt.kubelet(kubelet.schedule):  # bound; containers in ContainerCreating
            return End.GONE
        pod = self.cluster.store.get(PODS, ns, name)
        if pod is None:
            return End.GONE
        spec = pod["spec"]["containers"][0]
        if not _argv(spec):
            message = NO_COMMAND.format(name=spec["name"])
            waiting = partial(
                kubelet.waiting, reason="CreateContainerError", message=message, container=None
            )
            attempt.kubelet(waiting)
            return End.STOP
        key = (ns, name)
        running = _Running(attempt.job["metadata"]["uid"], grace_of(pod))
        with self._lock:
            if self._stopping:
                return End.STOP
            self._running[key] = running
        sidecars: list[LocalContainer] = []
        try:
            early = self._init_containers(attempt, pod, running, sidecars)
            if early is not None:
                return early
            container = self._container(attempt, spec, running, attempt.log)
            return self._run(attempt, container, grace_of(pod))
        finally:
            self._stop_sidecars(pod, sidecars)
            with self._lock:
                self._running.pop(key, None)

    def _container(
        self, attempt: Attempt, spec: JsonObj, running: _Running, log: Callable[[str], None]
    ) -> LocalContainer:
        env = container_env(self.env, spec, partial(self._secret, attempt.namespace))
        container = LocalContainer(_argv(spec), env, self._cwd(spec), log)
        with self._lock:
            running.containers.append(container)
        return container

    def _secret(self, namespace: str, name: str, key: str) -> str | None:
        secret = self.cluster.store.get(SECRETS, namespace, name)
        value = ((secret or {}).get("data") or {}).get(key)
        return None if value is None else base64.b64decode(value).decode()

    def _init_containers(
        self, attempt: Attempt, pod: JsonObj, running: _Running, sidecars: list[LocalContainer]
    ) -> Exited | End | None:
        """Run the init containers in order: each to its exit, which must be 0, or, for a
        native sidecar (restartPolicy Always), started and left running. None: go on."""
        for spec in pod["spec"].get("initContainers") or []:
            log = partial(self.cluster.logs.append, attempt.namespace, attempt.pod, spec["name"])
            container = self._container(attempt, spec, running, log)
            if not self._wanted(attempt):
                return End.GONE
            try:
                if not container.start():
                    return End.STOP if attempt.stopped() else End.GONE
            except OSError as error:
                return Exited(128, "StartError", _start_error(container.argv[0], error))
            if spec.get("restartPolicy") == "Always":
                sidecars.append(container)
                if not self._probe_startup(attempt, spec, container):
                    return End.STOP if attempt.stopped() else End.GONE
                if container.stopped_for == "startup probe":
                    return Exited(1, "Error", f"startup probe of {spec['name']} failed")
                continue
            code = container.wait()
            if container.stopped_for == "stop" or attempt.stopped():
                return End.STOP
            if container.stopped_for is not None:
                return End.GONE
            if code != 0:
                return Exited(code, "Error", f"init container {spec['name']} exited with {code}")
        return None

    def _probe_startup(self, attempt: Attempt, spec: JsonObj, container: LocalContainer) -> bool:
        """A sidecar's ``startupProbe.exec`` (if any): run every periodSeconds in the
        container's environment until it exits 0; after failureThreshold failures the
        container is killed. False when the pod or the mode stopped meanwhile."""
        probe = spec.get("startupProbe") or {}
        command = (probe.get("exec") or {}).get("command")
        if not command:
            return True
        if not attempt.wait(float(probe.get("initialDelaySeconds", 0))):
            return False
        for _ in range(int(probe.get("failureThreshold", 3))):
            try:
                done = subprocess.run(
                    [str(c) for c in command], env=container.env, cwd=container.cwd,
                    capture_output=True, timeout=float(probe.get("timeoutSeconds", 1)),
                    check=False,
                )  # fmt: skip
                if done.returncode == 0:
                    return True
            except (OSError, subprocess.TimeoutExpired):
                pass
            if not attempt.wait(float(probe.get("periodSeconds", 10))):
                return False
        container.kill("startup probe")
        return True

    def _stop_sidecars(self, pod: JsonObj, sidecars: list[LocalContainer]) -> None:
        """Once the pod's container has exited: SIGTERM to the sidecars, in reverse order,
        SIGKILL after the pod's terminationGracePeriodSeconds (here at most
        MAX_SIDECAR_GRACE_S); waits for them to exit."""
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        for container in reversed(sidecars):
            container.terminate(min(float(grace), MAX_SIDECAR_GRACE_S), "sidecar")
            container.wait()

    def _cwd(self, container: JsonObj) -> Path:
        wanted = container.get("workingDir")
        return Path(wanted) if wanted and Path(wanted).is_dir() else self.work_dir

    def _run(self, attempt: Attempt, container: LocalContainer, grace_s: float) -> Exited | End:
        # registered first, then checked: a deletion from now on reaches the container
        if not self._wanted(attempt):
            return End.GONE
        try:
            if not container.start():
                return End.STOP if attempt.stopped() else End.GONE
        except OSError as error:
            return Exited(128, "StartError", _start_error(container.argv[0], error))
        deadline = None
        remaining = attempt.remaining()
        if remaining is not None:
            deadline = threading.Timer(
                max(remaining, 0), container.terminate, args=(grace_s, "deadline")
            )
            deadline.daemon = True
            deadline.start()
        if not attempt.kubelet(partial(kubelet.running, container=None)):
            container.kill("deleted")
        code = container.wait()
        if deadline is not None:
            deadline.cancel()
        if container.stopped_for == "stop" or attempt.stopped():
            return End.STOP
        if container.stopped_for == "deadline":
            return End.DEADLINE
        return Exited(code)

    def _wanted(self, attempt: Attempt) -> bool:
        """The pod and its Job exist and are not being deleted."""
        store = self.cluster.store
        pod = store.get(PODS, attempt.namespace, attempt.pod)
        meta = attempt.job["metadata"]
        job = store.get(JOBS, meta["namespace"], meta["name"])
        return (
            pod is not None
            and not pod["metadata"].get("deletionTimestamp")
            and job is not None
            and job["metadata"]["uid"] == meta["uid"]
            and not job["metadata"].get("deletionTimestamp")
        )

    def observe(self, event: Event) -> None:
        meta = event.obj["metadata"]
        if event.type != "DELETED" and not meta.get("deletionTimestamp"):
            return
        with self._lock:
            if event.rt is PODS:
                found = self._running.get((meta["namespace"], meta["name"]))
                targets = [(found, grace_of(event.obj))] if found is not None else []
            elif event.rt is JOBS:
                targets = [
                    (r, r.grace_s) for r in self._running.values() if r.job_uid == meta["uid"]
                ]
            else:
                targets = []
            containers = [(c, g) for r, g in targets for c in r.containers]
        for container, grace_s in containers:
            container.terminate(grace_s, "deleted")

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            left = [c for r in self._running.values() for c in r.containers]
        for container in left:
            container.kill("stop")
        for container in left:
            container.wait_done(STOP_WAIT_S)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
