"""Job files both ways through a real S3 server, on local, Slurm and LSF: a directory of
small files and one 200 MB file go in, the job checks them and writes outputs in nested
folders, and `retrieve` brings back exactly the declared outputs, and the logs, with
their sha256."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from jobgate.client import JobSpec, JobStatus
from tests.support.staging import StagedBackend, sha256_of
from tests.support.waiting import wait_for

BIG_MB = 200

pytestmark = pytest.mark.slow

CHECK_AND_WRITE = """\
sha256sum -c --quiet sums.txt > check.log
mkdir -p results/nested/deeper
cp data/part0/f0.txt results/nested/deeper/copy.txt
echo top > results/top.txt
echo scratch > scratch.bin
echo to-stdout
echo to-stderr >&2
"""


def make_inputs(root: Path) -> tuple[list[str], dict[str, str]]:
    """100 small files under data/, one big file and the sums the job checks them by."""
    rng = random.Random(12)
    sums: dict[str, str] = {}
    for n in range(100):
        path = root / "data" / f"part{n // 10}" / f"f{n}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randrange(1, 5000)))
        sums[f"data/part{n // 10}/f{n}.txt"] = sha256_of(path)
    big = root / "big.bin"
    with big.open("wb") as f:
        for _ in range(BIG_MB):
            f.write(rng.randbytes(1 << 20))
    sums["big.bin"] = sha256_of(big)
    (root / "sums.txt").write_text("".join(f"{sha}  {path}\n" for path, sha in sums.items()))
    return [str(root / "data"), str(big), str(root / "sums.txt")], sums


@pytest.mark.parametrize("backend", ["local", "slurm", "lsf"], indirect=True)
def test_inputs_go_in_and_exactly_the_declared_outputs_and_the_logs_come_back(
    staged: StagedBackend, tmp_path: Path
) -> None:
    staged.start()
    inputs, _ = make_inputs(tmp_path / "inputs")
    job = staged.harness.submit(
        JobSpec(name="staged", command=CHECK_AND_WRITE, inputs=inputs,
                outputs=["results/**", "*.log"])
    )  # fmt: skip
    record = job.wait(timeout_s=240)
    assert record.status is JobStatus.SUCCEEDED, record.reason
    assert record.outputs is not None
    assert record.outputs.complete
    outputs = {f.path: f for f in job.outputs()}
    assert sorted(outputs) == ["check.log", "results/nested/deeper/copy.txt", "results/top.txt"]
    assert all(f.key.startswith(f"jobs/{job.id}/outputs/{job.id}/") for f in outputs.values())

    dest = tmp_path / "retrieved"
    paths = job.retrieve(dest)
    names = sorted(p.relative_to(dest).as_posix() for p in paths)
    assert names == sorted([*outputs, f"{job.id}.out", f"{job.id}.err"])
    for path, kept in outputs.items():
        assert sha256_of(dest / path) == kept.sha256
    original = tmp_path / "inputs" / "data" / "part0" / "f0.txt"
    assert (dest / "results/nested/deeper/copy.txt").read_bytes() == original.read_bytes()
    assert (dest / "check.log").read_text() == ""  # sha256sum -c found every input intact
    assert (dest / f"{job.id}.out").read_text() == "to-stdout\n"

    # The work directory goes once everything is kept (work_dir_retention_s: 0), and the
    # logs are read from S3 after that.
    wait_for(lambda: not list(tmp_path.rglob(job.id)), what="the work directory removed")
    assert "".join(job.logs("stdout")) == "to-stdout\n"
    assert "".join(job.logs("stderr")) == "to-stderr\n"


def test_a_pattern_picks_outputs_and_run_id_groups_the_keys(
    staged: StagedBackend, tmp_path: Path
) -> None:
    staged.start(work_dir_retention_s=3600)
    job = staged.harness.submit(
        JobSpec(name="picked", command="mkdir -p a/b; echo 1 > a/b/x.csv; echo 2 > a/y.txt",
                outputs=["a/**"], run_id="sweep-7")
    )  # fmt: skip
    assert job.wait(timeout_s=60).status is JobStatus.SUCCEEDED
    assert all(f.key.startswith("jobs/sweep-7/outputs/") for f in job.outputs())
    paths = job.retrieve(tmp_path / "csv", pattern="**/*.csv", logs=False)
    assert [p.relative_to(tmp_path / "csv").as_posix() for p in paths] == ["a/b/x.csv"]
    # The directory stays for its retention: nothing was removed yet.
    assert list(tmp_path.rglob(job.id))
