"""The input bundle: one tar holding a job's input files and their manifest.

The client packs it as a stream (no temporary copy): each file under ``files/<path>``,
hashed while it is read, then ``manifest.json`` (a `BundleManifest`: every file's path,
size, sha256 and mode; job, run, cluster, jobgate version) as the last member. The
worker unpacks it into the job's work directory, writing only regular files listed in
the manifest, at paths that stay inside that directory, and checks every size and digest.

Everything is refused before a byte is uploaded when it cannot be packed faithfully: a
missing input, a symlink in an input directory that points outside it, a special file.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from pydantic import ValidationError

from jobgate.client.errors import SpecInvalidError
from jobgate.client.files import MAX_FILES, BundleEntry, BundleManifest, InputFile
from jobgate.client.files import check_relative_path as _relative

MANIFEST = "manifest.json"
FILES_PREFIX = "files/"
COPY_BUFFER = 1 << 20
#: tar's overhead per member at most: a 512-byte header, a PAX header for long names
#: (two blocks and its own header), and padding to 512 bytes.
_MEMBER_OVERHEAD = 512 * 6


class BundleError(ValueError):
    """A bundle that cannot be unpacked as it claims (traversal, checksum, format)."""


@dataclass(frozen=True)
class Member:
    """A local file to pack, and where it lands in the job's work directory."""

    source: Path
    path: str
    size: int
    mode: int


def jobgate_version() -> str:
    try:
        return metadata.version("jobgate")
    except metadata.PackageNotFoundError:
        return "unknown"


def collect(inputs: Iterable[InputFile], base: Path | None = None) -> list[Member]:
    """The files of these inputs, in packing order. SpecInvalidError names the input that
    cannot be packed, and why."""
    members: list[Member] = []
    root = base or Path.cwd()
    for n, item in enumerate(inputs):
        source = Path(item.src).expanduser()
        source = source if source.is_absolute() else root / source
        where = f"inputs[{n}] ({item.src})"
        try:
            info = source.stat()
        except FileNotFoundError as e:
            raise SpecInvalidError(f"{where}: no such file or directory") from e
        except OSError as e:
            raise SpecInvalidError(f"{where}: cannot read it: {e.strerror}") from e
        if stat.S_ISDIR(info.st_mode):
            members += _directory(source, item.destination, where)
        elif stat.S_ISREG(info.st_mode):
            members.append(Member(source, item.destination, info.st_size, info.st_mode & 0o777))
        else:
            raise SpecInvalidError(f"{where}: not a regular file or a directory")
        if len(members) > MAX_FILES:
            raise SpecInvalidError(f"inputs: more than {MAX_FILES} files; pack them in an archive")
    seen: dict[str, Path] = {}
    for m in members:
        if m.path in seen:
            raise SpecInvalidError(f"inputs: {seen[m.path]} and {m.source} both land at {m.path}")
        seen[m.path] = m.source
    return members


def _directory(top: Path, dest: str, where: str) -> list[Member]:
    """Every regular file under `top`, by path relative to it. A symlink is followed when
    it points inside `top` and refused when it points outside it."""
    resolved_top = top.resolve()
    found: list[Member] = []
    for directory, subdirs, files in os.walk(top, followlinks=False):
        subdirs.sort()
        here = Path(directory)
        for name in [*sorted(files), *(d for d in subdirs if (here / d).is_symlink())]:
            path = here / name
            relative = path.relative_to(top).as_posix()
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(resolved_top):
                    raise SpecInvalidError(
                        f"{where}: symlink {relative} points outside the directory "
                        f"(to {target}); copy the file in, or give it as an input of its own"
                    )
                if target.is_dir():
                    continue  # its files are packed where the directory itself is
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise SpecInvalidError(f"{where}: {relative} is not a regular file")
            found.append(Member(path, f"{dest}/{relative}", info.st_size, info.st_mode & 0o777))
    return found


def size_bound(members: Iterable[Member]) -> int:
    """At least the size of the bundle of these members (for sizing its upload)."""
    members = list(members)
    files = sum(_MEMBER_OVERHEAD + m.size for m in members)
    manifest = 512 + 300 * (len(members) + 1) + sum(len(m.path) for m in members)
    return files + manifest + tarfile.RECORDSIZE * 2


class Sink(Protocol):
    """Where a bundle streams to: a file, or the parts of an upload."""

    def write(self, data: bytes) -> int: ...


