"""jobgate's staging program inside a Kubernetes pod: standard library only.

It runs as ``python3 -c <this source> MODE WORK_DIR [READY_FILE]`` in the pod's staging containers
(any image with python3), configured by one JSON document in ``$JOBGATE_STAGING`` that
the pod gets from the job's Secret (presigned URLs never sit in the Job's manifest).

- ``fetch``: download the input bundle (a presigned GET URL), then unpack it into
  WORK_DIR by the rules of jobgate.client.bundle.unpack: only regular files listed in
  its manifest.json, at paths that stay inside WORK_DIR, each size and sha256 checked.
- ``upload``: send the files of WORK_DIR that match the output globs (the semantics of
  jobgate.client.files.glob_regex) with a presigned POST policy that allows keys under
  this job's output prefix only, then the outputs manifest (path, size, sha256 of each).
- ``sidecar``: create READY_FILE (the container's startupProbe), wait for SIGTERM (the
  kubelet sends it once the job's container ended), then ``upload``.

Exit status 0 when all went well, 1 with a one-line reason on stderr otherwise.
"""

import hashlib
import json
import os
import posixpath
import re
import signal
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeVar

T = TypeVar("T")

ENV = "JOBGATE_STAGING"
MANIFEST = "manifest.json"
FILES = "files/"
RESERVED = ".jobgate"  # names that start so are the stager's own, neither inputs nor outputs
CHUNK = 1 << 20
MODES = ("fetch", "upload", "sidecar")
TERMINATION_LOG = "/dev/termination-log"  # the container status's terminated.message
ATTEMPTS = 5


class Failed(Exception):
    pass


def say(text: str) -> None:
    print(f"jobgate-stager: {text}", file=sys.stderr, flush=True)


def relative(path: str) -> str:
    """`path` normalized, if it is relative and stays inside; else Failed."""
    if not path or "\x00" in path or "\n" in path or "\r" in path or "\\" in path:
        raise Failed(f"{path!r} is not a path")
    if path.startswith("/") or ".." in path.split("/"):
        raise Failed(f"{path!r} would land outside the work directory")
    cleaned = posixpath.normpath(path)
    if cleaned in (".", ""):
        raise Failed(f"{path!r} names the work directory itself")
    return cleaned


