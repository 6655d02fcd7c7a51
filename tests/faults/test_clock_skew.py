"""Clocks five minutes apart: a client 5 min slow, a worker 5 min fast handing the cluster
to one 5 min slow, Redis right. Records are written on Redis's clock (client/clock.py),
so transitions stay in order, `since`/`until` find the jobs, no observation is taken for
stale and nothing is resent or run twice.

The skewed processes run under libfaketime (Debian's `faketime`): the wall clock is
shifted, the monotonic one left alone, as on a host whose NTP broke.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobgate.client import JobStatus
from tests.support.local import LocalHarness
from tests.support.records import statuses
from tests.support.waiting import gated, wait_for

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
JOBS = 5


def skewed(offset: str) -> dict[str, str]:
    """The environment of a process whose wall clock is `offset` ("+5m", "-5m") off."""
    if not LIBFAKETIME.exists():
        why = f"needs libfaketime ({LIBFAKETIME}): apt-get install -y faketime"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def submit_from_a_skewed_client(
    harness: LocalHarness, offset: str, commands: list[str]
) -> list[str]:
    """Submit jobs from a client process whose clock is `offset` off; their ids."""
    script = (
        "import json, sys, warnings\n"
        "from jobgate.client import Gateway, JobSpec\n"
        "warnings.simplefilter('ignore')\n"
        "url, tenant, cluster, *commands = sys.argv[1:]\n"
        "gw = Gateway(url, tenant=tenant, owner='skewed')\n"
        "print(json.dumps([gw.submit(JobSpec(name=f'j{i}', command=c), cluster=cluster).id\n"
        "                  for i, c in enumerate(commands)]))\n"
    )
    gw = harness.gateway
    done = subprocess.run(
        [sys.executable, "-c", script, gw.url, gw.tenant, harness.cluster, *commands],
        env={**os.environ, **skewed(offset)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    job_ids: list[str] = json.loads(done.stdout)
    return job_ids


@pytest.mark.timeout(240)
def test_five_minutes_of_skew_between_client_and_workers_keep_records_in_order(
    local_backend: LocalHarness, tmp_path: Path
) -> None:
    gateway, gate, runs = local_backend.gateway, tmp_path / "go", tmp_path / "runs"
    ahead = local_backend.start_worker(local_backend.profile(), name="ahead", env=skewed("+5m"))
    before = datetime.now(tz=UTC)
    commands = [gated(f'echo "$JOBGATE_JOB_ID" >> {runs}; echo {i}', gate) for i in range(JOBS)]
    job_ids = submit_from_a_skewed_client(local_backend, "-5m", commands)
    after = datetime.now(tz=UTC)
    jobs = [gateway.job(job_id) for job_id in job_ids]
    wait_for(lambda: all(j.status() is JobStatus.RUNNING for j in jobs), timeout_s=60,
             what="every job RUNNING under the fast worker")  # fmt: skip

    # A worker 5 min ahead answers the client's calls (their expiry is on Redis's clock).
    assert jobs[0].status(fresh=True) is JobStatus.RUNNING
    assert "this host's clock is 300." in ahead.log_text()  # "… s ahead of Redis's"
    # The cluster changes hands: the fast worker's last observations are stamped 10 min
    # after anything the slow one can see, on their own clocks.
    ahead.stop()
    local_backend.start_worker(local_backend.profile(), name="behind", env=skewed("-5m"))
    gate.touch()
    released = time.monotonic()

    for job in jobs:
        record = job.wait(timeout_s=60)
        assert record.status is JobStatus.SUCCEEDED, record
        times = [t.at for t in record.history]
        assert times == sorted(times), record.history
        assert before <= record.created_at <= after, (before, record.created_at, after)
        assert statuses(record) == [JobStatus.NEW, JobStatus.PENDING, JobStatus.RUNNING,
                                    JobStatus.SUCCEEDED]  # fmt: skip
    finished_s = time.monotonic() - released
    assert sorted(runs.read_text().split()) == sorted(job_ids)  # each ran once
    listed = [r.id for r in gateway.list(since=before, until=after, limit=100)]
    assert listed == sorted(job_ids)
    print(f"FIGURE clock-skew client -5 min, workers +5/-5 min: {JOBS} jobs, 0 stale, 0 rerun, "
          f"all SUCCEEDED {finished_s:.1f} s after release, listed by since/until")  # fmt: skip
