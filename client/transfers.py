"""Moving job files between the client and S3 through presigned URLs.

The client holds no S3 credentials: a worker of the cluster hands it short-lived
presigned URLs (``jobgate.stage`` for the parts of an input bundle, ``jobgate.retrieve``
for outputs and logs), and the client talks to S3 with them over plain HTTP(S). The
bundle streams straight from the input files into multipart parts, several in flight;
a part that fails is sent again (with backoff) without restarting the upload. Downloads
land in a ``.part`` file, renamed into place once the sha256 matches. Presigned URLs
are never written to an exception, a log or a record: errors name the part or file.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from jobgate.client.errors import StorageError

PARTS_IN_FLIGHT = 4
DOWNLOADS_IN_FLIGHT = 8
ATTEMPTS = 5
FIRST_PAUSE_S = 0.5
HTTP_TIMEOUT_S = 60.0
COPY_BUFFER = 1 << 20


class TransferProgress(Protocol):
    """What a transfer tells about itself: a task with a total, bytes done, the end."""

    def start(self, description: str, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def finish(self) -> None: ...


class Silent:
    """No progress shown."""

    def start(self, description: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def finish(self) -> None:
        pass


class RichProgress:
    """A rich progress bar on standard error: bytes, speed, time left."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task: Any = None

    def start(self, description: str, total_bytes: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(description, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        self._progress.advance(self._task, nbytes)

    def finish(self) -> None:
        self._progress.stop()


def default_progress(progress: TransferProgress | None) -> TransferProgress:
    """`progress` if given, else a progress bar when standard error is a terminal."""
    if progress is not None:
        return progress
    return RichProgress() if sys.stderr.isatty() else Silent()


# -- HTTP with retries -------------------------------------------------------------


def _s3_code(error: urllib.error.HTTPError) -> str:
    try:
        body = error.read(4096).decode(errors="replace")
    except OSError:
        body = ""
    code = re.search(r"<Code>([^<]{1,100})</Code>", body)
    return f"{error.code} {code.group(1) if code else error.reason}"


def _retrying(what: str, attempt: Callable[[], Any]) -> Any:
    """Run one HTTP exchange, again after a pause when S3 is unreachable, throttles or
    fails (5xx); a refusal (4xx) is final. StorageError names `what`, never the URL."""
    pause_s = FIRST_PAUSE_S
    for n in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code != 429:
                raise StorageError(f"{what}: S3 refused it ({_s3_code(e)})") from None
            problem = f"S3 answered {_s3_code(e)}"
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e.strerror or type(e).__name__
            problem = f"S3 is unreachable ({reason})"
        if n == ATTEMPTS:
            raise StorageError(f"{what}: {problem}, {ATTEMPTS} times") from None
        time.sleep(pause_s)
        pause_s *= 2
    raise AssertionError("unreachable")


def put(url: str, body: bytes, what: str) -> None:
    """PUT `body` to a presigned URL."""

    def attempt() -> None:
        request = urllib.request.Request(url, data=body, method="PUT")  # noqa: S310 - https/http from the worker
        request.add_header("Content-Type", "application/octet-stream")
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as reply:  # noqa: S310
            reply.read()

    _retrying(what, attempt)


# -- uploading a bundle ------------------------------------------------------------


class PartUploader:
    """A file-like sink cut into parts of `part_size`, each PUT to its presigned URL
    while the next is filled; at most PARTS_IN_FLIGHT parts are held in memory."""

    def __init__(self, urls: dict[int, str], part_size: int, label: str) -> None:
        self._urls, self._part_size, self._label = urls, part_size, label
        self._chunks: list[bytes] = []
        self._filled = 0
        self._number = 0
        self._pool = ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="jobgate-upload")
        self._slots = threading.BoundedSemaphore(PARTS_IN_FLIGHT * 2)
        self._sent: list[Future[None]] = []
        self.sent_bytes = 0

    @property
    def parts(self) -> int:
        return self._number

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._filled += len(data)
        if self._filled >= self._part_size:
            held = b"".join(self._chunks)
            while len(held) >= self._part_size:
                self._send(held[: self._part_size])
                held = held[self._part_size :]
            self._chunks, self._filled = [held], len(held)
        return len(data)

    def flush(self) -> None:
        pass

    def _send(self, part: bytes) -> None:
        for future in self._sent:
            if future.done() and future.exception() is not None:
                future.result()  # the first failed part ends the upload
        self._number += 1
        url = self._urls.get(self._number)
        if url is None:
            raise StorageError(f"{self._label}: the bundle needs more parts than were presigned")
        self._slots.acquire()
        number = self._number

        def send() -> None:
            try:
                put(url, part, f"{self._label}: part {number}")
            finally:
                self._slots.release()

        self._sent.append(self._pool.submit(send))
        self.sent_bytes += len(part)

    def close(self) -> None:
        """Send the last part and wait for every part; the first failure is raised."""
        try:
            if self._filled or self._number == 0:
                self._send(b"".join(self._chunks))
                self._chunks, self._filled = [], 0
            for future in self._sent:
                future.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abandon(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- downloading ---------------------------------------------------------------------


def download(url: str, target: Path, size: int, sha256: str, progress: TransferProgress) -> None:
    """Fetch a presigned URL into `target`, checked against its size and sha256."""
    partial = target.with_name(f".{target.name}.part")

    def attempt() -> None:
        digest, got = hashlib.sha256(), 0
        with (
            urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as reply,  # noqa: S310
            partial.open("wb") as out,
        ):
            while chunk := reply.read(COPY_BUFFER):
                digest.update(chunk)
                out.write(chunk)
                got += len(chunk)
                progress.advance(len(chunk))
        if got != size or digest.hexdigest() != sha256:
            partial.unlink(missing_ok=True)
            raise StorageError(
                f"{target.name}: checksum mismatch: expected {size} bytes, sha256 "
                f"{sha256[:12]}…; got {got} bytes, sha256 {digest.hexdigest()[:12]}…"
            )

    try:
        _retrying(f"downloading {target.name}", attempt)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(target)


def download_all(
    items: list[tuple[str, Path, int, str]], progress: TransferProgress
) -> Iterator[Path]:
    """Download (url, target, size, sha256) items, several at a time; yields each target
    once it is in place."""
    with ThreadPoolExecutor(DOWNLOADS_IN_FLIGHT, thread_name_prefix="jobgate-download") as pool:
        futures = [
            (target, pool.submit(download, url, target, size, sha, progress))
            for url, target, size, sha in items
        ]
        try:
            for target, future in futures:
                future.result()
                yield target
        finally:
            for _, future in futures:
                future.cancel()


@contextmanager
def shown(progress: TransferProgress, description: str, total: int) -> Iterator[TransferProgress]:
    progress.start(description, total)
    try:
        yield progress
    finally:
        progress.finish()
