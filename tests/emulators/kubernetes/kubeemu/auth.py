"""Bearer-token authentication and a small RBAC: a user's rules allow verbs on
resources (``pods/log`` for a subresource) in API groups and namespaces."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from . import errors

ANONYMOUS = "system:anonymous"


@dataclass(frozen=True)
class Rule:
    """Like an RBAC PolicyRule; ``"*"`` matches anything. ``namespaces=None``: all."""

    verbs: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)
    api_groups: tuple[str, ...] = ("*",)
    namespaces: tuple[str, ...] | None = None

    def allows(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        return (
            ("*" in self.verbs or verb in self.verbs)
            and ("*" in self.api_groups or group in self.api_groups)
            and ("*" in self.resources or resource in self.resources)
            and (self.namespaces is None or namespace in self.namespaces)
        )


@dataclass
class User:
    name: str
    rules: list[Rule] | None  # None: everything allowed


class Authenticator:
    def __init__(self, anonymous: bool) -> None:
        self._lock = threading.Lock()
        self._by_token: dict[str, User] = {}
        self._by_name: dict[str, User] = {}
        self.anonymous = anonymous
        self.add(ANONYMOUS, None, None)

    def add(self, name: str, token: str | None, rules: list[Rule] | None) -> User:
        with self._lock:
            user = self._by_name.get(name) or User(name, rules)
            user.rules = rules
            self._by_name[name] = user
            if token is not None:
                self._by_token[token] = user
            return user

    def revoke(self, token: str) -> None:
        """The token no longer authenticates anyone (a rotated or deleted credential)."""
        with self._lock:
            self._by_token.pop(token, None)

    def set_rules(self, name: str, rules: list[Rule] | None) -> None:
        with self._lock:
            self._by_name[name].rules = rules

    def authenticate(self, authorization: str | None) -> User:
        """The user a request's Authorization header names; 401 when it names none."""
        if not authorization:
            if self.anonymous:
                with self._lock:
                    return self._by_name[ANONYMOUS]
            raise errors.unauthorized()
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            user = self._by_token.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise errors.unauthorized()
        return user

    def allowed(self, user: User, verb: str, group: str, resource: str, namespace: str) -> bool:
        with self._lock:
            rules = user.rules
        if rules is None:
            return True
        return any(r.allows(verb, group, resource, namespace) for r in rules)
