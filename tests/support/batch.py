"""What a Slurm or LSF job leaves in its job directory for the gateway to read."""

from __future__ import annotations

import json
from pathlib import Path


def write_exit_record(work_dir: Path, job_id: str, exit_code: int = 0) -> None:
    """The exit record a batch job's wrapper writes when its program ends (exit code,
    start and end times), as if the job had run and ended while no worker watched."""
    job_dir = work_dir / job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    record = {"exit_code": exit_code, "started": 1, "finished": 2}
    (job_dir / f"{job_id}.exit").write_text(json.dumps(record))
