"""The base of jobgate's tasks: a message whose arguments do not fit its task is refused.

Anything that can write to the queues can send a task, with any arguments. A task's
signature is its wire contract: types and ranges are annotations (pydantic's), and each
message's arguments are checked against them, strictly, before the task's code runs. A
message that does not fit is refused in one log line naming the argument; a task a
client waits on answers ``{"error": ...}`` (a SpecInvalidError), as for any jobgate error.
"""

from __future__ import annotations

import functools
import inspect
import logging
import reprlib
import typing
from typing import Any

from celery import Task
from pydantic import TypeAdapter, ValidationError

from jobgate.client.errors import SpecInvalidError

log = logging.getLogger(__name__)

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


class CheckedTask(Task[Any, Any]):
    """A task that refuses arguments its signature does not admit."""

    @functools.cached_property
    def _parameters(self) -> tuple[inspect.Signature, dict[str, TypeAdapter[Any]]]:
        signature = inspect.signature(self.run)
        hints = typing.get_type_hints(self.run, include_extras=True)
        return signature, {name: TypeAdapter(hints[name]) for name in signature.parameters}

    def _problem(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """What is wrong with these arguments for this task; None: nothing."""
        signature, adapters = self._parameters
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:
            return f"{e} (got args {_REPR.repr(list(args))}, kwargs {_REPR.repr(kwargs)})"
        for name, value in bound.arguments.items():
            try:
                adapters[name].validate_python(value, strict=True)
            except ValidationError as e:
                why = "; ".join(error["msg"] for error in e.errors())
                return f"argument {name}={_REPR.repr(value)}: {why}"
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        problem = self._problem(args, kwargs)
        if problem is None:
            return super().__call__(*args, **kwargs)
        log.error("refused %s[%s]: %s", self.name, self.request.id, problem)
        if self.ignore_result:
            return None
        return {"error": {"type": SpecInvalidError.__name__, "message": f"{self.name}: {problem}"}}
