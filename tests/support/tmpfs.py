"""A small file system of the test's own: a tmpfs mounted over a directory (the tests run
as root), so that a job can fill it up for real and the test empty it again."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: A size that one `head -c` fills in an instant.
SIZE = "1m"


@contextmanager
def small_file_system(directory: Path, size: str = SIZE) -> Iterator[Path]:
    """Mount a tmpfs of `size` over `directory` (which must exist) for the block; unmounted
    at the end (lazily, should a process still hold a file there)."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                   check=True, capture_output=True, timeout=30)  # fmt: skip
    try:
        yield directory
    finally:
        unmounted = subprocess.run(["umount", str(directory)], capture_output=True, timeout=30)
        if unmounted.returncode != 0:
            subprocess.run(["umount", "--lazy", str(directory)], check=True, timeout=30)
