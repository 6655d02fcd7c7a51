"""Fixed outcomes: the automatic mode's default Player. A pod does what an Outcome
says (wait, log, run, exit with a code) on timers, without running anything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import kubelet
from .autorun import Attempt, End, Exited
from .store import Event

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


class OutcomePlayer:
    def __init__(self, decide: Decide) -> None:
        self.decide = decide

    def play(self, attempt: Attempt) -> Exited | End:
        outcome = self.decide(attempt.job, attempt.index)
        if not attempt.wait(outcome.start_s):
            return End.STOP
        if outcome.waiting is not None:
            attempt.kubelet(
                partial(
                    kubelet.waiting,
                    reason=outcome.waiting,
                    message=outcome.waiting_message,
                    container=None,
                )
            )
            return End.STOP
        if not attempt.kubelet(partial(kubelet.running, container=None)):
            return End.GONE
        if outcome.log:
            attempt.log(outcome.log)
        remaining = attempt.remaining()
        if remaining is not None and outcome.run_s > remaining:
            return End.DEADLINE if attempt.wait(remaining) else End.STOP
        if not attempt.wait(outcome.run_s):
            return End.STOP
        return Exited(outcome.exit_code)

    def observe(self, event: Event) -> None:
        """Timers only: a deleted pod is noticed when its status can no longer be written."""

    def stop(self) -> None:
        """Nothing runs: the attempts' waits end with the runner."""
