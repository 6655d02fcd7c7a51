"""A redis-server whose only users are the ones `jobgate acl` generates (loaded from an
aclfile, default user off), plus an admin for the tests' own look-ups."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from jobgate.client import acl
from scripts import devstack

ADMIN = "admin"


@dataclass(frozen=True)
class AclUser:
    """One generated user: its tenant, role, name and password."""

    tenant: str
    role: acl.Role
    name: str
    password: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.name}:{self.password}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A plain redis-py client logged in as this user."""
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)


class AclRedis:
    """redis-server with `user default off`, an admin, and for each tenant one user of
    each role (a worker confined to `clusters`), all loaded from one generated aclfile."""

    def __init__(self, directory: Path, tenants: Sequence[str], clusters: Sequence[str]) -> None:
        self.admin_password = secrets.token_hex(16)
        self.server = devstack.RedisServer(directory, auth=(ADMIN, self.admin_password))
        self.users: dict[tuple[str, str], AclUser] = {}
        lines = ["user default off", f"user {ADMIN} on >{self.admin_password} ~* &* +@all"]
        for tenant in tenants:
            for role in acl.ROLES:
                user = AclUser(tenant, role, f"{tenant}-{role}", secrets.token_hex(16),
                               self.server.port)  # fmt: skip
                access = acl.grant(role, tenant, clusters=clusters if role == "worker" else ())
                rules = acl.user_rules(user.name, access, user.password)
                lines.append(acl.render(user.name, rules, "aclfile"))
                self.users[tenant, role] = user
        self.aclfile = directory / "users.acl"
        directory.mkdir(parents=True, exist_ok=True)
        self.aclfile.write_text("\n".join(lines) + "\n")
        self.server.extra_args = ("--aclfile", str(self.aclfile))

    def start(self) -> AclRedis:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def user(self, tenant: str, role: acl.Role) -> AclUser:
        return self.users[tenant, role]

    def admin(self) -> redis.Redis:
        return self.server.client()

    def denials(self) -> list[dict[str, Any]]:
        """ACL LOG: every refusal since the last `forget_denials`, newest first."""
        with self.admin() as client:
            entries: list[dict[str, Any]] = client.acl_log()
        return entries

    def forget_denials(self) -> None:
        with self.admin() as client:
            client.acl_log_reset()


def refused(attempt: Any) -> bool:
    """Whether calling `attempt` is refused by ACL (NOPERM); anything else is re-raised.
    Each attempt should use a connection of its own (a refused SUBSCRIBE leaves none
    subscribed, an allowed one would)."""
    try:
        attempt()
    except redis.exceptions.NoPermissionError:
        return True
    return False
