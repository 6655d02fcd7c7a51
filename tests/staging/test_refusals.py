"""Inputs and retrieves that must be refused, with a clear error and nothing lost:
traversal, symlinks out, missing files, bad storage settings, existing files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jobgate.client import Gateway, JobSpec, JobStatus, SpecInvalidError, load_profile
from jobgate.client.errors import OutputsIncompleteError, StorageError
from tests.support.staging import KEY_ENV, SECRET_ENV, StagedBackend


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"src": "x", "dest": "../x"}, "contains '..'"),
        ({"src": "x", "dest": "/etc/x"}, "is absolute"),
        ({"src": "x", "dest": "a/../../x"}, "contains '..'"),
    ],
)
def test_a_destination_outside_the_work_directory_is_refused_before_anything_is_recorded(
    staged: StagedBackend, gateway: Gateway, entry: dict[str, str], problem: str
) -> None:
    with pytest.raises(SpecInvalidError, match=rf"inputs\.0\.dest: .*{problem}"):
        gateway.submit({"name": "bad", "command": "true", "inputs": [entry]}, "local")
    assert gateway.list() == []


def test_a_symlink_out_of_an_input_directory_is_refused_and_one_inside_is_packed(
    staged: StagedBackend, gateway: Gateway, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not for the job")
    data = tmp_path / "data"
    data.mkdir()
    (data / "real.txt").write_text("real")
    (data / "inner").symlink_to("real.txt")
    (data / "outer").symlink_to(secret)
    with pytest.raises(SpecInvalidError, match=r"symlink outer points outside the directory"):
        gateway.submit(JobSpec(name="bad", command="true", inputs=[str(data)]), "local")
    assert gateway.list() == []

    (data / "outer").unlink()
    staged.start()
    job = gateway.submit(JobSpec(name="ok", command="cat data/inner", inputs=[str(data)]), "local")
    assert job.wait(timeout_s=60).status is JobStatus.SUCCEEDED
    assert "".join(job.logs()) == "real"


def test_a_missing_local_input_is_refused_naming_it(
    staged: StagedBackend, gateway: Gateway, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(SpecInvalidError, match=rf"inputs\[0\] \({missing}\): no such file"):
        gateway.submit(JobSpec(name="bad", command="true", inputs=[str(missing)]), "local")
    assert gateway.list() == []


def test_an_unknown_storage_template_field_is_a_profile_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    storage = {"prefix": "s3://bucket/jobs", "outputs": "{prefix}/{user}/{filename}"}
    path.write_text(yaml.safe_dump({"name": "bad", "backend": "local", "storage": storage}))
    with pytest.raises(SpecInvalidError, match=r"storage\.outputs.*unknown placeholder.*user"):
        load_profile(str(path))


def test_a_bucket_that_does_not_exist_fails_the_upload_and_the_job_is_not_queued(
    staged: StagedBackend, gateway: Gateway, tmp_path: Path
) -> None:
    staged.start(prefix="s3://no-such-bucket-here/jobs")
    (tmp_path / "in.txt").write_text("x")
    spec = JobSpec(name="nobucket", command="true", inputs=[str(tmp_path / "in.txt")])
    with pytest.raises(StorageError, match=r"bucket no-such-bucket-here does not exist"):
        gateway.submit(spec, "local")
    (record,) = gateway.list()
    assert record.status is JobStatus.FAILED
    assert record.reason is not None
    assert record.reason.startswith("not queued: inputs: ")
    assert record.backend_id is None


def test_retrieve_will_not_overwrite_or_write_outside_its_destination(
    staged: StagedBackend, gateway: Gateway, tmp_path: Path
) -> None:
    staged.start()
    job = gateway.submit(
        JobSpec(name="out", command="mkdir -p results; echo new > results/r.txt",
                outputs=["results/*"]), "local"
    )  # fmt: skip
    assert job.wait(timeout_s=60).status is JobStatus.SUCCEEDED
    dest = tmp_path / "dest"
    (dest / "results").mkdir(parents=True)
    (dest / "results" / "r.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"r\.txt exists; pass overwrite=True"):
        job.retrieve(dest, logs=False)
    assert (dest / "results" / "r.txt").read_text() == "mine"
    job.retrieve(dest, logs=False, overwrite=True)
    assert (dest / "results" / "r.txt").read_text() == "new\n"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    trap = tmp_path / "trap"
    trap.mkdir()
    (trap / "results").symlink_to(elsewhere)
    with pytest.raises(SpecInvalidError, match=r"results/r\.txt would be written outside"):
        job.retrieve(trap, logs=False)
    assert list(elsewhere.iterdir()) == []


def test_credentials_s3_refuses_fail_the_upload_naming_the_setting(
    staged: StagedBackend, gateway: Gateway, tmp_path: Path
) -> None:
    h = staged.harness
    profile = h.profile(storage=staged.storage())
    env = {KEY_ENV: staged.bucket.access_key, SECRET_ENV: "not-the-secret"}
    h.start_worker(profile, env=env)
    (tmp_path / "in.txt").write_text("x")
    spec = JobSpec(name="badkeys", command="true", inputs=[str(tmp_path / "in.txt")])
    refused = r"refused the worker's credentials \(SignatureDoesNotMatch\): check storage"
    with pytest.raises(StorageError, match=refused):
        gateway.submit(spec, "local")
    assert "not-the-secret" not in str(gateway.list()[0].reason)


def test_more_matching_outputs_than_the_cap_is_an_error_not_a_cut(
    staged: StagedBackend, gateway: Gateway
) -> None:
    staged.start(max_outputs=2)
    job = gateway.submit(
        JobSpec(name="many", command="touch a.txt b.txt c.txt", outputs=["*.txt"]), "local"
    )
    record = job.wait(timeout_s=60)
    assert record.status is JobStatus.SUCCEEDED
    assert record.outputs is not None
    assert not record.outputs.complete
    assert record.outputs.files == []
    assert record.outputs.reason == (
        "outputs: 3 files match, more than storage.max_outputs (2); none were kept"
    )
    with pytest.raises(OutputsIncompleteError, match=r"more than storage.max_outputs"):
        job.retrieve("unused")
