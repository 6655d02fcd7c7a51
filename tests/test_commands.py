"""The scheduler command runner, with real processes: timeouts kill, transient failures retry."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from jobgate.client.errors import BackendError, SchedulerUnavailableError
from jobgate.workers.backends.commands import RetryPolicy, run, run_once
from tests.support.waiting import wait_for

FAST = RetryPolicy(timeout_s=5, attempts=3, backoff_s=0.01, transient=("Socket timed out",))


def test_a_command_that_hangs_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait"
    with pytest.raises(
        SchedulerUnavailableError, match=r"sh did not answer within 0.5 s \(killed\)"
    ):
        run_once(["/bin/sh", "-c", script], timeout_s=0.5)

    def gone() -> bool:
        return all(not psutil.pid_exists(int(p)) or psutil.Process(int(p)).status() == "zombie"
                   for p in pids.read_text().split())  # fmt: skip

    wait_for(gone, timeout_s=10, what="the command and its child to be gone")


def test_transient_failures_are_retried_until_success(tmp_path: Path) -> None:
    count = tmp_path / "count"
    count.write_text("0")
    flaky = tmp_path / "flaky"
    flaky.write_text(
        "#!/bin/sh\n"
        f"n=$(($(cat {count}) + 1)); echo $n > {count}\n"
        'if [ "$n" -lt 3 ]; then\n'
        '  echo "squeue: error: Socket timed out on send/recv" >&2; exit 1\n'
        "fi\n"
        "echo fine\n"
    )
    flaky.chmod(0o755)
    result = run([str(flaky)], FAST)
    assert (result.returncode, result.stdout) == (0, "fine\n")
    assert count.read_text().strip() == "3"


def test_running_out_of_attempts_is_scheduler_unavailable(tmp_path: Path) -> None:
    always = tmp_path / "always"
    always.write_text("#!/bin/sh\necho 'Socket timed out on send/recv' >&2\nexit 1\n")
    always.chmod(0o755)
    with pytest.raises(SchedulerUnavailableError, match="gave up after 3 attempts") as info:
        run([str(always)], FAST)
    assert info.value.transient
    assert "always reported a transient failure (exit 1): Socket timed out" in str(info.value)


def test_other_failures_are_returned_for_the_caller_to_judge(tmp_path: Path) -> None:
    result = run(["/bin/sh", "-c", "echo 'bad option --x' >&2; exit 2"], FAST)
    assert result.returncode == 2
    error = result.error("refused the job")
    assert not error.transient
    assert str(error) == "sh refused the job (exit 2): bad option --x"


def test_a_missing_command_is_a_clear_transient_error() -> None:
    with pytest.raises(BackendError, match="nosuchcmd-xyz is not installed or not on PATH") as info:
        run(["nosuchcmd-xyz"], FAST)
    assert info.value.transient  # gone mid-run (an upgrade, a lost mount): it comes back
    assert "gave up after 3 attempts" in str(info.value)


def test_a_missing_working_directory_is_not_taken_for_a_missing_command(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=f"cannot run /bin/true: no directory {tmp_path}/x"):
        run(["/bin/true"], FAST, cwd=str(tmp_path / "x"))


def test_input_and_environment_reach_the_command() -> None:
    result = run(["/bin/sh", "-c", 'cat; echo "$GREETING"'], FAST, input_text="in\n",
                 env={**os.environ, "GREETING": "hi"})  # fmt: skip
    assert result.stdout == "in\nhi\n"
