"""bsub's options: from the command line and from ``#BSUB`` lines of a job script.

Options that change nothing on a one-host emulator (scheduling hints, mail,
accounting) are accepted and recorded; interactive and block modes are refused,
since the emulator cannot act them out.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from .errors import LsfError

#: Options that take a value.
VALUE_OPTIONS = frozenset(
    {
        "-a", "-alloc_flags", "-app", "-b", "-C", "-c", "-clusters", "-cn_cu", "-cn_mem",
        "-core_isolation", "-csm", "-cwd", "-D", "-data", "-datagrp", "-E", "-Ep", "-e",
        "-eo", "-eptl", "-env", "-ext", "-F", "-f", "-freq", "-G", "-g", "-gpu", "-hostfile",
        "-i", "-is", "-J", "-Jd", "-jsm", "-k", "-L", "-Lp", "-ln_mem", "-ln_slots", "-M",
        "-m", "-mig", "-n", "-network", "-nnodes", "-o", "-oo", "-outdir", "-P", "-p", "-ptl",
        "-Q", "-q", "-R", "-rcacct", "-S", "-s", "-sla", "-smt", "-sp", "-stage",
        "-step_cgroup", "-T", "-t", "-U", "-u", "-v", "-W", "-We", "-w", "-wa", "-wt",
    }
)  # fmt: skip
#: Options that take no value.
FLAG_OPTIONS = frozenset(
    {"-B", "-H", "-N", "-r", "-rn", "-ul", "-x", "-XF", "-Zs", "-ar", "-datachk", "-hl"}
)
#: Options that make bsub interactive or make it wait: not emulated.
REFUSED_OPTIONS = frozenset(
    {"-I", "-Ip", "-Is", "-IS", "-ISp", "-ISs", "-IX", "-K", "-pack", "-tty", "-jsdl",
     "-jsdl_strict"}
)  # fmt: skip
#: Options that may be given more than once, all values kept.
REPEATABLE = frozenset({"-R"})
#: Pairs of options that set one thing: -o appends and -oo overwrites the same file.
_EXCLUSIVE = (("-o", "-oo"), ("-e", "-eo"))

USAGE = (
    "Usage: bsub [-h] [-V] [-H] [-x] [-r | -rn] [-N] [-B] [-J job_name] [-q queue_name]\n"
    "            [-n min_processors[,max_processors]] [-R res_req] [-M mem_limit]\n"
    "            [-W [hour:]minute] [-o out_file | -oo out_file] [-e err_file | -eo err_file]\n"
    "            [-cwd dir] [-L login_shell] [-env env_spec] [-w depend_cond] [-P project]\n"
    "            [-gpu gpu_req] [-i in_file] [command [argument ...]]"
)


@dataclass
class Options:
    """Options given to bsub, each option's last value (all values for -R)."""

    values: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    resreqs: list[str] = field(default_factory=list)

    def set(self, option: str, value: str) -> None:
        if option in REPEATABLE:
            self.resreqs.append(value)
        for pair in _EXCLUSIVE:
            if option in pair:
                for other in pair:
                    self.values.pop(other, None)
        self.values[option] = value

    def absorb(self, later: Options) -> None:
        """Add options given after these ones (a later #BSUB line)."""
        for option, value in later.values.items():
            if option not in REPEATABLE:
                self.set(option, value)
        for value in later.resreqs:
            self.set("-R", value)
        self.flags |= later.flags

    def get(self, option: str) -> str | None:
        return self.values.get(option)

    def overridden_by(self, other: Options) -> Options:
        """These options with ``other``'s on top (the command line beats #BSUB lines)."""
        merged = Options(dict(self.values), set(self.flags), list(self.resreqs))
        merged.values.update(other.values)
        merged.flags |= other.flags
        if other.resreqs:
            merged.resreqs = list(other.resreqs)
        # -o/-oo and -e/-eo are one setting each: the overriding form wins.
        for pair in _EXCLUSIVE:
            given = [opt for opt in pair if opt in other.values]
            if given:
                for opt in pair:
                    if opt not in given:
                        merged.values.pop(opt, None)
        return merged


def _illegal(option: str) -> LsfError:
    return LsfError(f"bsub: illegal option -- {option.lstrip('-')}\n{USAGE}")


def parse(args: list[str], *, allow_command: bool = True) -> tuple[Options, list[str]]:
    """Split bsub arguments into options and the command (the first non-option word on)."""
    options = Options()
    pos = 0
    while pos < len(args):
        arg = args[pos]
        if arg == "--":
            pos += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg in REFUSED_OPTIONS:
            raise LsfError(
                f"bsub: option {arg} (interactive or blocking jobs) is not supported by the "
                "LSF emulator. Job not submitted."
            )
        if arg in FLAG_OPTIONS or arg in {"-h", "-V"}:
            options.flags.add(arg)
            pos += 1
            continue
        if arg in VALUE_OPTIONS:
            if pos + 1 >= len(args):
                raise LsfError(f"bsub: option requires an argument -- {arg.lstrip('-')}\n{USAGE}")
            options.set(arg, args[pos + 1])
            pos += 2
            continue
        # A one-letter option with its value attached: -qnormal, -n4.
        if arg[:2] in VALUE_OPTIONS and len(arg) > 2:
            options.set(arg[:2], arg[2:])
            pos += 1
            continue
        raise _illegal(arg)
    command = args[pos:]
    if command and not allow_command:
        raise LsfError(f"bsub: unexpected argument in #BSUB line: {command[0]}. Job not submitted.")
    return options, command


def parse_directives(script: str) -> Options:
    """The options of every line that starts with ``#BSUB`` (in upper case)."""
    options = Options()
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#BSUB"):
            continue
        body = stripped[len("#BSUB") :]
        if body and not body[0].isspace():
            continue
        try:
            words = shlex.split(body, comments=True)
        except ValueError as error:
            raise LsfError(f"bsub: bad #BSUB line: {stripped}. Job not submitted.") from error
        found, _ = parse(words, allow_command=False)
        options.absorb(found)
    return options
