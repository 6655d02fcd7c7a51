"""What the scheduler and the kubelet write into a pod's status, shaped as the API
reference's PodStatus, PodCondition, ContainerStatus and ContainerState* are.

Each function takes the pod document and changes it in place.
"""

from __future__ import annotations

import hashlib
from typing import Any

from . import timefmt
from .cluster import NODE_IP, NODE_NAME

JsonObj = dict[str, Any]

POD_IP = "10.244.0.{}"
CONDITION_ORDER = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


def _now() -> str:
    return timefmt.rfc3339(timefmt.now())


def _containers(pod: JsonObj, only: str | None) -> list[JsonObj]:
    containers = pod["spec"].get("containers") or []
    return [c for c in containers if only is None or c.get("name") == only]


def _hex(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def resolved_image(image: str) -> str:
    """docker.io/library/busybox:latest for busybox, as containerd reports it."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return name


def set_condition(
    status: JsonObj, kind: str, value: bool, reason: str | None = None, message: str | None = None
) -> None:
    conditions = status.setdefault("conditions", [])
    wanted = "True" if value else "False"
    existing = next((c for c in conditions if c["type"] == kind), None)
    if existing is None:
        existing = {"type": kind, "status": wanted, "lastProbeTime": None}
        conditions.append(existing)
        existing["lastTransitionTime"] = _now()
    elif existing["status"] != wanted:
        existing["lastTransitionTime"] = _now()
    existing["status"] = wanted
    for key, text in (("reason", reason), ("message", message)):
        if text:
            existing[key] = text
        else:
            existing.pop(key, None)
    conditions.sort(
        key=lambda c: CONDITION_ORDER.index(c["type"]) if c["type"] in CONDITION_ORDER else 99
    )


def _container_status(pod: JsonObj, container: JsonObj) -> JsonObj:
    statuses = pod["status"].setdefault("containerStatuses", [])
    for entry in statuses:
        if entry["name"] == container["name"]:
            return dict(entry)
    return {
        "name": container["name"],
        "state": {},
        "lastState": {},
        "ready": False,
        "restartCount": 0,
        "image": container.get("image", ""),
        "imageID": "",
        "started": False,
    }


def _put_status(pod: JsonObj, entry: JsonObj) -> None:
    statuses = [
        s for s in pod["status"].get("containerStatuses") or [] if s["name"] != entry["name"]
    ]
    statuses.append(entry)
    order = [c["name"] for c in pod["spec"].get("containers") or []]
    statuses.sort(key=lambda s: order.index(s["name"]) if s["name"] in order else 99)
    pod["status"]["containerStatuses"] = statuses


def _unready(pod: JsonObj, reason: str, names: list[str] | None = None) -> None:
    status = pod["status"]
    if names is None:
        names = [s["name"] for s in status.get("containerStatuses") or [] if not s.get("ready")]
    message = f"containers with unready status: [{' '.join(names)}]" if names else None
    set_condition(status, "Ready", False, reason, message)
    set_condition(status, "ContainersReady", False, reason, message)


def schedule(pod: JsonObj, index: int = 2) -> None:
    """Bind to the one node: nodeName, hostIP, startTime, PodScheduled True."""
    if pod["spec"].get("nodeName"):
        return
    pod["spec"]["nodeName"] = NODE_NAME
    status = pod["status"]
    status.pop("conditions", None)
    set_condition(status, "PodReadyToStartContainers", False)
    set_condition(status, "Initialized", True)
    set_condition(status, "PodScheduled", True)
    status["hostIP"] = NODE_IP
    status["hostIPs"] = [{"ip": NODE_IP}]
    status["startTime"] = _now()
    for container in _containers(pod, None):
        entry = _container_status(pod, container)
        entry["state"] = {"waiting": {"reason": "ContainerCreating"}}
        _put_status(pod, entry)
    _unready(pod, "ContainersNotReady")
    status["phase"] = "Pending"
    status["podIP"] = POD_IP.format(index)
    status["podIPs"] = [{"ip": status["podIP"]}]


def unschedulable(pod: JsonObj, message: str) -> None:
    status = pod["status"]
    status["phase"] = "Pending"
    status.pop("conditions", None)
    set_condition(status, "PodScheduled", False, "Unschedulable", message)


def waiting(pod: JsonObj, reason: str, message: str | None, container: str | None) -> None:
    schedule(pod)
    if reason != "ContainerCreating":
        set_condition(pod["status"], "PodReadyToStartContainers", True)
    for spec in _containers(pod, container):
        entry = _container_status(pod, spec)
        state: JsonObj = {"reason": reason}
        if message:
            state["message"] = message
        entry.update(state={"waiting": state}, ready=False, started=False)
        _put_status(pod, entry)
    _unready(pod, "ContainersNotReady")
    pod["status"]["phase"] = "Pending" if not _any_running(pod) else "Running"


def _any_running(pod: JsonObj) -> bool:
    return any(
        "running" in s.get("state", {}) for s in pod["status"].get("containerStatuses") or []
    )


def running(pod: JsonObj, container: str | None) -> None:
    schedule(pod)
    set_condition(pod["status"], "PodReadyToStartContainers", True)
    uid = pod["metadata"]["uid"]
    for spec in _containers(pod, container):
        entry = _container_status(pod, spec)
        restarts = entry.get("restartCount", 0)
        image = resolved_image(spec.get("image", ""))
        entry.update(
            state={"running": {"startedAt": _now()}},
            ready=True,
            started=True,
            image=image,
            imageID=f"{image.rsplit(':', 1)[0]}@sha256:{_hex(image)}",
            containerID=f"containerd://{_hex(uid + spec['name'] + str(restarts))}",
        )
        _put_status(pod, entry)
    statuses = pod["status"]["containerStatuses"]
    if all(s.get("ready") for s in statuses):
        set_condition(pod["status"], "Ready", True)
        set_condition(pod["status"], "ContainersReady", True)
    else:
        _unready(pod, "ContainersNotReady")
    pod["status"]["phase"] = "Running"


def terminated(
    pod: JsonObj, exit_code: int, reason: str, container: str | None, message: str | None = None
) -> None:
    """The container exits (``message``: the runtime's, e.g. for StartError). With
    restartPolicy OnFailure a failed one is restarted (CrashLoopBackOff, restartCount
    + 1); otherwise, once every container has exited, the pod is Succeeded (all exited
    0) or Failed."""
    if not _any_running(pod):
        running(pod, container)
    policy = pod["spec"].get("restartPolicy", "Always")
    name = pod["metadata"]["name"]
    for spec in _containers(pod, container):
        entry = _container_status(pod, spec)
        started = (entry.get("state", {}).get("running") or {}).get("startedAt", _now())
        done: JsonObj = {
            "containerID": entry.get("containerID", ""),
            "exitCode": exit_code,
            "finishedAt": _now(),
            "reason": reason,
            "startedAt": started,
        }
        if message:
            done["message"] = message
        restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
        if restart:
            entry.update(
                state={
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off 10s restarting failed container={spec['name']} "
                        f"pod={name}_{pod['metadata']['namespace']}({pod['metadata']['uid']})",
                    }
                },
                lastState={"terminated": done},
                restartCount=entry.get("restartCount", 0) + 1,
                ready=False,
                started=False,
            )
        else:
            entry.update(state={"terminated": done}, ready=False, started=False)
        _put_status(pod, entry)
    statuses = pod["status"]["containerStatuses"]
    finished = [s["state"]["terminated"] for s in statuses if "terminated" in s.get("state", {})]
    if len(finished) < len(pod["spec"].get("containers") or []):
        _unready(pod, "ContainersNotReady")
        return
    failed = any(t["exitCode"] != 0 for t in finished)
    pod["status"]["phase"] = "Failed" if failed else "Succeeded"
    set_condition(pod["status"], "PodReadyToStartContainers", False)
    reason_text = "PodFailed" if failed else "PodCompleted"
    set_condition(pod["status"], "Initialized", True, None if failed else "PodCompleted")
    _unready(pod, reason_text, [])
