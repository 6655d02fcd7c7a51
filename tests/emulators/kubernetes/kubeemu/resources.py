"""The resource types the emulator serves, with what discovery says about each."""

from __future__ import annotations

from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[tuple[str, tuple[str, ...]], ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """schema.GroupResource.String(): ``jobs.batch``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        """schema.GroupKind.String(): ``Job.batch``, ``Pod``."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def has_subresource(self, name: str) -> bool:
        return any(sub == name for sub, _ in self.subresources)


JOBS = ResourceType(
    group="batch",
    version="v1",
    plural="jobs",
    singular="job",
    kind="Job",
    namespaced=True,
    categories=("all",),
    subresources=(("status", ("get", "patch", "update")),),
)
PODS = ResourceType(
    group="",
    version="v1",
    plural="pods",
    singular="pod",
    kind="Pod",
    namespaced=True,
    short_names=("po",),
    categories=("all",),
    subresources=(("log", ("get",)), ("status", ("get", "patch", "update"))),
)
NAMESPACES = ResourceType(
    group="",
    version="v1",
    plural="namespaces",
    singular="namespace",
    kind="Namespace",
    namespaced=False,
    short_names=("ns",),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
)

SECRETS = ResourceType(
    group="",
    version="v1",
    plural="secrets",
    singular="secret",
    kind="Secret",
    namespaced=True,
)

ALL = (JOBS, PODS, NAMESPACES, SECRETS)
BY_GVR = {(rt.group, rt.version, rt.plural): rt for rt in ALL}


def groups() -> dict[str, list[ResourceType]]:
    """Group name ("" for core) to its resource types, in serving order."""
    out: dict[str, list[ResourceType]] = {}
    for rt in ALL:
        out.setdefault(rt.group, []).append(rt)
    return out
