"""LSF for the tests: the emulator in tests/emulators/lsf (bsub, bjobs, bkill, bhist
first on PATH, running jobs as local processes and printing what IBM documents LSF
prints), its profile, and its contract harness."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from jobgate.client import Job, JobStatus
from tests.support.batch import BatchHarness
from tests.support.harness import OnScheduler
from tests.support.profiles import FAST_POLLING, write_profile
from tests.support.waiting import wait_for

EMULATOR = Path(__file__).resolve().parents[1] / "emulators" / "lsf"
CLUSTER = "lsfc"


class LsfEmulator:
    """One emulated LSF cluster: its state directory and the environment that uses it."""

    def __init__(self, directory: Path, **settings: str) -> None:
        self.directory = directory
        self.settings = settings

    def env(self, **more: str) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{EMULATOR / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "LSF_EMULATOR_DIR": str(self.directory),
            **self.settings,
            **more,
        }

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), env=self.env(), capture_output=True, text=True, timeout=30, check=False
        )

    def record(self, backend_id: str | None) -> dict[str, str]:
        """The job's bjobs record, as LSF would print it."""
        assert backend_id is not None
        out = self.run("bjobs", "-a", "-json", "-o", "jobid job_name stat exit_reason", backend_id)
        records = json.loads(out.stdout)["RECORDS"]
        assert records, out.stderr
        return dict(records[0])

    def faults(self, **switches: str) -> None:
        """Fault switches a running worker's commands see from now on."""
        path = self.directory / "faults.json"
        path.with_suffix(".tmp").write_text(json.dumps(switches))
        path.with_suffix(".tmp").rename(path)

    def fault_used_up(self, command: str) -> bool:
        """Whether the counted fault switches will hit no more calls of `command`."""
        left = self.run(str(EMULATOR / "bin" / "lsf-emulator-faults"), command)
        return left.stdout.strip() == "0"

    def stop(self) -> None:
        self.run(str(EMULATOR / "bin" / "lsf-emulator-stop"))


def lsf_profile(tmp_path: Path, **overrides: Any) -> Path:
    """The `lsfc` profile: MB units, polling every 0.5 s; `lsf={...}` updates its block."""
    data: dict[str, Any] = {
        "name": CLUSTER,
        "backend": "lsf",
        "lsf": {"work_dir": str(tmp_path / "lsf-jobs"), "command_timeout_s": 10, "lsf_units": "MB"},
        **FAST_POLLING,
        "lost_grace_s": 60,
    }
    return write_profile(tmp_path, data, **overrides)


class LsfJob(OnScheduler):
    """An LSF job, by its LSF id."""

    def __init__(self, lsf: LsfEmulator, backend_id: str | None) -> None:
        self.lsf = lsf
        self.backend_id = backend_id

    def running(self) -> bool:
        return self.lsf.record(self.backend_id)["STAT"] == "RUN"

    def assert_stopped(self) -> None:
        wait_for(lambda: self.lsf.record(self.backend_id)["STAT"] == "EXIT", what="LSF to kill it")
        assert self.lsf.record(self.backend_id)["EXIT_REASON"].startswith("TERM_OWNER")


class LsfHarness(BatchHarness):
    """The LSF emulator; bjobs's calls counted by a shim on PATH."""

    name = "lsf"
    cluster = CLUSTER
    lost_reason = "lost: not in bjobs or bhist, and no exit record"
    status_before_lost = JobStatus.UNKNOWN
    crowd_logs_every = 25
    array_first_index = 1
    supports_dependencies = True
    # Reconcile would also ask bjobs about jobs still NEW in the submit backlog: not measured.
    crowd_settings: ClassVar[dict[str, Any]] = {"reconcile_interval_s": 60}
    jobs_dir = "lsf-jobs"

    def __init__(self, lsf: LsfEmulator, **common: Any) -> None:
        super().__init__(EMULATOR / "bin" / "bjobs", **common)
        self.lsf = lsf

    def profile(self, **settings: Any) -> Path:
        return lsf_profile(self.tmp_path, **settings)

    def worker_env(self) -> dict[str, str]:
        path = os.pathsep.join([str(self.shim_dir), str(EMULATOR / "bin"), os.environ["PATH"]])
        return self.lsf.env(PATH=path)

    def on_scheduler(self, job: Job) -> OnScheduler:
        return LsfJob(self.lsf, job.record().backend_id)
