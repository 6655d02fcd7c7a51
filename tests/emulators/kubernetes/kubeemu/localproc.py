"""One container as a local process group, the way a container runtime treats a
container's processes: started in a session of its own, stdout and stderr merged into
one stream handed on line by line (as the CRI logger writes them), the rest of the
group killed once the main process has exited, SIGTERM and then SIGKILL after the
grace period when it is stopped, and an exit by signal reported as 128 + signal.

The thread that calls wait() reaps the process; a reader thread per container turns
its output into log text. Nothing polls: waits block on the process or on events.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

READ_CHUNK = 65536
MAX_LINE = 16 * 1024  # a longer line is handed on in pieces, as containerd's logger does
READER_JOIN_S = 5.0


class LocalContainer:
    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        output: Callable[[str], None],
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self._output = output
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._reaped = False
        self._done = threading.Event()  # reaped, or never to be started
        self._kill_timer: threading.Timer | None = None
        self.stopped_for: str | None = None  # why it was told to stop, if it was

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> bool:
        """Start the process; False when it was told to stop before it started.
        Raises OSError when it cannot be executed."""
        with self._lock:
            if self.stopped_for is not None:
                return False
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError:
                self._done.set()
                raise
        self._reader = threading.Thread(
            target=self._read, name=f"kubeemu-log-{self._proc.pid}", daemon=True
        )
        self._reader.start()
        return True

    def wait(self) -> int:
        """Block until the main process exits; kill what it left in its group, reap it,
        let the reader hand on the last output. Returns the exit code (128 + signal)."""
        proc = self._proc
        assert proc is not None
        assert self._reader is not None
        if hasattr(os, "waitid"):  # exited but not reaped: its group id cannot be reused
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            with self._lock:
                self._signal(signal.SIGKILL)
                code = proc.wait()
                self._reaped = True
        else:  # (macOS before Python 3.13) reaped first; a group left behind keeps its id
            code = proc.wait()
            with self._lock:
                self._signal(signal.SIGKILL)
                self._reaped = True
        with self._lock:
            if self._kill_timer is not None:
                self._kill_timer.cancel()
        self._reader.join(READER_JOIN_S)
        if proc.stdout is not None and not self._reader.is_alive():
            proc.stdout.close()
        self._done.set()
        return 128 - code if code < 0 else code

    def terminate(self, grace_s: float, why: str) -> None:
        """SIGTERM to the group, SIGKILL after ``grace_s``; the first request wins."""
        with self._lock:
            if self.stopped_for is not None:
                return
            self.stopped_for = why
            if self._proc is None:
                self._done.set()
                return
            self._signal(signal.SIGTERM)
            self._kill_timer = threading.Timer(max(grace_s, 0), self._kill_now)
            self._kill_timer.daemon = True
            self._kill_timer.start()

    def kill(self, why: str) -> None:
        """SIGKILL to the group at once (also after an earlier terminate)."""
        with self._lock:
            if self.stopped_for is None:
                self.stopped_for = why
            if self._proc is None:
                self._done.set()
                return
            self._signal(signal.SIGKILL)

    def wait_done(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    def _kill_now(self) -> None:
        with self._lock:
            self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        """Signal the process group, unless it has been reaped (its id may be reused)."""
        if self._proc is None or self._reaped:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signum)

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        while chunk := os.read(fd, READ_CHUNK):
            pending += decoder.decode(chunk)
            cut = pending.rfind("\n") + 1  # whole lines only, unless one grows too long
            if not cut and len(pending) >= MAX_LINE:
                cut = len(pending)
            if cut:
                self._output(pending[:cut])
                pending = pending[cut:]
        pending += decoder.decode(b"", final=True)
        if pending:
            self._output(pending)
