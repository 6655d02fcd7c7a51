"""The Slurm backend: sbatch, squeue, sacct and scancel on the worker's host.

Pure functions build scripts and read output (script, status); this
module runs the commands, with timeouts and bounded retries. Status is batched:
one squeue per chunk of ids (chunks at bounded concurrency) for all active jobs, or,
above the profile's `query_all_above` active jobs, one squeue for all of the worker
user's jobs, whose rows jobgate picks by id and name prefix; then one sacct for the
jobs that left the queue, then the exit records the job wrappers wrote. A job found
nowhere is UNKNOWN, never assumed to have succeeded; the gateway declares it lost
after the profile's grace period. An answer with lines that are not rows is used for
the rows it has; a job it leaves unexplained is not judged in that round (its row may
be the garbled line).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial

from jobgate.client.ids import created_at
from jobgate.client.models import JobSpec, JobStatus, Observation
from jobgate.client.profile_schema import SlurmProfile
from jobgate.workers.backends import commands
from jobgate.workers.backends.base import JobSubmission, chunks
from jobgate.workers.backends.batch import BatchBackend
from jobgate.workers.backends.jobfiles import failed_if_unreadable, read_indices
from jobgate.workers.backends.programs import job_environment, job_name
from jobgate.workers.backends.slurm import script
from jobgate.workers.backends.slurm.rest import RestSubmitter
from jobgate.workers.backends.slurm.script import SlurmFiles
from jobgate.workers.backends.slurm.status import (
    SlurmAnswer,
    SlurmRow,
    discover_argv,
    history_argv,
    observe,
    parse_sacct,
    parse_squeue,
    query_argv,
    queue_argv,
)

log = logging.getLogger(__name__)

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
        self.rest: RestSubmitter | None = None
        if self.settings.submit_via == "slurmrestd" and self.settings.rest_socket:
            self.rest = RestSubmitter(profile.name, self.settings.rest_socket,
                                      self.settings.command_timeout_s, TRANSIENT)  # fmt: skip

    # -- submit ------------------------------------------------------------------

    def render_script(self, job: JobSubmission, files: SlurmFiles) -> str:
        options = script.directives(job, self.profile, files)
        return script.render_script(options, files, job.spec.array is not None)

    def submit_prepared(self, job: JobSubmission, files: SlurmFiles, script_text: str) -> str:
        """Through slurmrestd when the profile says so and it can take the job, else sbatch."""
        if self.rest is not None:
            argv = script.submit_argv(self.profile, job.spec, files.script)
            options = script.directives(job, self.profile, files)
            environment = job_environment(job, self.profile)
            backend_id = self.rest.submit(script_text, argv, options, environment, files.directory)
            if backend_id is not None:
                return backend_id
        return super().submit_prepared(job, files, script_text)

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
            for row in self._rows(discover_argv(chunk), parse_squeue).rows:
                if row.name in names:
                    found[names[row.name]] = row.array_job_id
        return found

    # -- status --------------------------------------------------------------------

    def query(self, jobs: Mapping[str, str]) -> dict[str, Observation]:
        answers = self._queue(sorted(set(jobs.values())))
        queued: dict[str, list[SlurmRow]] = {}
        for row in (row for answer in answers for row in answer.rows):
            queued.setdefault(row.array_job_id, []).append(row)
        gone = {j: b for j, b in jobs.items() if b not in queued}
        history = self._history(gone) if gone else []
        found: dict[str, list[SlurmRow]] = {}
        for row in (row for answer in history for row in answer.rows):
            found.setdefault(row.array_job_id, []).append(row)
        garbled = any(answer.unreadable for answer in [*answers, *history])
        result = {}
        for job_id, backend_id in jobs.items():
            if backend_id in queued:
                observe = partial(self._observe_queued, job_id, queued[backend_id])
            else:
                observe = partial(self._observe_gone, job_id, found.get(backend_id, []))
            seen = failed_if_unreadable(observe)
            if garbled and _unexplained(seen):
                continue  # its row may be the line that could not be read: next round
            result[job_id] = seen
        return result

    def _queue(self, ids: list[str]) -> list[SlurmAnswer]:
        """squeue's answers about these jobs: above `query_all_above` of them, one call
        about all of the user's jobs, its rows picked by id and name prefix; else one call
        per chunk of ids."""
        if len(ids) > self.settings.query_all_above:
            prefix = f"{self.profile.job_name_prefix}-"
            ours = partial(parse_squeue, among=frozenset(ids), name_prefix=prefix)
            return [self._rows(queue_argv(), ours)]
        with ThreadPoolExecutor(max_workers=self.settings.query_concurrency) as pool:
            return list(pool.map(
                lambda chunk: self._rows(query_argv(chunk), parse_squeue),
                chunks(ids, self.settings.query_chunk),
            ))  # fmt: skip

    def _rows(self, argv: list[str], parse: Callable[[str], SlurmAnswer]) -> SlurmAnswer:
        result = commands.run(argv, self.policy)
        if result.returncode != 0:
            if "Invalid job id specified" in result.stderr:
                return SlurmAnswer([], [])  # squeue -j with one id Slurm has purged already
            raise result.error("failed")
        answer = parse(result.stdout)
        if answer.unreadable:
            log.warning(
                "cluster %s: %s printed a line jobgate cannot read (%d in all), skipped; "
                "jobs its answer leaves unexplained keep their state this round: %r",
                self.profile.name, argv[0], len(answer.unreadable),
                answer.unreadable[0][:commands.QUOTE_CHARS],
            )  # fmt: skip
        return answer

    def _history(self, jobs: Mapping[str, str]) -> list[SlurmAnswer]:
        """sacct's answers about jobs that left squeue (none without accounting)."""
        if self.settings.accounting == "none":
            return []
        since = min(created_at(j) for j in jobs) - timedelta(days=1)
        accounting = self.settings.accounting
        return [
            self._rows(history_argv(chunk, accounting, since), parse_sacct)
            for chunk in chunks(sorted(set(jobs.values())), self.settings.query_chunk)
        ]

    def _observe_queued(self, job_id: str, rows: list[SlurmRow]) -> Observation:
        queued = observe(rows, requeue_preempted=self.settings.requeue_preempted)
        if len(rows) == 1 and rows[0].index is None:
            return queued  # not an array: no elements to look up in its files
        return self.with_unlisted_elements(job_id, queued, {r.index for r in rows})

    def _observe_gone(self, job_id: str, history: list[SlurmRow]) -> Observation:
        """A job squeue no longer lists: from sacct, else from its exit records, else unknown."""
        if history and read_indices(self.files(job_id).directory, job_id) is None:
            return observe(history[:1], requeue_preempted=self.settings.requeue_preempted)
        return self.observe_from_files(job_id)


def _unexplained(seen: Observation) -> bool:
    """Whether the scheduler's answer left the job, or an element of it, unknown."""
    return seen.status is JobStatus.UNKNOWN or any(
        e.status is JobStatus.UNKNOWN for e in seen.elements
    )
