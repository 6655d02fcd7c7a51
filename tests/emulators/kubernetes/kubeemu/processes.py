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

import os
import tempfile
import threading
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from . import kubelet
from .autorun import Attempt, End, Exited
from .cluster import Cluster
from .localproc import LocalContainer
from .resources import JOBS, PODS
from .store import Event

JsonObj = dict[str, Any]

MAX_GRACE_S = 2.0
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


def container_env(base: Mapping[str, str], container: JsonObj) -> dict[str, str]:
    """``base`` plus the container's env entries: ``value`` (absent: ""); an entry with
    ``valueFrom`` (Secrets, ConfigMaps, fields: not emulated) is left out."""
    env = dict(base)
    for entry in container.get("env") or []:
        name = entry.get("name")
        if not name:
            continue
        if "valueFrom" in entry:
            env.pop(name, None)
        else:
            env[name] = str(entry.get("value") or "")
    return env


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
    """A started (or starting) container and what it belongs to."""

    def __init__(self, container: LocalContainer, job_uid: str, grace_s: float) -> None:
        self.container = container
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
        argv = [str(a) for a in (spec.get("command") or []) + (spec.get("args") or [])]
        if not argv:
            message = NO_COMMAND.format(name=spec["name"])
            waiting = partial(
                kubelet.waiting, reason="CreateContainerError", message=message, container=None
            )
            attempt.kubelet(waiting)
            return End.STOP
        container = LocalContainer(
            argv, container_env(self.env, spec), self._cwd(spec), attempt.log
        )
        key = (ns, name)
        with self._lock:
            if self._stopping:
                return End.STOP
            self._running[key] = _Running(container, attempt.job["metadata"]["uid"], grace_of(pod))
        try:
            return self._run(attempt, container, grace_of(pod))
        finally:
            with self._lock:
                self._running.pop(key, None)

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
        for running, grace_s in targets:
            running.container.terminate(grace_s, "deleted")

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            left = [r.container for r in self._running.values()]
        for container in left:
            container.kill("stop")
        for container in left:
            container.wait_done(STOP_WAIT_S)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
