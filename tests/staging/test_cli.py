"""The staging commands as a script uses them: submit --input/--output, outputs, retrieve."""

from __future__ import annotations

import json
from pathlib import Path

from jobgate.client import Gateway, JobStatus
from tests.support.cli import jobgate
from tests.support.staging import StagedBackend, sha256_of


def test_submit_with_inputs_then_outputs_and_retrieve_from_the_command_line(
    staged: StagedBackend, gateway: Gateway, tmp_path: Path
) -> None:
    staged.start()
    source = tmp_path / "words.txt"
    source.write_text("b\na\n")
    submitted = jobgate(gateway, "submit", "local", "--input", str(source), "--output", "*.txt",
                        "--json", "--", "sort words.txt > sorted.txt")  # fmt: skip
    job_id = json.loads(submitted.stdout)["id"]
    assert gateway.job(job_id).wait(timeout_s=60).status is JobStatus.SUCCEEDED

    listed = json.loads(jobgate(gateway, "outputs", job_id, "--json").stdout)
    assert [f["path"] for f in listed] == ["sorted.txt", "words.txt"]
    dest = tmp_path / "dest"
    got = json.loads(jobgate(gateway, "retrieve", job_id, str(dest), "--pattern", "sorted.*",
                             "--no-logs", "--json").stdout)  # fmt: skip
    assert got == [str(dest / "sorted.txt")]
    assert (dest / "sorted.txt").read_text() == "a\nb\n"
    assert sha256_of(dest / "sorted.txt") == listed[0]["sha256"]

    again = jobgate(gateway, "retrieve", job_id, str(dest), "--no-logs", check=False)
    assert again.returncode == 1
    assert again.stderr.startswith(f"jobgate: {dest / 'sorted.txt'} exists; pass overwrite=True")