def https(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise Failed(f"not an http(s) URL: {url[:8]}…")
    return url


def retried(what: str, call: Callable[[], T]) -> T:
    """call(), again on connection errors and 5xx answers; Failed after ATTEMPTS."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return call()
        except urllib.error.HTTPError as e:
            body = e.read()[:300].decode("utf-8", "replace")
            if (e.code < 500 and e.code != 429) or attempt == ATTEMPTS:
                code = re.search(r"<Code>([^<]+)</Code>", body)
                raise Failed(f"{what}: HTTP {e.code} {code.group(1) if code else body}") from e
        except (urllib.error.URLError, OSError) as e:
            if attempt == ATTEMPTS:
                raise Failed(f"{what}: {getattr(e, 'reason', e)}") from e
        time.sleep(min(2**attempt, 30))
    raise AssertionError


# -- fetch ----------------------------------------------------------------------------


def fetch(config: dict[str, Any], root: str) -> tuple[int, int]:
    os.umask(0)  # directories open to the job's user, files get their manifest mode
    with tempfile.TemporaryFile(dir=root, prefix=RESERVED) as bundle:

        def download() -> None:
            bundle.seek(0)
            bundle.truncate()
            url = https(config["bundle_url"])
            with urllib.request.urlopen(url, timeout=60) as reply:  # noqa: S310 - checked
                while chunk := reply.read(CHUNK):
                    bundle.write(chunk)

        retried("downloading the input bundle", download)
        bundle.seek(0)
        try:
            with tarfile.open(fileobj=bundle, mode="r:") as tar:
                return unpack(tar, config["job_id"], root)
        except (tarfile.TarError, EOFError) as e:
            raise Failed(f"the bundle is truncated or corrupt: {e}") from e


def unpack(tar: tarfile.TarFile, job_id: str, root: str) -> tuple[int, int]:
    try:
        manifest = json.load(tar.extractfile(tar.getmember(MANIFEST)))  # type: ignore[arg-type]
        entries = {relative(e["path"]): e for e in manifest["files"]}
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise Failed(f"the bundle has no valid {MANIFEST}: {e!r}") from e
    if manifest.get("job_id") != job_id:
        raise Failed(f"the bundle was made for job {manifest.get('job_id')}, not {job_id}")
    done: set[str] = set()
    for info in tar:
        if info.name == MANIFEST:
            continue
        if not info.name.startswith(FILES):
            raise Failed(f"bundle member {info.name!r} is outside {FILES}")
        name = relative(info.name[len(FILES) :])
        target = os.path.join(root, name)
        parent = os.path.dirname(target)
        real = os.path.realpath(parent)
        if os.path.exists(parent) and real != root and not real.startswith(root + os.sep):
            raise Failed(f"bundle member {name!r} would land outside the work directory")
        if not info.isreg():
            raise Failed(f"bundle member {name!r} is not a regular file")
        entry = entries.get(name)
        if entry is None:
            raise Failed(f"bundle member {name!r} is not in its manifest")
        if name.split("/")[0].startswith(RESERVED):
            raise Failed(f"input {name!r} would replace a file jobgate keeps there")
        source = tar.extractfile(info)
        assert source is not None  # a regular member
        extract(source, entry, target)
        done.add(name)
    missing = sorted(set(entries) - done)
    if missing:
        raise Failed(
            f"the bundle lacks {len(missing)} file(s) of its manifest, e.g. {missing[0]!r}"
        )
    return len(done), sum(int(e["size"]) for e in entries.values())


def extract(source: IO[bytes], entry: dict[str, Any], target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.islink(target) or (os.path.exists(target) and not os.path.isfile(target)):
        raise Failed(f"input {entry['path']!r} would replace something that is not a file")
    digest, size = hashlib.sha256(), 0
    partial = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.part")
    with open(partial, "wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
        os.unlink(partial)
        raise Failed(
            f"checksum mismatch for {entry['path']!r}: the manifest says {entry['size']} "
            f"bytes, sha256 {entry['sha256'][:12]}…; the bundle holds {size} bytes, "
            f"sha256 {digest.hexdigest()[:12]}…"
        )
    os.chmod(partial, int(entry["mode"]) & 0o777)
    os.rename(partial, target)


# -- upload ---------------------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """jobgate.client.files.glob_regex: * ? [...] within a part, ** any number of parts."""
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
                    raise Failed(f"output glob {pattern!r}: '[' without a closing ']'")
                body = part[i + 1 : end]
                body = "^" + body[1:] if body.startswith("!") else body
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = end
            else:
                out.append(re.escape(c))
            i += 1
        if not last:
            out.append("/")
    return re.compile("".join(out) + r"\Z")


def outputs(root: str, globs: list[str]) -> list[str]:
    """Regular files under `root` (symlinks not followed) that match a glob, sorted."""
    regexes = [glob_regex(g) for g in globs]
    found: list[str] = []
    for here, subdirs, names in os.walk(root, followlinks=False):
        subdirs.sort()
        for name in sorted(names):
            path = os.path.join(here, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if os.path.islink(path) or not os.path.isfile(path) or name.endswith(".part"):
                continue
            if rel.split("/")[0].startswith(RESERVED):
                continue
            if any(r.match(rel) for r in regexes):
                found.append(rel)
    return found


class Form:
    """A multipart/form-data body: the policy's fields, the key, then the file (last, as
    S3 requires), read as it is sent."""

    def __init__(self, fields: dict[str, str], key: str, path: str | None, data: bytes) -> None:
        self.boundary = f"jobgate-{uuid.uuid4().hex}"
        head = "".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in {**fields, "key": key}.items()
        )
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="file"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        self.head, self.path, self.data = head.encode(), path, data
        self.end = f"\r\n--{self.boundary}--\r\n".encode()
        size = os.path.getsize(path) if path else len(data)
        self.length = len(self.head) + size + len(self.end)

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        if self.path is None:
            yield self.data
        else:
            with open(self.path, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
        yield self.end


def post(policy: dict[str, Any], key: str, path: str | None = None, data: bytes = b"") -> None:
    def send() -> None:
        form = Form(policy["fields"], key, path, data)
        headers = {
            "Content-Type": f"multipart/form-data; boundary={form.boundary}",
            "Content-Length": str(form.length),
        }
        url = https(policy["url"])
        request = urllib.request.Request(url, form, headers, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=300) as reply:  # noqa: S310
            reply.read()

    retried(f"uploading {key}", send)


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def upload(config: dict[str, Any], root: str) -> tuple[int, int]:
    head, tail = config["key_head"], config["key_tail"]
    report: dict[str, Any] = {
        "format": 1,
        "job_id": config["job_id"],
        "complete": True,
        "files": [],
    }
    chosen = outputs(root, config["globs"])
    limit = int(config["max_files"])
    try:
        if len(chosen) > limit:
            raise Failed(f"{len(chosen)} files match, more than storage.max_outputs ({limit})")
        for rel in chosen:
            path = os.path.join(root, rel)
            entry = {"path": rel, "size": os.path.getsize(path), "sha256": sha256(path)}
            post(config["policy"], head + rel + tail, path=path)
            report["files"].append(entry)
    except (Failed, OSError) as e:
        report.update(complete=False, reason=str(e))
    failure = None if report["complete"] else report["reason"]
    try:
        post(config["policy"], config["manifest_key"], data=json.dumps(report).encode())
    except Failed as e:
        failure = f"{failure}; and its manifest: {e}" if failure else str(e)
    if failure:
        raise Failed(failure)
    return len(report["files"]), sum(f["size"] for f in report["files"])


def wait_for_sigterm(ready: str) -> None:
    """Block SIGTERM (a signal sent from now on waits for us), say so by creating the
    `ready` file (the container's startupProbe looks for it: the job's container starts
    only then), and wait for it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    with open(ready, "w"):
        pass
    signal.sigwait({signal.SIGTERM})
    os.unlink(ready)


def main(argv: list[str]) -> int:
    if len(argv) != (4 if argv[1:2] == ["sidecar"] else 3) or argv[1] not in MODES:
        say("usage: stager.py fetch|upload WORK_DIR | sidecar WORK_DIR READY_FILE")
        return 2
    mode, root = argv[1], os.path.realpath(argv[2])
    try:
        config = json.loads(os.environ[ENV])
    except (KeyError, ValueError) as e:
        say(f"${ENV} is missing or not JSON ({type(e).__name__})")
        return 2
    if mode == "sidecar":
        wait_for_sigterm(argv[3])
    try:
        files, size = (fetch if mode == "fetch" else upload)(config, root)
    except Failed as e:
        reason = f"{'inputs' if mode == 'fetch' else 'outputs'}: {e}"
        say(reason)
        if os.path.isfile(TERMINATION_LOG):  # the kubelet's, mounted into the container
            with open(TERMINATION_LOG, "w") as f:
                f.write(reason[:4000])
        return 1
    say(f"{'fetched' if mode == 'fetch' else 'uploaded'} {files} file(s), {size} bytes, checked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
