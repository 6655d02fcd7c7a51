"""The scheduler options a job may pass itself (``slurm.extra_args``, ``lsf.extra_args``,
``lsf.directives``), read the way sbatch and bsub read them.

A job's own options come after jobgate's and override them, so they are read here
option by option before anything is submitted: an option jobgate sets itself (the job
name it finds its jobs by, output paths, arrays, dependencies, ``--parsable``) is
refused always; any other option only if the cluster's profile lists it
(``job_options``); and what an allowed resource option asks for (CPUs, memory, GPUs,
walltime) is checked against the policy limits like the typed fields. Only options in
the tables below can be allowed: for those the parser knows whether the next word is
the option's value, which is what a smuggled option would hide behind. Long options
must be spelt in full (sbatch would take ``--out`` for ``--output``), short options one
to a word (``-c4`` is ``-c 4``; ``-Hc4`` is refused), and a word that is not an option is
refused (sbatch would run it as the script).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum


class Arity(Enum):
    """What follows an option: nothing, a value (``--opt=v``, ``--opt v``, ``-o v``,
    ``-ov``), or a value only when attached with '=' (sbatch's ``--exclusive[=user]``)."""

    FLAG = "flag"
    VALUE = "value"
    OPTIONAL = "optional"


@dataclass(frozen=True)
class Option:
    """One scheduler option under all its spellings; `owned`: jobgate sets it itself;
    `resource`: what its value asks for, checked against the policy."""

    names: tuple[str, ...]
    arity: Arity = Arity.VALUE
    owned: bool = False
    resource: str | None = None

    @property
    def name(self) -> str:
        return self.names[0]


@dataclass(frozen=True)
class Passed:
    """An option as a job passed it: as spelt, and its value if it has one."""

    option: Option
    spelled: str
    value: str | None


#: A value bsub surely reads as attached to a one-letter option: -n4, -n2,8, -W1:30.
_ATTACHED_NUMBER = re.compile(r"^[0-9][0-9,:]*$")


class OptionsError(ValueError):
    """A word of a job's scheduler options that cannot be taken as an option."""


@dataclass(frozen=True)
class OptionTable:
    """A scheduler's options, and how its command line spells them: `long` options
    (sbatch's ``--name[=value]``) or single-dash names (bsub's ``-cwd value``)."""

    program: str
    options: tuple[Option, ...]
    gnu_long: bool
    by_name: dict[str, Option] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = {name: option for option in self.options for name in option.names}
        object.__setattr__(self, "by_name", table)

    def lookup(self, name: str) -> Option | None:
        return self.by_name.get(name)

    def parse(self, words: Sequence[str]) -> list[Passed]:
        """The options in `words`, as the scheduler would read them; OptionsError names
        the first word it would read otherwise."""
        passed: list[Passed] = []
        i = 0
        while i < len(words):
            option, spelled, value = self._split(words[i])
            if option.arity is Arity.VALUE and value is None:
                if i + 1 == len(words):
                    raise OptionsError(f"{spelled} needs a value")
                i += 1
                value = words[i]
            passed.append(Passed(option, spelled, value))
            i += 1
        return passed

    def _split(self, word: str) -> tuple[Option, str, str | None]:
        """(option, its name as spelt, the value attached to it) of one word."""
        if not word.startswith("-") or word in ("-", "--"):
            raise OptionsError(
                f"{word!r} is not an option ({self.program} would take it as the job's "
                "script or its arguments)"
            )
        if self.gnu_long and word.startswith("--"):
            name, equals, value = word.partition("=")
            option = self._known(name)
            if equals and option.arity is Arity.FLAG:
                raise OptionsError(f"{name} takes no value")
            return option, name, value if equals else None
        exact = self.lookup(word)
        if exact is not None:
            return exact, word, None
        if word.startswith("--"):
            raise OptionsError(f"{word} is not a {self.program} option jobs may pass")
        option = self._known(word[:2])
        if option.arity is not Arity.VALUE:
            raise OptionsError(f"{word}: give each option in a word of its own")
        if not self.gnu_long and not _ATTACHED_NUMBER.match(word[2:]):
            # bsub has options of several letters (-cwd, -oo, -gpu): "-cwd/x" is no -c.
            raise OptionsError(f"{word}: give the value of {word[:2]} as a word of its own")
        return option, word[:2], word[2:]

    def _known(self, name: str) -> Option:
        option = self.lookup(name)
        if option is None:
            raise OptionsError(f"{name} is not a {self.program} option jobs may pass")
        return option


def _opt(*names: str, arity: Arity = Arity.VALUE, owned: bool = False,
         resource: str | None = None) -> Option:  # fmt: skip
    return Option(names, arity, owned, resource)


FLAG, OPTIONAL = Arity.FLAG, Arity.OPTIONAL

SBATCH = OptionTable(
    "sbatch",
    (
        # jobgate's own: how it names, finds, feeds and follows a job.
        _opt("--job-name", "-J", owned=True),
        _opt("--output", "-o", owned=True),
        _opt("--error", "-e", owned=True),
        _opt("--input", "-i", owned=True),
        _opt("--open-mode", owned=True),
        _opt("--array", "-a", owned=True),
        _opt("--chdir", "-D", owned=True),
        _opt("--dependency", "-d", owned=True),
        _opt("--parsable", arity=FLAG, owned=True),
        _opt("--wrap", owned=True),
        _opt("--export", owned=True),
        _opt("--export-file", owned=True),
        _opt("--get-user-env", arity=OPTIONAL, owned=True),
        _opt("--clusters", "--cluster", "-M", owned=True),
        _opt("--hold", "-H", arity=FLAG, owned=True),
        _opt("--wait", "-W", arity=FLAG, owned=True),
        _opt("--test-only", arity=FLAG, owned=True),
        _opt("--uid", owned=True),
        _opt("--gid", owned=True),
        _opt("--quiet", "-Q", arity=FLAG, owned=True),
        _opt("--kill-on-invalid-dep", owned=True),
        # Resources, checked against the policy limits.
        _opt("--cpus-per-task", "-c", resource="cpus_per_task"),
        _opt("--ntasks", "-n", resource="ntasks"),
        _opt("--nodes", "-N", resource="nodes"),
        _opt("--ntasks-per-node", resource="ntasks_per_node"),
        _opt("--mem", resource="mem"),
        _opt("--mem-per-cpu", resource="mem_per_cpu"),
        _opt("--mem-per-gpu", resource="mem_per_gpu"),
        _opt("--gres", resource="gres"),
        _opt("--gpus", "-G", resource="gpus"),
        _opt("--gpus-per-node", resource="gpus_per_node"),
        _opt("--gpus-per-task", resource="gpus_per_task"),
        _opt("--time", "-t", resource="time"),
        _opt("--time-min", resource="time"),
        # Others a profile may let jobs pass.
        _opt("--partition", "-p"),
        _opt("--account", "-A"),
        _opt("--qos", "-q"),
        _opt("--constraint", "-C"),
        _opt("--reservation"),
        _opt("--licenses", "-L"),
        _opt("--exclusive", arity=OPTIONAL),
        _opt("--oversubscribe", "-s", arity=FLAG),
        _opt("--nodelist", "-w"),
        _opt("--exclude", "-x"),
        _opt("--hint"),
        _opt("--distribution", "-m"),
        _opt("--mail-type"),
        _opt("--mail-user"),
        _opt("--comment"),
        _opt("--nice", arity=OPTIONAL),
        _opt("--priority"),
        _opt("--begin", "-b"),
        _opt("--deadline"),
        _opt("--signal"),
        _opt("--requeue", arity=FLAG),
        _opt("--no-requeue", arity=FLAG),
        _opt("--tmp"),
        _opt("--switches"),
        _opt("--wckey"),
        _opt("--mcs-label"),
        _opt("--propagate", arity=OPTIONAL),
    ),
    gnu_long=True,
)

BSUB = OptionTable(
    "bsub",
    (
        _opt("-J", owned=True),
        _opt("-o", owned=True),
        _opt("-oo", owned=True),
        _opt("-e", owned=True),
        _opt("-eo", owned=True),
        _opt("-i", owned=True),
        _opt("-is", owned=True),
        _opt("-cwd", owned=True),
        _opt("-outdir", owned=True),
        _opt("-env", owned=True),
        _opt("-w", owned=True),
        _opt("-ti", arity=FLAG, owned=True),
        _opt("-K", arity=FLAG, owned=True),
        _opt("-I", arity=FLAG, owned=True),
        _opt("-Ip", arity=FLAG, owned=True),
        _opt("-Is", arity=FLAG, owned=True),
        _opt("-IS", arity=FLAG, owned=True),
        _opt("-ISp", arity=FLAG, owned=True),
        _opt("-ISs", arity=FLAG, owned=True),
        _opt("-IX", arity=FLAG, owned=True),
        _opt("-H", arity=FLAG, owned=True),
        _opt("-L", owned=True),
        _opt("-Zs", arity=FLAG, owned=True),
        _opt("-n", resource="slots"),
        _opt("-M", resource="memlimit"),
        _opt("-R", resource="requirements"),
        _opt("-gpu", resource="gpu"),
        _opt("-W", resource="runlimit"),
        _opt("-q"),
        _opt("-P"),
        _opt("-G"),
        _opt("-app"),
        _opt("-sla"),
        _opt("-m"),
        _opt("-x", arity=FLAG),
        _opt("-r", arity=FLAG),
        _opt("-rn", arity=FLAG),
        _opt("-B", arity=FLAG),
        _opt("-N", arity=FLAG),
        _opt("-u"),
        _opt("-b"),
        _opt("-t"),
        _opt("-We"),
        _opt("-c"),
        _opt("-sp"),
        _opt("-g"),
        _opt("-Jd"),
    ),
    gnu_long=False,
)


def check_allowed_names(table: OptionTable, names: Iterable[str]) -> list[str]:
    """Profile `job_options` as given; ValueError for a name the table does not know or
    one jobgate owns."""
    names = list(names)
    for name in names:
        option = table.lookup(name)
        if option is None:
            raise ValueError(f"{name} is not a {table.program} option jobgate knows")
        if option.owned:
            raise ValueError(f"{name}: jobgate sets it itself; jobs can never pass it")
    return names


def refusals(table: OptionTable, passed: Iterable[Passed], allowed: Iterable[str]) -> list[str]:
    """Why each option passed may not be: owned by jobgate, or not in `allowed` (the
    profile's job_options, any spelling allowing every other)."""
    allowed_options = {table.lookup(name) for name in allowed} - {None}
    reasons = []
    for p in passed:
        if p.option.owned:
            reasons.append(f"{p.spelled}: jobgate sets it itself; drop it")
        elif p.option not in allowed_options:
            shown = ", ".join(sorted(o.name for o in allowed_options if o)) or "none"
            reasons.append(
                f"{p.spelled}: not allowed here (jobs may pass: {shown}); to allow it, "
                "list it in the cluster profile's job_options"
            )
    return reasons


def owned_or_unreadable(table: OptionTable, words: Sequence[str]) -> str | None:
    """Why `words` can never be passed (a word that is no option, an option jobgate
    owns), whatever the profile allows; None if they can."""
    try:
        passed = table.parse(words)
    except OptionsError as e:
        return str(e)
    owned = [p.spelled for p in passed if p.option.owned]
    return f"{', '.join(owned)}: jobgate sets it itself" if owned else None


#: sbatch's input environment variables whose option is not --<name in lower case>.
_SBATCH_ENV = {"SBATCH_ARRAY_INX": "--array", "SBATCH_MEM_PER_NODE": "--mem",
               "SBATCH_TIMELIMIT": "--time", "SLURM_CLUSTERS": "--clusters",
               "SLURM_HINT": "--hint"}  # fmt: skip
#: Variables that choose the scheduler's own configuration: never a job's to set.
_CONFIG_ENV = ("SLURM_CONF", "LSF_ENVDIR", "LSF_BINDIR", "LSF_SERVERDIR", "LSF_LIBDIR")


def env_options(table: OptionTable, env: Mapping[str, str]) -> list[Passed]:
    """The options a job's `env` passes by the back door: sbatch reads SBATCH_* (and
    SLURM_CLUSTERS, SLURM_HINT) from its environment as options, and bsub reads LSB_* and
    LSF_* (a default queue, project, the configuration). Each SBATCH_* variable is the
    option it stands for (spelt ``NAME (--option)``); any LSB_*/LSF_* variable, a configuration
    variable and an SBATCH_* variable of an option jobgate does not know are OptionsError."""
    passed = []
    for name, value in sorted(env.items()):
        if name in _CONFIG_ENV:
            raise OptionsError(f"env {name} chooses the scheduler's configuration")
        if table is BSUB and name.startswith(("LSB_", "LSF_")):
            raise OptionsError(f"env {name}: bsub and LSF read LSB_*/LSF_* variables")
        if table is not SBATCH or not (name.startswith("SBATCH_") or name in _SBATCH_ENV):
            continue
        option_name = _SBATCH_ENV.get(name) or "--" + name[7:].lower().replace("_", "-")
        option = table.lookup(option_name)
        if option is None:
            raise OptionsError(f"env {name}: sbatch reads it as an option jobs may not pass")
        flag = option.arity is Arity.FLAG
        passed.append(Passed(option, f"{name} ({option.name})", None if flag else value))
    return passed


def env_refusal(table: OptionTable, env: Mapping[str, str]) -> str | None:
    """`owned_or_unreadable` for the options a job's env passes (see `env_options`)."""
    try:
        passed = env_options(table, env)
    except OptionsError as e:
        return str(e)
    owned = [p.spelled for p in passed if p.option.owned]
    return f"env {', '.join(owned)}: jobgate sets it itself" if owned else None


def directive_words(directives: Iterable[str]) -> list[str]:
    """The words of LSF directives (without '#BSUB'), quoted as LSF reads them."""
    words: list[str] = []
    for line in directives:
        try:
            words += shlex.split(line)
        except ValueError as e:
            raise OptionsError(f"directive {line!r}: {e}") from None
    return words


# -- What resource options ask for ----------------------------------------------------

_INT = re.compile(r"^[0-9]{1,9}$")
_RANGE = re.compile(r"^([0-9]{1,9})(?:-([0-9]{1,9}))?$")
_SLURM_MEM = re.compile(r"^([0-9]{1,12})([KMGT])?B?$", re.IGNORECASE)
_LSF_MEM = re.compile(r"^([0-9]{1,12})(?:([KMGT])B?)?!?$", re.IGNORECASE)
_MB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_UNLIMITED = {"UNLIMITED", "INFINITE", "-1"}
_RUSAGE_MEM = re.compile(r"\bmem=([0-9]{1,12})(?:\.[0-9]+)?([KMGT])?B?\b", re.IGNORECASE)
_GPU_NUM = re.compile(r"(?:^|:)num=([0-9]{1,9})(?=$|[:/])")


@dataclass
class Asked:
    """What a job's options ask of the scheduler, in the policy's units; None: the option
    was not passed. `memory_mb` and `walltime_s` are math.inf for no limit."""

    cpus: int | None = None
    memory_mb: float | None = None
    gpus: int | None = None
    walltime_s: float | None = None


def _int(p: Passed) -> int:
    if p.value is None or not _INT.match(p.value):
        raise OptionsError(f"{p.spelled} {p.value!r}: not a number")
    return int(p.value)


def _max_of_range(p: Passed, separator: str = "-") -> int:
    value = (p.value or "").replace(separator, "-")
    match = _RANGE.match(value)
    if not match:
        raise OptionsError(f"{p.spelled} {p.value!r}: not N or N{separator}M")
    return max(int(n) for n in match.groups() if n is not None)


def _mb(p: Passed, pattern: re.Pattern[str], default_unit: str) -> int:
    match = pattern.match(p.value or "")
    if not match:
        raise OptionsError(f"{p.spelled} {p.value!r}: not an amount of memory")
    return math.ceil(int(match.group(1)) * _MB[(match.group(2) or default_unit).upper()])


def slurm_time_s(text: str) -> float:
    """Slurm's --time: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; UNLIMITED, INFINITE and 0
    (Slurm: "no time limit") are inf."""
    seconds = _slurm_clock_s(text)
    return math.inf if seconds == 0 else seconds


def _slurm_clock_s(text: str) -> float:
    if text.upper() in _UNLIMITED:
        return math.inf
    days, dash, clock = text.rpartition("-") if "-" in text else ("", "", text)
    parts = clock.split(":")
    if (dash and not _INT.match(days)) or not all(_INT.match(x) for x in parts):
        raise OptionsError(f"--time {text!r}: not a Slurm time")
    if len(parts) > 3:
        raise OptionsError(f"--time {text!r}: not a Slurm time")
    numbers = [int(x) for x in parts]
    if dash:  # D-H, D-H:M, D-H:M:S
        hours, minutes, seconds = [*numbers, 0, 0][:3]
        return int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
    if len(numbers) == 1:
        return numbers[0] * 60
    if len(numbers) == 2:
        return numbers[0] * 60 + numbers[1]
    return numbers[0] * 3600 + numbers[1] * 60 + numbers[2]


_GRES_GPU = re.compile(r"^(?:gres/)?gpu(?::[A-Za-z0-9_.-]{1,64})?(?::[0-9]{1,9})?$")
_GPUS = re.compile(r"^(?:[A-Za-z0-9_.-]{1,64}:)?[0-9]{1,9}$")


def _gpu_count(p: Passed, text: str, pattern: re.Pattern[str]) -> int:
    """GPUs of one --gres item (gpu, gpu:N, gpu:type, gpu:type:N) or of a --gpus* value
    ([type:]N); anything else is an error, never a guess."""
    if not pattern.match(text):
        raise OptionsError(f"{p.spelled} {p.value!r}: not a GPU count jobgate can read")
    last = text.rsplit(":", 1)[-1]
    return int(last) if _INT.match(last) else 1


def slurm_asked(passed: Iterable[Passed], cpus: int, memory_mb: int | None, gpus: int) -> Asked:
    """What sbatch options ask for over the typed resources (`cpus`, `memory_mb`, `gpus`,
    which jobgate passes as --cpus-per-task, --mem and --gres=gpu:N): CPUs of all tasks,
    memory and GPUs of all nodes, the walltime (--time replaces the typed one). Only what
    the options touch is filled in."""
    got: dict[str, int | float] = {}
    for p in passed:
        kind = p.option.resource
        if kind is None:
            continue
        if kind in ("cpus_per_task", "ntasks", "ntasks_per_node"):
            got[kind] = _int(p)
        elif kind == "nodes":
            got[kind] = _max_of_range(p)
        elif kind in ("mem", "mem_per_cpu", "mem_per_gpu"):
            got[kind] = _mb(p, _SLURM_MEM, "M")
        elif kind == "gres":
            items = (p.value or "").split(",")
            gpu_items = [i for i in items if i.split(":")[0] in ("gpu", "gres/gpu")]
            got[kind] = sum(_gpu_count(p, i, _GRES_GPU) for i in gpu_items)
        elif kind in ("gpus", "gpus_per_node", "gpus_per_task"):
            got[kind] = _gpu_count(p, p.value or "", _GPUS)
        elif kind == "time":
            got[kind] = max(got.get(kind, 0), slurm_time_s(p.value or ""))
    nodes = int(got.get("nodes", 1))
    tasks = max(int(got.get("ntasks", 1)), nodes * int(got.get("ntasks_per_node", 1)), nodes)
    total_cpus = int(got.get("cpus_per_task", cpus)) * tasks
    total_gpus = max(int(got.get("gres", gpus)) * nodes, int(got.get("gpus", 0)),
                     int(got.get("gpus_per_node", 0)) * nodes,
                     int(got.get("gpus_per_task", 0)) * tasks)  # fmt: skip
    # --mem=0 (and 0 per CPU or GPU) asks for all the memory of each node: unlimited.
    given = {k: got[k] or math.inf for k in ("mem", "mem_per_cpu", "mem_per_gpu") if k in got}
    memory = [given.get("mem", memory_mb or 0) * nodes,
              given.get("mem_per_cpu", 0) * total_cpus,
              given.get("mem_per_gpu", 0) * total_gpus]  # fmt: skip
    asked = Asked()
    if {"cpus_per_task", "ntasks", "nodes", "ntasks_per_node"} & got.keys():
        asked.cpus = total_cpus
    if {"gres", "gpus", "gpus_per_node", "gpus_per_task", "nodes"} & got.keys() and total_gpus:
        asked.gpus = total_gpus
    if {"mem", "mem_per_cpu", "mem_per_gpu", "nodes"} & got.keys():
        asked.memory_mb = max(memory) or None
    if "time" in got:
        asked.walltime_s = got["time"]
    return asked


def lsf_asked(passed: Iterable[Passed], units: str) -> Asked:
    """What bsub options ask for: slots (-n min,max: max), memory (-M, rusage[mem=] in
    -R, in the cluster's LSF_UNIT_FOR_LIMITS `units` unless a unit is given), GPUs
    (-gpu num=N; '-' is one), run limit (-W [hours:]minutes)."""
    asked = Asked()
    unit = units[0]
    for p in passed:
        kind, value = p.option.resource, p.value or ""
        if kind == "slots":
            asked.cpus = _max_of_range(p, ",")
        elif kind == "memlimit":
            asked.memory_mb = max(asked.memory_mb or 0, _mb(p, _LSF_MEM, unit))
        elif kind == "requirements":
            for amount, suffix in _RUSAGE_MEM.findall(value):
                mb = math.ceil(int(amount) * _MB[(suffix or unit).upper()])
                asked.memory_mb = max(asked.memory_mb or 0, mb)
        elif kind == "gpu":
            match = _GPU_NUM.search(value)
            asked.gpus = int(match.group(1)) if match else 1
        elif kind == "runlimit":
            clock = value.split("/")[0]
            parts = clock.split(":")
            if not 1 <= len(parts) <= 2 or not all(_INT.match(x) for x in parts):
                raise OptionsError(f"-W {value!r}: not [hours:]minutes")
            minutes = int(parts[-1]) + (int(parts[0]) * 60 if len(parts) == 2 else 0)
            asked.walltime_s = minutes * 60
    return asked
