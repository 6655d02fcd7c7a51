"""Automatic mode: a thread that plays the Job controller for every Job (existing and
new). Per attempt it creates a pod and hands it to a Player, which plays scheduler and
kubelet up to the container's exit; the loop then finishes the Job: Complete on exit 0,
a new pod per failure up to spec.backoffLimit and then BackoffLimitExceeded,
DeadlineExceeded once activeDeadlineSeconds have passed.

The loop is shared; how a pod runs is the Player's: fixed Outcomes (outcomes.py) or
real local processes (processes.py). The Player also sees every Job and Pod event in
order, so it can stop what runs when its pod or Job is deleted.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from . import kubelet
from .cluster import Cluster
from .jobctl import JobController, finished
from .resources import JOBS, PODS
from .store import Event

JsonObj = dict[str, Any]
JOIN_S = 5.0


class End(enum.Enum):
    DEADLINE = "deadline"  # activeDeadlineSeconds ran out; the player has stopped the pod
    GONE = "gone"  # the pod was deleted before it exited: a failed attempt, if the Job lives on
    STOP = "stop"  # nothing more to do: the pod stays as it is (stuck) or the emulator stops


@dataclass(frozen=True)
class Exited:
    """The container exited; the loop writes its terminated state."""

    code: int
    reason: str | None = None  # default: Completed for 0, else Error
    message: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One pod of a Job, as the loop hands it to the player."""

    job: JsonObj
    index: int  # from 0
    namespace: str
    pod: str
    container: str
    deadline: float | None  # time.monotonic() when activeDeadlineSeconds run out
    runner: AutoRunner

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def wait(self, seconds: float) -> bool:
        """Sleep; False when the runner stops meanwhile."""
        return self.runner.sleep(seconds)

    def stopped(self) -> bool:
        return self.runner.stopped()

    def kubelet(self, change: Callable[[JsonObj], None]) -> bool:
        """Change the pod's status as the kubelet; False when the pod is gone."""
        return self.runner.kubelet(self.namespace, self.pod, change)

    def log(self, text: str) -> None:
        self.runner.cluster.logs.append(self.namespace, self.pod, self.container, text)


class Player(Protocol):
    def play(self, attempt: Attempt) -> Exited | End:
        """Run the (Pending, unscheduled) pod until its container exits."""

    def observe(self, event: Event) -> None:
        """Every Job and Pod event, in order, from the runner's thread (must not block)."""

    def stop(self) -> None:
        """The runner stops: end whatever still runs."""


