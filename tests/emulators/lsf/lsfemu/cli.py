"""What every emulated command does first: find the state directory, act out faults."""

from __future__ import annotations

import importlib
import sys

from . import config, faults
from .errors import LsfError

VERSION = "IBM Spectrum LSF 10.1.0.0 (LSF emulator)"


def main(command: str, argv: list[str]) -> int:
    """Run one command (its module is ``lsfemu.<command>``, loaded only when needed)."""
    module = importlib.import_module(f".{command}", __package__)
    try:
        if argv[:1] == ["-h"]:
            print(module.USAGE, file=sys.stderr)
            return 0
        if argv[:1] == ["-V"]:
            print(VERSION, file=sys.stderr)
            return 0
        root = config.state_dir(command)
        faults.apply(root, command)
        status: int = module.main(root, argv)
        return status
    except LsfError as error:
        sys.stdout.flush()
        if error.message:
            print(error.message, file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        return 130
