"""An emulator of IBM Spectrum LSF's bsub, bjobs, bkill, bhist and bqueues for tests.

See README.md next to this package. ``shutdown(state_dir)`` ends every process
an emulated cluster started.
"""

from .stop import shutdown

__all__ = ["shutdown"]
