"""The staging commands as a script uses them: submit --input/--output, outputs, retrieve."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

from jobgate.client import Gateway, JobStatus
from tests.support.cli import JOBGATE, jobgate
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


def on_a_terminal(gateway: Gateway, *args: str) -> str:
    """Run `jobgate ARGS` with a pseudo-terminal as its standard streams; what it showed."""
    env = {**os.environ, "JOBGATE_URL": gateway.url, "JOBGATE_TENANT": gateway.tenant,
           "COLUMNS": "120", "TERM": "xterm"}  # fmt: skip
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([JOBGATE, *args], stdin=terminal, stdout=terminal, stderr=terminal,
                            env=env)  # fmt: skip
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert proc.wait(timeout=120) == 0, shown.decode(errors="replace")
    return shown.decode(errors="replace")


def test_a_terminal_sees_progress_bars_for_the_upload_and_the_download(
    staged: StagedBackend, gateway: Gateway, tmp_path: Path
) -> None:
    staged.start()
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3 * 1024 * 1024))
    shown = on_a_terminal(gateway, "submit", "local", "--input", str(data), "--output", "*.bin",
                          "--", "true")  # fmt: skip
    assert "uploading inputs of job" in shown
    assert "3.1/3.1 MB" in shown  # rich's DownloadColumn, at the end
    job_id = re.findall(r"\b[0-9a-hjkmnp-tv-z]{26}\b", shown)[-1]  # after the bar's escapes
    assert gateway.job(job_id).wait(timeout_s=60).status is JobStatus.SUCCEEDED
    shown = on_a_terminal(gateway, "retrieve", job_id, str(tmp_path / "dest"), "--no-logs")
    assert f"retrieving job {job_id}" in shown
    assert (tmp_path / "dest" / "data.bin").read_bytes() == data.read_bytes()
