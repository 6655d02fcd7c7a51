"""Slurm for the tests: the private one-node cluster that scripts/slurm-local runs, its
profile, and its contract harness."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from jobgate.client import Job, JobStatus
from tests.support.batch import BatchHarness
from tests.support.harness import OnScheduler
from tests.support.profiles import FAST_POLLING, write_profile
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
#: Slurm on two shared CPUs is slower to start and end jobs than the emulators.
TIMEOUT_S = 120
CLUSTER = "hpc"


class LocalSlurm:
    """The private one-node Slurm that scripts/slurm-local runs, for the Slurm tests."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.conf = directory / "slurm.conf"

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "scripts" / "slurm-local"), "--dir", str(self.directory), *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str) -> str:
        """A Slurm client command against this cluster (squeue, scontrol...)."""
        return subprocess.run(
            list(argv), env=self.env(), capture_output=True, text=True, timeout=60, check=True
        ).stdout

    def state(self, backend_id: str | None) -> str:
        """The job's state as Slurm itself reports it."""
        assert backend_id is not None
        return self.run("squeue", "-h", "-t", "all", "-j", backend_id, "-o", "%T").strip()


def slurm_profile(tmp_path: Path, **settings: Any) -> Path:
    """The `hpc` profile: partition debug, jobcomp accounting, polling every 0.5 s."""
    data: dict[str, Any] = {
        "name": CLUSTER,
        "backend": "slurm",
        "slurm": {
            "partition": "debug",
            "work_dir": str(tmp_path / "slurm-jobs"),
            "accounting": "jobcomp",
            "command_timeout_s": 20,
        },
        **FAST_POLLING,
        "lost_grace_s": 60,
    }
    return write_profile(tmp_path, data, **settings)


class SlurmJob(OnScheduler):
    """A Slurm job, by its Slurm id."""

    def __init__(self, slurm: LocalSlurm, backend_id: str | None) -> None:
        self.slurm = slurm
        self.backend_id = backend_id

    def running(self) -> bool:
        return self.slurm.state(self.backend_id) == "RUNNING"

    def assert_stopped(self) -> None:
        wait_for(
            lambda: self.slurm.state(self.backend_id) == "CANCELLED",
            timeout_s=60,
            what="Slurm to cancel the job",
        )


class SlurmHarness(BatchHarness):
    """The real Slurm of scripts/slurm-local; squeue's calls counted by a shim on PATH."""

    name = "slurm"
    cluster = CLUSTER
    timeout_s = TIMEOUT_S
    exit_3_reason = "NonZeroExitCode (exit code 3)"
    lost_reason = "lost: not in squeue or sacct, and no exit record"
    status_before_lost = JobStatus.UNKNOWN
    crowd_logs_every = 25
    array_first_index = 0
    supports_dependencies = True
    jobs_dir = "slurm-jobs"

    def __init__(self, slurm: LocalSlurm, **common: Any) -> None:
        super().__init__(Path("/usr/bin/squeue"), **common)
        self.slurm = slurm

    def profile(self, **settings: Any) -> Path:
        return slurm_profile(self.tmp_path, **settings)

    def worker_env(self) -> dict[str, str]:
        return {**self.slurm.env(), "PATH": f"{self.shim_dir}{os.pathsep}{os.environ['PATH']}"}

    def on_scheduler(self, job: Job) -> OnScheduler:
        return SlurmJob(self.slurm, job.record().backend_id)


def slurm_ids_named(slurm: LocalSlurm, name: str) -> list[str]:
    """The ids of the Slurm jobs called `name`, finished ones included, as Slurm lists them."""
    return slurm.run("squeue", "-h", "-t", "all", "-n", name, "-o", "%i").split()
