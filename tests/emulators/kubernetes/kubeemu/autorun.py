"""Automatic mode: a thread that plays Job controller, scheduler and kubelet for every
new Job: it creates a pod, runs it (log lines, exit code) and finishes the Job,
retrying failed pods up to spec.backoffLimit and honouring activeDeadlineSeconds."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import kubelet
from .cluster import Cluster
from .jobctl import JobController, finished
from .resources import JOBS

JsonObj = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What one pod of a Job does: waits ``start_s`` in ContainerCreating, writes
    ``log``, runs ``run_s`` more and exits with ``exit_code``. ``waiting`` (e.g.
    "ErrImagePull") instead leaves the container waiting with that reason for good."""

    exit_code: int = 0
    log: str = "kubeemu: job ran\n"
    run_s: float = 0.2
    start_s: float = 0.05
    waiting: str | None = None
    waiting_message: str | None = None


Decide = Callable[[JsonObj, int], Outcome]  # (job, attempt from 0) -> what its pod does


class AutoRunner:
    def __init__(self, cluster: Cluster, jobs: JobController, decide: Decide) -> None:
        self.cluster = cluster
        self.jobs = jobs
        self.decide = decide
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubeemu-autorun", daemon=True)
        self._started: set[str] = set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _stopped(self) -> bool:
        return self._stop.is_set() or self.cluster.stopping.is_set()

    def _loop(self) -> None:
        store = self.cluster.store
        last = store.rv
        for job in store.list(JOBS)[0]:
            self._consider(job)
        while not self._stopped():
            with store.cond:
                events = store.events_after(JOBS, last)
                if events == []:
                    store.cond.wait(0.2)
                    continue
            if events is None:
                last = store.rv
                continue
            for event in events:
                last = event.rv
                if event.type != "DELETED":
                    self._consider(event.obj)

    def _consider(self, job: JsonObj) -> None:
        uid = job["metadata"]["uid"]
        if uid in self._started or finished(job):
            return
        if job["spec"].get("suspend"):
            if not any(
                c.get("type") == "Suspended" for c in job.get("status", {}).get("conditions") or []
            ):
                meta = job["metadata"]
                self._safe(lambda: self.jobs.suspend(meta["namespace"], meta["name"], True))
            return
        self._started.add(uid)
        threading.Thread(
            target=self._run,
            args=(job,),
            name=f"kubeemu-job-{job['metadata']['name']}",
            daemon=True,
        ).start()

    def _safe(self, action: Callable[[], object]) -> bool:
        try:
            action()
            return True
        except LookupError:  # the job or pod was deleted meanwhile
            return False

    def _kubelet(self, namespace: str, pod: str, change: Callable[[JsonObj], None]) -> bool:
        try:
            self.jobs.change_pod(namespace, pod, change)
            return True
        except LookupError:
            return False

    def _sleep(self, seconds: float) -> bool:
        return not self._stop.wait(seconds) and not self.cluster.stopping.is_set()

    def _run(self, job: JsonObj) -> None:
        meta = job["metadata"]
        ns, name = meta["namespace"], meta["name"]
        backoff_limit = job["spec"].get("backoffLimit", 6)
        deadline = job["spec"].get("activeDeadlineSeconds")
        restart_in_place = job["spec"]["template"]["spec"].get("restartPolicy") == "OnFailure"
        elapsed = 0.0
        pod = ""
        for attempt in range(backoff_limit + 1):
            outcome = self.decide(job, attempt)
            if not pod or not restart_in_place:
                try:
                    pod = self.jobs.create_pod(ns, name)
                except LookupError:
                    return
            if not self._sleep(outcome.start_s):
                return
            if outcome.waiting is not None:
                self._kubelet(
                    ns,
                    pod,
                    partial(
                        kubelet.waiting,
                        reason=outcome.waiting,
                        message=outcome.waiting_message,
                        container=None,
                    ),
                )
                return
            if not self._kubelet(ns, pod, partial(kubelet.running, container=None)):
                return
            container = job["spec"]["template"]["spec"]["containers"][0]["name"]
            if outcome.log:
                self.cluster.logs.append(ns, pod, container, outcome.log)
            run_s = outcome.run_s
            if deadline is not None and elapsed + outcome.start_s + run_s > deadline:
                self._sleep(max(deadline - elapsed - outcome.start_s, 0))
                self._safe(lambda: self.jobs.fail(ns, name, "DeadlineExceeded", None, None))
                return
            if not self._sleep(run_s):
                return
            elapsed += outcome.start_s + run_s
            exited = partial(
                kubelet.terminated,
                exit_code=outcome.exit_code,
                reason="Completed" if outcome.exit_code == 0 else "Error",
                container=None,
            )
            if not self._kubelet(ns, pod, exited):
                return
            if outcome.exit_code == 0:
                self._safe(lambda: self.jobs.complete(ns, name))
                return
        self._safe(lambda: self.jobs.fail(ns, name, "BackoffLimitExceeded", None, None))
