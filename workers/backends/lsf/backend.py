"""The LSF backend: bsub, bjobs, bhist and bkill on the worker's host.

Pure functions build scripts and read output (script, status); this
module runs the commands, with timeouts and bounded retries for LSF's transient
"please wait" answers. Status is batched: one ``bjobs -a -json`` per chunk of ids
for all active jobs, or, above the profile's `query_all_above` active jobs, one
``bjobs -a -json -J '<prefix>-*'`` for all of the user's jobgate jobs, whose records
jobgate picks by id. Jobs bjobs no longer lists (after CLEAN_PERIOD) are judged
from the exit records their wrappers wrote, then from one ``bhist`` call; a job
found nowhere is UNKNOWN, never assumed to have succeeded, and the gateway
declares it lost after the profile's grace period. Lines of noise around bjobs's JSON
are logged and skipped; a job such an answer leaves unexplained is not judged in that
round.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import partial

from jobgate.client.models import JobSpec, JobStatus, Observation
from jobgate.client.profile_schema import LsfProfile
from jobgate.workers.backends import commands
from jobgate.workers.backends.base import JobSubmission, array_observation, chunks
from jobgate.workers.backends.batch import BatchBackend
from jobgate.workers.backends.jobfiles import failed_if_unreadable
from jobgate.workers.backends.lsf import script
from jobgate.workers.backends.lsf.script import LsfFiles
from jobgate.workers.backends.lsf.status import (
    BjobsAnswer,
    LsfRow,
    base_name,
    discover_argv,
    history_argv,
    nothing_left_to_cancel,
    observe,
    parse_bhist,
    parse_bjobs,
    query_argv,
    row_state,
)
from jobgate.workers.backends.programs import job_name

log = logging.getLogger(__name__)

#: What LSF commands print while mbatchd is busy, restarting or unreachable.
TRANSIENT = (
    "LSF is processing your request",
    "batch system daemon not responding",
    "LSF is down",
    "Failed in an LSF library call",
    "Cannot connect to LSF",
    "Resource temporarily unavailable",
)


class LsfBackend(BatchBackend[LsfProfile, LsfFiles]):
    kind = "lsf"
    transient = TRANSIENT
    unknown_reason = "not in bjobs or bhist, and no exit record"
    cancel_command = "bkill"

    def __init__(self, profile: LsfProfile) -> None:
        self.settings = profile.lsf
        super().__init__(profile, self.settings, self.settings.work_dir, LsfFiles)

    # -- submit ------------------------------------------------------------------

    def render_script(self, job: JobSubmission, files: LsfFiles) -> str:
        options = script.directives(job, self.profile, files)
        return script.render_script(options, files, job.spec.array is not None)

    def submit_command(
        self, spec: JobSpec, files: LsfFiles, script_text: str
    ) -> tuple[list[str], str | None]:
        return script.submit_argv(self.profile, spec), script_text  # bsub < script

    def parse_submitted(self, stdout: str) -> str:
        return script.parse_submitted(stdout)

    def discover(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Jobs submitted before: by the id file bsub's answer left, else by name among the
        jobs bjobs lists under the profile's prefix (one call for all of them).

        A job whose directory does not exist was never prepared, so never submitted.
        """
        found, prepared = self.saved_or_prepared(job_ids)
        names = {job_name(self.profile, j): j for j in prepared}
        if names:
            for row in self._bjobs(discover_argv(self.profile.job_name_prefix)).rows:
                if base_name(row.name) in names:
                    found[names[base_name(row.name)]] = row.job_id
        return found

    # -- status --------------------------------------------------------------------

    def query(self, jobs: Mapping[str, str]) -> dict[str, Observation]:
        listed: dict[str, list[LsfRow]] = {}
        garbled = False
        for answer in self._answers(sorted(set(jobs.values()))):
            garbled = garbled or bool(answer.around)
            for row in answer.rows:
                listed.setdefault(row.job_id, []).append(row)
        result = {}
        unexplained: dict[str, str] = {}
        for job_id, backend_id in jobs.items():
            if backend_id in listed:
                rows = listed[backend_id]
                result[job_id] = failed_if_unreadable(
                    partial(
                        self.with_unlisted_elements, job_id, observe(rows), {r.index for r in rows}
                    )
                )
            else:
                seen = failed_if_unreadable(partial(self.observe_from_files, job_id))
                if seen.status is JobStatus.UNKNOWN or any(
                    e.status is JobStatus.UNKNOWN for e in seen.elements
                ):
                    if garbled:
                        continue  # its record may be lost in the noise: next round
                    unexplained[job_id] = backend_id
                result[job_id] = seen
        if unexplained and self.settings.bhist:
            history = self._history(sorted(set(unexplained.values())))
            for job_id, backend_id in unexplained.items():
                if backend_id in history:
                    result[job_id] = _with_history(result[job_id], history[backend_id])
        return result

    def _answers(self, ids: list[str]) -> Iterator[BjobsAnswer]:
        """bjobs's answers about these jobs: above `query_all_above` of them, one call about
        all of the user's jobs under the name prefix, its records picked by id; else one
        call per chunk of ids."""
        if len(ids) > self.settings.query_all_above:
            yield self._bjobs(discover_argv(self.profile.job_name_prefix), frozenset(ids))
            return
        for chunk in chunks(ids, self.settings.query_chunk):
            yield self._bjobs(query_argv(chunk))

    def _bjobs(self, argv: list[str], among: frozenset[str] | None = None) -> BjobsAnswer:
        """bjobs's answer (only the records of `among`, if given); `around` keeps only
        noise (not LSF's busy messages)."""
        result = commands.run(argv, self.policy)
        answer = parse_bjobs(result.stdout, result.stderr, result.returncode, among)
        noise = [line for line in answer.around if not any(m in line for m in TRANSIENT)]
        if noise:
            log.warning(
                "cluster %s: bjobs printed a line jobgate cannot read (%d in all), skipped; "
                "jobs its answer leaves unexplained keep their state this round: %r",
                self.profile.name, len(noise), noise[0][: commands.QUOTE_CHARS],
            )  # fmt: skip
        return replace(answer, around=noise)

    def _history(self, backend_ids: list[str]) -> dict[str, list[LsfRow]]:
        """What bhist says of finished jobs, by backend id."""
        found: dict[str, list[LsfRow]] = {}
        for chunk in chunks(backend_ids, self.settings.query_chunk):
            result = commands.run(history_argv(chunk), self.policy)
            for row in parse_bhist(result.stdout, result.stderr, result.returncode):
                found.setdefault(row.job_id, []).append(row)
        return found

    def nothing_left(self, result: commands.CommandResult) -> bool:
        return nothing_left_to_cancel(result.stdout, result.stderr)


def _with_history(seen: Observation, rows: list[LsfRow]) -> Observation:
    """What the exit records left unknown (a job LSF killed writes none), from bhist."""
    if not seen.elements:
        return observe(rows[:1])
    by_index = {r.index: r for r in rows}
    elements = [row_state(by_index[e.index]) if e.status is JobStatus.UNKNOWN and e.index
                in by_index else e for e in seen.elements]  # fmt: skip
    return array_observation(elements)
