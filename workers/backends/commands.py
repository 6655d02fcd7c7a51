"""Running scheduler commands: argument lists only, a timeout that kills, bounded retries.

Every command runs in its own session, so a timeout kills the command and
anything it started. Output that says the scheduler is busy or unreachable
("Socket timed out", "Unable to contact slurm controller", "LSF is processing
your request") is retried with exponential backoff, a bounded number of times;
running out of attempts raises SchedulerUnavailableError (transient), so a poll
fails and the jobs stay as they were; so does a command missing from PATH. Any other
failure is a BackendError that names the command and quotes what it printed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobgate.client.errors import BackendError, SchedulerUnavailableError

log = logging.getLogger(__name__)

#: How much of a command's output an error message quotes.
QUOTE_CHARS = 500


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def name(self) -> str:
        return os.path.basename(self.argv[0])

    def error(self, what: str, *, transient: bool = False) -> BackendError:
        said = (self.stderr.strip() or self.stdout.strip())[-QUOTE_CHARS:]
        message = f"{self.name} {what} (exit {self.returncode}): {said or 'no output'}"
        return SchedulerUnavailableError(message) if transient else BackendError(message)


@dataclass(frozen=True)
class RetryPolicy:
    """How a backend runs its scheduler's commands."""

    timeout_s: float = 30.0
    attempts: int = 3
    backoff_s: float = 1.0
    transient: tuple[str, ...] = ()

    def is_transient(self, result: CommandResult) -> bool:
        text = f"{result.stderr}\n{result.stdout}"
        return any(marker in text for marker in self.transient)


def run_once(
    argv: Sequence[str],
    *,
    timeout_s: float,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> CommandResult:
    """Run a command once; on timeout kill its whole session and raise (transient).

    The program is looked up on the worker's PATH, never on `env`'s: a job's own PATH
    (given to sbatch so that the job inherits it) must not decide which sbatch runs.
    """
    program = shutil.which(argv[0]) or argv[0]
    try:
        proc = subprocess.Popen(
            [program, *argv[1:]],
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as e:
        if cwd is not None and e.filename == cwd:
            raise BackendError(f"cannot run {argv[0]}: no directory {cwd}") from e
        # Transient: a command gone mid-run (an upgrade, a file system mount lost) comes back.
        raise SchedulerUnavailableError(f"{argv[0]} is not installed or not on PATH") from e
    except OSError as e:
        raise BackendError(f"cannot run {argv[0]}: {e}") from e
    try:
        stdout, stderr = proc.communicate(input_text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise SchedulerUnavailableError(
            f"{os.path.basename(argv[0])} did not answer within {timeout_s:g} s (killed)"
        ) from None
    return CommandResult(tuple(argv), proc.returncode, stdout, stderr)


def run(
    argv: Sequence[str],
    policy: RetryPolicy,
    *,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> CommandResult:
    """Run a command, retrying timeouts and transient failures; returns the last result,
    whatever its exit status (the caller judges it), unless every attempt was transient."""
    failure: BackendError | None = None
    for attempt in range(policy.attempts):
        if attempt:
            pause_s = policy.backoff_s * 2 ** (attempt - 1)
            log.warning("%s; retrying in %g s (attempt %d of %d)", failure, pause_s,
                        attempt + 1, policy.attempts)  # fmt: skip
            time.sleep(pause_s)
        try:
            result = run_once(
                argv, timeout_s=policy.timeout_s, input_text=input_text, env=env, cwd=cwd
            )
        except SchedulerUnavailableError as e:
            failure = e
            continue
        if result.returncode != 0 and policy.is_transient(result):
            failure = result.error("reported a transient failure", transient=True)
            continue
        return result
    assert failure is not None
    raise SchedulerUnavailableError(f"{failure} (gave up after {policy.attempts} attempts)")