def write(
    members: Iterable[Member],
    out: Sink,
    *,
    job_id: str,
    run_id: str,
    cluster: str,
    progress: Callable[[int], None] | None = None,
) -> BundleManifest:
    """Pack `members` into `out` as a tar stream and return its manifest. `progress` is
    told the bytes of file content read. A file that changed size while being packed
    raises SpecInvalidError.
    """
    entries: list[BundleEntry] = []
    stream = cast(BinaryIO, out)  # tarfile's stream mode only ever calls write()
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(FILES_PREFIX + m.path)
            info.size, info.mode, info.mtime = m.size, m.mode, int(m.source.stat().st_mtime)
            digest = hashlib.sha256()
            try:
                with m.source.open("rb") as f:
                    reader = _HashingReader(f, digest, m.size, progress)
                    tar.addfile(info, reader)
                    if reader.remaining or f.read(1):
                        raise OSError("its size changed while it was packed")
            except OSError as e:
                raise SpecInvalidError(f"input {m.source}: {e.strerror or e}") from e
            entries.append(
                BundleEntry(path=m.path, size=m.size, sha256=digest.hexdigest(), mode=m.mode)
            )
        manifest = BundleManifest(
            job_id=job_id,
            run_id=run_id,
            cluster=cluster,
            jobgate_version=jobgate_version(),
            files=entries,
        )
        data = manifest.model_dump_json(indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return manifest


class _HashingReader(io.RawIOBase):
    """A file read through: its bytes hashed and counted on the way into the tar."""

    def __init__(
        self,
        f: BinaryIO,
        digest: hashlib._Hash,
        size: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        super().__init__()
        self._f, self._digest, self.remaining, self._progress = f, digest, size, progress

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(self.remaining if n < 0 else min(n, self.remaining))
        self._digest.update(data)
        self.remaining -= len(data)
        if self._progress is not None and data:
            self._progress(len(data))
        return data


@contextmanager
def opened(bundle: Path) -> Iterator[tuple[tarfile.TarFile, BundleManifest]]:
    """An open bundle and its manifest; BundleError when either cannot be read."""
    try:
        tar = tarfile.open(bundle, mode="r:")  # noqa: SIM115 - closed below, on every path
    except (tarfile.TarError, OSError) as e:
        raise BundleError(f"the bundle is not a readable tar file: {e}") from e
    with tar:
        try:
            f = tar.extractfile(tar.getmember(MANIFEST))
            if f is None:
                raise BundleError(f"the bundle's {MANIFEST} is not a file")
            manifest = BundleManifest.model_validate_json(f.read())
        except KeyError as e:
            raise BundleError(f"the bundle has no {MANIFEST}") from e
        except ValidationError as e:
            raise BundleError(f"its {MANIFEST} is invalid: {e.error_count()} problem(s)") from e
        except (tarfile.TarError, OSError) as e:
            raise BundleError(f"the bundle is truncated or corrupt: {e}") from e
        yield tar, manifest


def unpack(
    bundle: Path, work_dir: Path, job_id: str, reserved: Callable[[str], bool]
) -> BundleManifest:
    """Unpack a bundle into `work_dir`, checking every file against the manifest.

    Refused with BundleError: a member that is not a regular file, is not in the
    manifest, would land outside `work_dir` or on a name jobgate keeps for itself
    (`reserved`), a size or sha256 that differs, a bundle made for another job.
    """
    with opened(bundle) as (tar, manifest):
        if manifest.job_id != job_id:
            raise BundleError(f"the bundle was made for job {manifest.job_id}, not {job_id}")
        entries = {e.path: e for e in manifest.files}
        root = work_dir.resolve()
        done: set[str] = set()
        for info in tar:
            if info.name == MANIFEST:
                continue
            name = info.name.removeprefix(FILES_PREFIX)
            if not info.name.startswith(FILES_PREFIX):
                raise BundleError(f"bundle member {info.name!r} is outside {FILES_PREFIX}")
            target = _target(root, name)
            if not info.isreg():
                raise BundleError(f"bundle member {name!r} is not a regular file")
            entry = entries.get(name)
            if entry is None:
                raise BundleError(f"bundle member {name!r} is not in its manifest")
            if reserved(entry.path):
                raise BundleError(f"input {name!r} would replace a file jobgate keeps there")
            _extract(tar, info, entry, target)
            done.add(name)
        missing = sorted(set(entries) - done)
        if missing:
            raise BundleError(
                f"the bundle lacks {len(missing)} file(s) of its manifest, e.g. {missing[0]!r}"
            )
    return manifest


def _target(root: Path, name: str) -> Path:
    try:
        relative = _relative(name)
    except ValueError as e:
        raise BundleError(f"bundle member {name!r} would land outside the work directory") from e
    target = root / relative
    # A directory already there may be a symlink planted to lead out: resolve the parent.
    if not target.parent.resolve().is_relative_to(root) and target.parent.exists():
        raise BundleError(f"bundle member {name!r} would land outside the work directory")
    return target


def _extract(tar: tarfile.TarFile, info: tarfile.TarInfo, entry: BundleEntry, target: Path) -> None:
    source = tar.extractfile(info)
    assert source is not None  # a regular member
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise BundleError(f"input {entry.path!r} would replace something that is not a file")
    digest = hashlib.sha256()
    size = 0
    partial = target.with_name(f".{target.name}.part")
    with partial.open("wb") as out:
        while chunk := source.read(COPY_BUFFER):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if size != entry.size or digest.hexdigest() != entry.sha256:
        partial.unlink()
        raise BundleError(
            f"checksum mismatch for {entry.path!r}: the manifest says {entry.size} bytes, "
            f"sha256 {entry.sha256[:12]}…; the bundle holds {size} bytes, "
            f"sha256 {digest.hexdigest()[:12]}…"
        )
    partial.chmod(entry.mode)
    partial.rename(target)
