"""The Slurm backend: sbatch, squeue, sacct and scancel on the worker's host.

Pure functions build scripts and read output (script, status); this
module runs the commands, with timeouts and bounded retries. Status is batched:
one squeue per chunk of ids (chunks at bounded concurrency) for all active jobs,
then one sacct for the jobs that left the queue, then the exit records the job
wrappers wrote. A job found nowhere is UNKNOWN, never assumed to have succeeded;
the gateway declares it lost after the profile's grace period.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

from jobgate.client.ids import created_at
from jobgate.client.models import JobSpec, Observation
from jobgate.client.profile_schema import SlurmProfile
from jobgate.workers.backends import commands
from jobgate.workers.backends.base import JobSubmission, chunks
from jobgate.workers.backends.batch import BatchBackend
from jobgate.workers.backends.jobfiles import failed_if_unreadable, read_indices
from jobgate.workers.backends.programs import job_name
from jobgate.workers.backends.slurm import script
from jobgate.workers.backends.slurm.script import SlurmFiles
from jobgate.workers.backends.slurm.status import (
    SlurmRow,
    discover_argv,
    history_argv,
    observe,
    parse_sacct,
    parse_squeue,
    query_argv,
)

#: What Slurm commands print when the controller is busy or unreachable.
TRANSIENT = (
    "Socket timed out",
    "Unable to contact slurm controller",
    "Zero Bytes were transmitted or received",
    "Connection refused",
    "Resource temporarily unavailable",
    "Slurm temporarily unable to accept job",
)


class SlurmBackend(BatchBackend[SlurmProfile, SlurmFiles]):
    kind = "slurm"
    transient = TRANSIENT
    unknown_reason = "not in squeue or sacct, and no exit record"
    cancel_command = "scancel"

    def __init__(self, profile: SlurmProfile) -> None:
        self.settings = profile.slurm
        super().__init__(profile, self.settings, self.settings.work_dir, SlurmFiles)

    # -- submit ------------------------------------------------------------------

    def render_script(self, job: JobSubmission, files: SlurmFiles) -> str:
        options = script.directives(job, self.profile, files)
        return script.render_script(options, files, job.spec.array is not None)

    def submit_command(
        self, spec: JobSpec, files: SlurmFiles, script_text: str
    ) -> tuple[list[str], str | None]:
        return script.submit_argv(self.profile, spec, files.script), None

    def parse_submitted(self, stdout: str) -> str:
        return script.parse_submitted(stdout)

    def discover(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Jobs submitted before: by the id file sbatch's answer left, else by name in squeue.

        A job whose directory does not exist was never prepared, so never submitted:
        squeue is asked only about the others (an attempt that died around sbatch).
        """
        found, prepared = self.saved_or_prepared(job_ids)
        names = {job_name(self.profile, j): j for j in prepared}
        for chunk in chunks(sorted(names), self.settings.query_chunk):
            for row in self._rows(discover_argv(chunk), parse_squeue):
                if row.name in names:
                    found[names[row.name]] = row.array_job_id
        return found

    # -- status --------------------------------------------------------------------

    def query(self, jobs: Mapping[str, str]) -> dict[str, Observation]:
        ids = sorted(set(jobs.values()))
        with ThreadPoolExecutor(max_workers=self.settings.query_concurrency) as pool:
            batches = pool.map(
                lambda chunk: self._rows(query_argv(chunk), parse_squeue),
                chunks(ids, self.settings.query_chunk),
            )
            queued: dict[str, list[SlurmRow]] = {}
            for rows in batches:
                for row in rows:
                    queued.setdefault(row.array_job_id, []).append(row)
        gone = {j: b for j, b in jobs.items() if b not in queued}
        history = self._history(gone) if gone else {}
        result = {}
        for job_id, backend_id in jobs.items():
            if backend_id in queued:
                observe = partial(self._observe_queued, job_id, queued[backend_id])
            else:
                observe = partial(self._observe_gone, job_id, history.get(backend_id, []))
            result[job_id] = failed_if_unreadable(observe)
        return result

    def _rows(self, argv: list[str], parse: Callable[[str], list[SlurmRow]]) -> list[SlurmRow]:
        result = commands.run(argv, self.policy)
        if result.returncode != 0:
            if "Invalid job id specified" in result.stderr:
                return []  # squeue -j with one id that Slurm has purged already
            raise result.error("failed")
        return parse(result.stdout)

    def _history(self, jobs: Mapping[str, str]) -> dict[str, list[SlurmRow]]:
        """sacct rows of jobs that left squeue, by backend id (none without accounting)."""
        if self.settings.accounting == "none":
            return {}
        since = min(created_at(j) for j in jobs) - timedelta(days=1)
        found: dict[str, list[SlurmRow]] = {}
        accounting = self.settings.accounting
        for chunk in chunks(sorted(set(jobs.values())), self.settings.query_chunk):
            for row in self._rows(history_argv(chunk, accounting, since), parse_sacct):
                found.setdefault(row.array_job_id, []).append(row)
        return found

    def _observe_queued(self, job_id: str, rows: list[SlurmRow]) -> Observation:
        queued = observe(rows, requeue_preempted=self.settings.requeue_preempted)
        return self.with_unlisted_elements(job_id, queued, {r.index for r in rows})

    def _observe_gone(self, job_id: str, history: list[SlurmRow]) -> Observation:
        """A job squeue no longer lists: from sacct, else from its exit records, else unknown."""
        if history and read_indices(self.files(job_id).directory, job_id) is None:
            return observe(history[:1], requeue_preempted=self.settings.requeue_preempted)
        return self.observe_from_files(job_id)
