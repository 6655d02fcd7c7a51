"""Container logs: lines with the time the kubelet stamped them, and the
PodLogOptions filters (sinceSeconds, sinceTime, tailLines, limitBytes, timestamps)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import timefmt


@dataclass(frozen=True)
class LogLine:
    at: datetime
    text: str  # with its trailing newline, if it had one


@dataclass(frozen=True)
class LogOptions:
    since: datetime | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None
    timestamps: bool = False


class LogStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: dict[tuple[str, str, str], list[LogLine]] = {}

    def append(
        self, namespace: str, pod: str, container: str, text: str, at: datetime | None = None
    ) -> None:
        when = at or timefmt.now()
        pieces = text.splitlines(keepends=True)
        with self._lock:
            lines = self._lines.setdefault((namespace, pod, container), [])
            for piece in pieces:
                if lines and not lines[-1].text.endswith("\n"):
                    lines[-1] = LogLine(lines[-1].at, lines[-1].text + piece)
                else:
                    lines.append(LogLine(when, piece))

    def count(self, namespace: str, pod: str, container: str) -> int:
        with self._lock:
            return len(self._lines.get((namespace, pod, container), []))

    def lines(self, namespace: str, pod: str, container: str, start: int = 0) -> list[LogLine]:
        with self._lock:
            return list(self._lines.get((namespace, pod, container), [])[start:])

    def drop_pod(self, namespace: str, pod: str) -> None:
        with self._lock:
            for key in [k for k in self._lines if k[:2] == (namespace, pod)]:
                del self._lines[key]


def render(lines: list[LogLine], options: LogOptions) -> bytes:
    """The kubelet's order: since, then tail, then timestamps, then the byte limit."""
    selected = [line for line in lines if options.since is None or line.at >= options.since]
    if options.tail_lines is not None:
        selected = selected[-options.tail_lines :] if options.tail_lines > 0 else []
    out = b"".join(format_line(line, options.timestamps) for line in selected)
    if options.limit_bytes is not None:
        out = out[: options.limit_bytes]
    return out


def format_line(line: LogLine, timestamps: bool) -> bytes:
    text = f"{timefmt.rfc3339_nano(line.at)} {line.text}" if timestamps else line.text
    return text.encode()


def since_from_seconds(seconds: int) -> datetime:
    return timefmt.now() - timedelta(seconds=seconds)
