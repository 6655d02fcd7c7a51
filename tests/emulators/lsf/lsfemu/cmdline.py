"""A small option parser for bjobs, bkill, bhist and bqueues (LSF's own getopt style)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import LsfError


@dataclass
class Parsed:
    flags: set[str] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


def parse(command: str, argv: list[str], flags: set[str], valued: set[str], usage: str) -> Parsed:
    parsed = Parsed()
    pos = 0
    while pos < len(argv):
        arg = argv[pos]
        if arg == "--":
            parsed.args += argv[pos + 1 :]
            break
        if arg.startswith("-") and len(arg) > 1 and not arg[1:].isdigit():
            if arg in flags:
                parsed.flags.add(arg)
            elif arg in valued:
                if pos + 1 >= len(argv):
                    raise LsfError(
                        f"{command}: option requires an argument -- {arg.lstrip('-')}\n{usage}"
                    )
                parsed.values[arg] = argv[pos + 1]
                pos += 1
            elif arg[:2] in valued and len(arg) > 2:
                parsed.values[arg[:2]] = arg[2:]
            else:
                raise LsfError(f"{command}: illegal option -- {arg.lstrip('-')}\n{usage}")
        else:
            parsed.args.append(arg)
        pos += 1
    return parsed
