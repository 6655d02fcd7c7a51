"""The input bundle's rules, on real tar files: what packs, what unpacks, what is refused;
and the output globs' semantics."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from jobgate.client import bundle
from jobgate.client.bundle import BundleError
from jobgate.client.errors import SpecInvalidError
from jobgate.client.files import InputFile, matching

PATHS = ["a.log", "results/x.csv", "results/deep/y.csv", "logs/run.log", "b.txt"]


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("*.log", ["a.log"]),
        ("**/*.log", ["a.log", "logs/run.log"]),
        ("results/**", ["results/x.csv", "results/deep/y.csv"]),
        ("results/*.csv", ["results/x.csv"]),
        ("?.txt", ["b.txt"]),
        ("[ab].*", ["a.log", "b.txt"]),
        ("[!a].txt", ["b.txt"]),
    ],
)
def test_output_globs_match_within_a_part_and_double_stars_span_parts(
    glob: str, expected: list[str]
) -> None:
    assert matching(PATHS, [glob]) == expected


def pack(tmp_path: Path, *inputs: InputFile, job_id: str = "job1") -> Path:
    out = tmp_path / "bundle.tar"
    with out.open("wb") as f:
        bundle.write(bundle.collect(inputs), f, job_id=job_id, run_id="r", cluster="c")
    return out


def test_a_packed_directory_unpacks_with_its_layout_modes_and_digests(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "run.sh").write_text("echo hi\n")
    (src / "sub" / "run.sh").chmod(0o750)
    (src / "data.bin").write_bytes(os.urandom(70_000))
    packed = pack(tmp_path, InputFile(src=str(src), dest="in"))
    work = tmp_path / "work"
    work.mkdir()
    manifest = bundle.unpack(packed, work, "job1", lambda path: False)
    assert sorted(e.path for e in manifest.files) == ["in/data.bin", "in/sub/run.sh"]
    assert (work / "in" / "data.bin").read_bytes() == (src / "data.bin").read_bytes()
    assert (work / "in" / "sub" / "run.sh").stat().st_mode & 0o777 == 0o750
    assert not list(work.rglob("*.part"))


def test_a_special_file_in_an_input_directory_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe")
    with pytest.raises(SpecInvalidError, match=r"pipe is not a regular file"):
        bundle.collect([InputFile(src=str(src))])


def hand_made(tmp_path: Path, members: list[tarfile.TarInfo], data: bytes, manifest: str) -> Path:
    out = tmp_path / "hand.tar"
    with tarfile.open(out, "w") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest.encode()))
    return out


def manifest_of(path: str, data: bytes, job_id: str = "job1") -> str:
    import hashlib
    import json

    entry = {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
             "mode": 0o644}  # fmt: skip
    return json.dumps({"job_id": job_id, "run_id": "r", "cluster": "c", "jobgate_version": "0",
                       "files": [entry]})  # fmt: skip


def regular(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


@pytest.mark.parametrize(
    ("member", "manifest_path", "job_id", "problem"),
    [
        ("files/../../x", "x", "job1", r"'\.\./\.\./x' would land outside the work directory"),
        ("files//etc/x", "x", "job1", r"would land outside the work directory"),
        ("files/y", "x", "job1", r"bundle member 'y' is not in its manifest"),
        ("other/x", "x", "job1", r"is outside files/"),
        ("files/x", "x", "job2", r"made for job job2, not job1"),
        ("files/job1.program", "job1.program", "job1", r"would replace a file jobgate keeps"),
    ],
)
def test_unpacking_refuses_what_would_escape_or_differ_from_the_manifest(
    tmp_path: Path, member: str, manifest_path: str, job_id: str, problem: str
) -> None:
    data = b"payload"
    packed = hand_made(tmp_path, [regular(member, len(data))], data,
                       manifest_of(manifest_path, data, job_id))  # fmt: skip
    work = tmp_path / "a" / "b" / "work"
    work.mkdir(parents=True)
    with pytest.raises(BundleError, match=problem):
        bundle.unpack(packed, work, "job1", lambda path: path.startswith("job1."))
    assert not (tmp_path / "a" / "x").exists()
    assert not (work / "job1.program").exists()


def test_a_symlink_member_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("files/x")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    packed = hand_made(tmp_path, [link], b"", manifest_of("x", b""))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(BundleError, match=r"'x' is not a regular file"):
        bundle.unpack(packed, work, "job1", lambda path: False)
    empty = hand_made(tmp_path, [], b"", manifest_of("x", b"data"))
    with pytest.raises(BundleError, match=r"lacks 1 file\(s\) of its manifest, e\.g\. 'x'"):
        bundle.unpack(empty, work, "job1", lambda path: False)


def test_a_planted_symlinked_directory_does_not_lead_unpacking_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "d").symlink_to(outside)
    data = b"payload"
    packed = hand_made(tmp_path, [regular("files/d/x", len(data))], data,
                       manifest_of("d/x", data))  # fmt: skip
    with pytest.raises(BundleError, match=r"'d/x' would land outside the work directory"):
        bundle.unpack(packed, work, "job1", lambda path: False)
    assert list(outside.iterdir()) == []
