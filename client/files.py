"""Job files in the contract: what a job's inputs are and what its outputs became.

An input is a local file or directory on the client; it lands in the job's work
directory under its base name (a directory with its layout), or under `dest`. An
output is a glob relative to the work directory. Paths in the work directory are
POSIX, relative, and never climb out of it: that is checked here, at the client, and
again by the worker on every file it writes.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from jobgate.client.strict_model import StrictModel

#: The most files one job may declare as inputs or keep as outputs; more is an error.
MAX_FILES = 10_000
SHA256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def check_relative_path(path: str) -> str:
    """A path inside the work directory: relative, POSIX, without '..' or empty parts."""
    if not path or "\x00" in path or "\n" in path or "\r" in path:
        raise ValueError(f"{path!r} is not a path (empty, or holds NUL or a newline)")
    if path.startswith("/"):
        raise ValueError(f"{path!r} is absolute; give a path relative to the job's work directory")
    parts = path.split("/")
    if ".." in parts:
        raise ValueError(f"{path!r} contains '..'; it must stay inside the job's work directory")
    if "\\" in path:
        raise ValueError(f"{path!r} holds a backslash; use '/' between directories")
    cleaned = posixpath.normpath(path)
    if cleaned in (".", ""):
        raise ValueError(f"{path!r} names the work directory itself, not a file in it")
    return cleaned


RelativePath = Annotated[str, AfterValidator(check_relative_path)]
LocalPath = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[^\x00]*$")]


def _check_glob(pattern: str) -> str:
    check_relative_path(pattern.replace("**", "x").replace("*", "x"))
    glob_regex(pattern)
    return pattern


OutputGlob = Annotated[str, AfterValidator(_check_glob)]


class InputFile(StrictModel):
    """A file or directory on the client, staged into the job's work directory.

    `dest` is where it lands (relative to the work directory); by default its base name.
    """

    src: LocalPath
    dest: RelativePath | None = None

    @model_validator(mode="after")
    def _named(self) -> InputFile:
        if self.dest is None:
            name = posixpath.basename(posixpath.normpath(self.src))
            if name in ("", ".", "..", "/"):
                raise ValueError(f"input {self.src!r} has no base name to land under; give dest")
            self.dest = check_relative_path(name)
        return self

    @property
    def destination(self) -> str:
        assert self.dest is not None  # set by validation
        return self.dest


class OutputFile(StrictModel):
    """One file a job left (or one of its logs), as stored in S3."""

    path: RelativePath
    size: int = Field(ge=0)
    sha256: SHA256
    key: str = Field(description="Its object key in the cluster's storage bucket.")


class OutputsReport(StrictModel):
    """What became of a finished job's declared outputs and logs.

    `complete` is False while an upload failed (`reason` says why); the worker's
    reconcile retries it. `logs` are the job's stdout/stderr files, named as on the
    cluster (``<job id>.out``, ``<job id>.<index>.err``).
    """

    complete: bool
    reason: str | None = None
    files: list[OutputFile] = Field(default_factory=list)
    logs: list[OutputFile] = Field(default_factory=list)


class BundleEntry(StrictModel):
    """One file of an input bundle: where it lands, its size, digest and mode."""

    path: RelativePath
    size: int = Field(ge=0)
    sha256: SHA256
    mode: int = Field(ge=0, le=0o777)


class BundleManifest(StrictModel):
    """``manifest.json`` of an input bundle: every file, and whose bundle it is."""

    format: Literal[1] = 1
    job_id: str
    run_id: str
    cluster: str
    jobgate_version: str
    files: list[BundleEntry] = Field(max_length=MAX_FILES)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regex of an output glob over POSIX paths relative to the work directory.

    ``*`` and ``?`` stay within one path part, ``[...]`` is a character class, and a
    ``**`` part matches any number of parts: ``results/**`` is every file under
    results/, ``**/*.log`` every .log file at any depth, ``*.log`` those at the top.
    """
    out: list[str] = []
    parts = pattern.split("/")
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        i = 0
        while i < len(part):
            c = part[i]
            if c == "*":
                out.append("[^/]*")
            elif c == "?":
                out.append("[^/]")
            elif c == "[":
                end = part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "]") else i + 1)
                if end < 0:
                    raise ValueError(f"output glob {pattern!r}: '[' without a closing ']'")
                body = part[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = end
            else:
                out.append(re.escape(c))
            i += 1
        if not last:
            out.append("/")
    return re.compile("".join(out) + r"\Z")


def matching(paths: Iterable[str], patterns: Iterable[str]) -> list[str]:
    """The paths that match any of the globs, in the order given."""
    regexes = [glob_regex(p) for p in patterns]
    return [path for path in paths if any(r.match(path) for r in regexes)]