class AutoRunner:
    def __init__(self, cluster: Cluster, jobs: JobController, player: Player) -> None:
        self.cluster = cluster
        self.jobs = jobs
        self.player = player
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubeemu-autorun", daemon=True)
        self._started: set[str] = set()
        self._job_threads: list[threading.Thread] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.cluster.store.cond:
            self.cluster.store.cond.notify_all()  # wake the loop now
        self._thread.join(timeout=JOIN_S)
        self.player.stop()
        for thread in self._job_threads:
            thread.join(timeout=JOIN_S)

    def stopped(self) -> bool:
        return self._stop.is_set() or self.cluster.stopping.is_set()

    def sleep(self, seconds: float) -> bool:
        return not self._stop.wait(max(seconds, 0)) and not self.cluster.stopping.is_set()

    def kubelet(self, namespace: str, pod: str, change: Callable[[JsonObj], None]) -> bool:
        try:
            self.jobs.change_pod(namespace, pod, change)
            return True
        except LookupError:
            return False

    # watching Jobs ------------------------------------------------------------------
    def _events_after(self, rv: int) -> list[Event] | None:
        jobs = self.cluster.store.events_after(JOBS, rv)
        pods = self.cluster.store.events_after(PODS, rv)
        if jobs is None or pods is None:
            return None
        return sorted(jobs + pods, key=lambda e: e.rv)

    def _loop(self) -> None:
        store = self.cluster.store
        last = self._consider_all()
        while not self.stopped():
            with store.cond:
                events = self._events_after(last)
                if events == []:
                    store.cond.wait(0.2)
                    continue
            if events is None:  # fell behind the watch history: look at every Job again
                last = self._consider_all()
                continue
            for event in events:
                last = event.rv
                self.player.observe(event)
                if event.rt is JOBS and event.type != "DELETED":
                    self._consider(event.obj)

    def _consider_all(self) -> int:
        jobs, rv = self.cluster.store.list(JOBS)
        for job in jobs:
            self._consider(job)
        return rv

    def _consider(self, job: JsonObj) -> None:
        uid = job["metadata"]["uid"]
        if uid in self._started or finished(job) or job["metadata"].get("deletionTimestamp"):
            return
        if job["spec"].get("suspend"):
            if not any(
                c.get("type") == "Suspended" for c in job.get("status", {}).get("conditions") or []
            ):
                meta = job["metadata"]
                self._safe(lambda: self.jobs.suspend(meta["namespace"], meta["name"], True))
            return
        self._started.add(uid)
        thread = threading.Thread(
            target=self._run,
            args=(job,),
            name=f"kubeemu-job-{job['metadata']['name']}",
            daemon=True,
        )
        self._job_threads = [t for t in self._job_threads if t.is_alive()] + [thread]
        thread.start()

    # one Job -------------------------------------------------------------------------
    def _safe(self, action: Callable[[], object]) -> bool:
        try:
            action()
            return True
        except LookupError:  # the job or pod was deleted meanwhile
            return False

    def _alive(self, namespace: str, name: str, uid: str) -> bool:
        """The Job is still there, the same one, and still wants pods."""
        job = self.cluster.store.get(JOBS, namespace, name)
        return (
            job is not None
            and job["metadata"]["uid"] == uid
            and not job["metadata"].get("deletionTimestamp")
            and not job["spec"].get("suspend")
            and not finished(job)
        )

    def _if_alive(self, job: JsonObj, action: Callable[[], object]) -> bool:
        meta = job["metadata"]
        with self.cluster.store.cond:
            if self.stopped() or not self._alive(meta["namespace"], meta["name"], meta["uid"]):
                return False
            return self._safe(action)

    def _create_pod(self, job: JsonObj) -> str:
        """A new pod for the Job, as its controller makes one; "" when it wants none."""
        meta = job["metadata"]
        with self.cluster.store.cond:
            if self.stopped() or not self._alive(meta["namespace"], meta["name"], meta["uid"]):
                return ""
            return self.jobs.create_pod(meta["namespace"], meta["name"])

    def _run(self, job: JsonObj) -> None:
        meta, spec = job["metadata"], job["spec"]
        ns, name = meta["namespace"], meta["name"]
        backoff_limit = spec.get("backoffLimit", 6)
        limit_s = spec.get("activeDeadlineSeconds")
        deadline = None if limit_s is None else time.monotonic() + limit_s
        template = spec["template"]["spec"]
        restart_in_place = template.get("restartPolicy") == "OnFailure"
        container = template["containers"][0]["name"]
        pod = ""
        for index in range(backoff_limit + 1):
            if not pod or not restart_in_place:
                pod = self._create_pod(job)
                if not pod:
                    return
            elif not self._if_alive(job, lambda: None):
                return
            result = self.player.play(Attempt(job, index, ns, pod, container, deadline, self))
            if result is End.STOP or self.stopped():
                return
            if result is End.DEADLINE:
                self._if_alive(
                    job, lambda: self.jobs.fail(ns, name, "DeadlineExceeded", None, None)
                )
                return
            if isinstance(result, Exited):
                exited = partial(
                    kubelet.terminated,
                    exit_code=result.code,
                    reason=result.reason or ("Completed" if result.code == 0 else "Error"),
                    container=None,
                    message=result.message,
                )
                if self.kubelet(ns, pod, exited):
                    if result.code == 0:
                        self._if_alive(job, lambda: self.jobs.complete(ns, name))
                        return
                    continue
            # the pod was deleted under it: counted as failed, and replaced (if the Job lives)
            if not self._if_alive(job, lambda: self.jobs.count(ns, name, "failed")):
                return
            pod = ""
        self._if_alive(job, lambda: self.jobs.fail(ns, name, "BackoffLimitExceeded", None, None))
