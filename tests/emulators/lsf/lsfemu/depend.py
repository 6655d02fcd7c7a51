"""Dependency expressions of ``bsub -w``: parse once at submission, evaluate while pending.

Supported: ``done(ID)``, ``ended(ID)``, ``exit(ID[, op code])``, ``started(ID)``,
``post_done(ID)``/``post_err(ID)`` (there is no post-execution here: they act as
done/exit), a bare job ID (same as ``done``), ``ID[index]`` for one array element,
a job name (quoted or not, ``*`` as wildcard) instead of an ID, and ``&&``, ``||``,
``!`` and parentheses.

A condition is SATISFIED, WAITING, or NEVER (it can no longer become true, e.g.
done() of a job that exited).
"""

from __future__ import annotations

import enum
import fnmatch
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import LsfError
from .model import Job, Task
from .store import Store


class Status(enum.Enum):
    SATISFIED = "satisfied"
    WAITING = "waiting"
    NEVER = "never"


#: Pending reasons LSF gives for the two ways a dependency holds a job back.
WAITING_REASON = "Job dependency condition not satisfied"
NEVER_REASON = "Dependency condition invalid or never satisfied"

_CONDITIONS = {"done", "ended", "exit", "started", "post_done", "post_err"}
_OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||[!(),])|(?P<quoted>\"[^\"]*\"|'[^']*')|(?P<word>[^\s&|!(),\"']+))"
)
_JOB_REF = re.compile(r"^(?P<id>\d+)(?:\[(?P<index>\d+)\])?$")


@dataclass(frozen=True)
class Ref:
    """A job named in a condition: an ID (maybe with an array index) or a name pattern."""

    jobid: int | None = None
    index: int | None = None
    name: str | None = None

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        return f"{self.jobid}[{self.index}]" if self.index is not None else str(self.jobid)


@dataclass(frozen=True)
class Cond:
    kind: str
    ref: Ref
    test: tuple[str, int] | None = None


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Node
    right: Node


Node = Cond | Not | BinOp

#: Finds the tasks a reference names, among the jobs visible to the submitting user.
Lookup = Callable[[Ref], Sequence[tuple[Job, Task]]]


def _syntax_error() -> LsfError:
    return LsfError("Dependency condition syntax error. Job not submitted.")


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _syntax_error()
        tokens.append(match.group(match.lastgroup or "word"))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _syntax_error()
        self.pos += 1
        return token

    def expression(self) -> Node:
        node = self.conjunction()
        while self.peek() == "||":
            self.take()
            node = BinOp("||", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.factor()
        while self.peek() == "&&":
            self.take()
            node = BinOp("&&", node, self.factor())
        return node

    def factor(self) -> Node:
        token = self.take()
        if token == "!":
            return Not(self.factor())
        if token == "(":
            node = self.expression()
            self.take(")")
            return node
        if token.lower() in _CONDITIONS and self.peek() == "(":
            return self.condition(token.lower())
        return Cond("done", _ref(token))

    def condition(self, kind: str) -> Cond:
        self.take("(")
        ref = _ref(self.take())
        test = None
        if self.peek() == ",":
            self.take()
            test = _exit_test(self.take())
            if kind != "exit":
                raise _syntax_error()
        self.take(")")
        return Cond(kind, ref, test)


def _ref(token: str) -> Ref:
    if token in {"&&", "||", "!", "(", ")", ","}:
        raise _syntax_error()
    if token[:1] in {'"', "'"}:
        return Ref(name=token[1:-1])
    match = _JOB_REF.match(token)
    if match is None:
        return Ref(name=token)
    index = int(match["index"]) if match["index"] else None
    return Ref(jobid=int(match["id"]), index=index)


def _exit_test(token: str) -> tuple[str, int]:
    match = re.fullmatch(r"(==|!=|>=|<=|>|<)?(\d+)", token)
    if match is None:
        raise _syntax_error()
    return (match[1] or "==", int(match[2]))


def parse(text: str) -> Node:
    tokens = _tokens(text)
    if not tokens:
        raise _syntax_error()
    parser = _Parser(tokens)
    node = parser.expression()
    if parser.peek() is not None:
        raise _syntax_error()
    return node


def conditions(node: Node) -> list[Cond]:
    if isinstance(node, Cond):
        return [node]
    if isinstance(node, Not):
        return conditions(node.operand)
    return conditions(node.left) + conditions(node.right)


def _evaluate_cond(cond: Cond, tasks: Sequence[tuple[Job, Task]]) -> Status:
    if not tasks:
        return Status.NEVER
    states = [task.stat for _, task in tasks]
    if cond.kind == "started":
        pending = any(stat in {"PEND", "PSUSP"} for stat in states)
        return Status.WAITING if pending else Status.SATISFIED
    if cond.kind == "ended":
        ended = all(task.finished for _, task in tasks)
        return Status.SATISFIED if ended else Status.WAITING
    wanted = "DONE" if cond.kind in {"done", "post_done"} else "EXIT"
    for _, task in tasks:
        if task.finished and task.stat != wanted:
            return Status.NEVER
        if task.finished and cond.test is not None:
            op, code = cond.test
            if not _OPERATORS[op](task.exit_code or 0, code):
                return Status.NEVER
    return Status.SATISFIED if all(stat == wanted for stat in states) else Status.WAITING


def evaluate(node: Node, lookup: Lookup) -> Status:
    if isinstance(node, Cond):
        return _evaluate_cond(node, lookup(node.ref))
    if isinstance(node, Not):
        inner = evaluate(node.operand, lookup)
        # A condition that is true now stays true (every condition is about final states).
        return Status.NEVER if inner is Status.SATISFIED else Status.SATISFIED
    left, right = evaluate(node.left, lookup), evaluate(node.right, lookup)
    both = {left, right}
    if node.op == "&&":
        if Status.NEVER in both:
            return Status.NEVER
        return Status.SATISFIED if both == {Status.SATISFIED} else Status.WAITING
    if Status.SATISFIED in both:
        return Status.SATISFIED
    return Status.NEVER if both == {Status.NEVER} else Status.WAITING


def name_matches(job: Job, pattern: str) -> bool:
    """Whether a job's name matches a -J / dependency pattern (``*`` is a wildcard)."""
    return fnmatch.fnmatchcase(job.name, pattern)


def job_lookup(store: Store, user: str) -> Lookup:
    """Resolve references against the jobs in ``store``; names match ``user``'s jobs only."""

    def lookup(ref: Ref) -> list[tuple[Job, Task]]:
        if ref.jobid is not None:
            job = store.load(ref.jobid)
            if job is None:
                return []
            return [(job, t) for t in job.tasks if ref.index in (None, t.index)]
        return [
            (job, task)
            for job in store.all_jobs()
            if job.user == user and name_matches(job, ref.name or "")
            for task in job.tasks
        ]

    return lookup
