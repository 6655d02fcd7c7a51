"""The LSF backend: `backend` runs bsub/bjobs/bhist/bkill; `script` and `status` are the
pure functions that write job scripts and read LSF's answers."""

from jobgate.workers.backends.lsf.backend import LsfBackend

__all__ = ["LsfBackend"]
