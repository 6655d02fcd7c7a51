"""PodSpec defaults (SetDefaults_PodSpec, SetDefaults_Container) and validation."""

from __future__ import annotations

from typing import Any

from .errors import Cause
from .naming import quote

JsonObj = dict[str, Any]


def _image_pull_policy(image: str) -> str:
    """Always for ``:latest`` or an untagged image without a digest, else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def default_containers(containers: list[JsonObj]) -> None:
    for container in containers:
        if not isinstance(container, dict):
            continue
        image = container.get("image")
        if isinstance(image, str) and image:
            container.setdefault("imagePullPolicy", _image_pull_policy(image))
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def default_pod_spec(spec: JsonObj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    default_containers(spec.get("containers") or [])
    default_containers(spec.get("initContainers") or [])


def validate_pod_spec(spec: Any, field: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [Cause("FieldValueRequired", field, "Required value")]
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not containers or not isinstance(containers, list):
        causes.append(Cause("FieldValueRequired", f"{field}.containers", "Required value"))
        containers = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        where = f"{field}.containers[{index}]"
        if not isinstance(container, dict):
            causes.append(Cause("FieldValueInvalid", where, "Invalid value: not an object"))
            continue
        name = container.get("name")
        if not name:
            causes.append(Cause("FieldValueRequired", f"{where}.name", "Required value"))
        elif name in seen:
            causes.append(
                Cause("FieldValueDuplicate", f"{where}.name", f"Duplicate value: {quote(name)}")
            )
        else:
            seen.add(name)
        if not container.get("image"):
            causes.append(Cause("FieldValueRequired", f"{where}.image", "Required value"))
    policy = spec.get("restartPolicy")
    if policy not in ("Always", "OnFailure", "Never"):
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f"{field}.restartPolicy",
                f'Unsupported value: {quote(policy)}: supported values: "Always", "OnFailure", '
                '"Never"',
            )
        )
    return causes


def qos_class(spec: JsonObj) -> str:
    """Guaranteed when every container limits cpu and memory to its requests."""
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    any_set = False
    guaranteed = bool(containers)
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for resource in ("cpu", "memory"):
            if (
                resource not in limits
                or requests.get(resource, limits[resource]) != limits[resource]
            ):
                guaranteed = False
    if guaranteed and any_set:
        return "Guaranteed"
    return "Burstable" if any_set else "BestEffort"
