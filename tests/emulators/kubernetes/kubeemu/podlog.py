"""GET /api/v1/namespaces/{ns}/pods/{name}/log: the API server picks the container
(LogLocation in pkg/registry/core/pod/strategy.go), the kubelet refuses a container
that has not started (validateContainerLogStatus in pkg/kubelet/kubelet_pods.go)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from . import crud, errors, timefmt
from .cluster import Cluster
from .logs import LogOptions, format_line, render, since_from_seconds
from .request import Request, Response
from .resources import PODS

JsonObj = dict[str, Any]
FOLLOW_POLL_S = 0.1


def _names(containers: list[JsonObj]) -> str:
    return " ".join(c.get("name", "") for c in containers)


def pick_container(pod: JsonObj, wanted: str | None) -> str:
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    init = spec.get("initContainers") or []
    name = pod["metadata"]["name"]
    if not wanted:
        if len(containers) == 1:
            return str(containers[0]["name"])
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        message = (
            f"a container name must be specified for pod {name}, choose one of: "
            f"[{_names(containers)}]"
        )
        if init:
            message += f" or one of the init containers: [{_names(init)}]"
        raise errors.bad_request(message)
    if not any(c.get("name") == wanted for c in containers + init):
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def _options(req: Request) -> LogOptions:
    since_seconds = req.int_param("sinceSeconds")
    since_time = req.param("sinceTime")
    tail = req.int_param("tailLines")
    limit = req.int_param("limitBytes")
    causes = []
    if since_seconds is not None and since_time:
        causes.append(
            errors.Cause(
                "FieldValueForbidden",
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            )
        )
    if since_seconds is not None and since_seconds < 1:
        causes.append(
            errors.Cause(
                "FieldValueInvalid", "sinceSeconds", "Invalid value: must be greater than 0"
            )
        )
    if tail is not None and tail < 0:
        causes.append(
            errors.Cause(
                "FieldValueInvalid",
                "tailLines",
                "Invalid value: must be greater than or equal to 0",
            )
        )
    if limit is not None and limit < 1:
        causes.append(
            errors.Cause("FieldValueInvalid", "limitBytes", "Invalid value: must be greater than 0")
        )
    if causes:
        raise errors.ApiError(
            422,
            "Invalid",
            'PodLogOptions "" is invalid: ' + "; ".join(f"{c.field}: {c.message}" for c in causes),
        )
    since = None
    if since_seconds is not None:
        since = since_from_seconds(since_seconds)
    elif since_time:
        try:
            since = timefmt.parse(since_time)
        except ValueError:
            raise errors.bad_request(f'invalid value for sinceTime: "{since_time}"') from None
    return LogOptions(since, tail, limit, req.flag("timestamps"))


def _status_of(pod: JsonObj, container: str) -> JsonObj | None:
    status = pod.get("status") or {}
    for entry in (status.get("containerStatuses") or []) + (
        status.get("initContainerStatuses") or []
    ):
        if entry.get("name") == container:
            return dict(entry)
    return None


def _check_started(pod: JsonObj, container: str, previous: bool) -> None:
    """The kubelet's refusals, word for word."""
    name = pod["metadata"]["name"]
    status = _status_of(pod, container)
    if status is None:
        raise errors.bad_request(f'container "{container}" in pod "{name}" is not available')
    state = status.get("state") or {}
    last = status.get("lastState") or {}
    if previous:
        if not last.get("terminated"):
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        return
    if state.get("running") or state.get("terminated") or last.get("terminated"):
        return
    waiting = state.get("waiting")
    if waiting is None:
        raise errors.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start - no logs yet'
        )
    reason = waiting.get("reason", "")
    if reason == "ErrImagePull":
        why = "image can't be pulled"
    elif reason == "ImagePullBackOff":
        why = "trying and failing to pull image"
    else:
        why = reason
    raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {why}')


def _running(cluster: Cluster, namespace: str, name: str, container: str) -> bool:
    pod = cluster.store.get(PODS, namespace, name)
    if pod is None:
        return False
    status = _status_of(pod, container) or {}
    return bool((status.get("state") or {}).get("running"))


def _follow(
    cluster: Cluster, namespace: str, name: str, container: str, start: int, options: LogOptions
) -> Iterator[bytes]:
    seen = start
    while not cluster.stopping.is_set():
        running = _running(cluster, namespace, name, container)
        fresh = cluster.logs.lines(namespace, name, container, seen)
        seen += len(fresh)
        for line in fresh:
            yield format_line(line, options.timestamps)
        if not running:
            return
        time.sleep(FOLLOW_POLL_S)


def read(cluster: Cluster, namespace: str, name: str, req: Request) -> Response:
    pod = crud.get(cluster, PODS, namespace, name)
    container = pick_container(pod, req.param("container"))
    options = _options(req)
    if not (pod.get("spec") or {}).get("nodeName"):
        return Response(200, b"", "text/plain")  # no node: the API server streams nothing
    previous = req.flag("previous")
    _check_started(pod, container, previous)
    if previous:
        return Response(200, b"", "text/plain")
    lines = cluster.logs.lines(namespace, name, container)
    body = render(lines, options)
    if req.flag("follow") and _running(cluster, namespace, name, container):
        return Response(
            200,
            body,
            "text/plain",
            stream=_follow(cluster, namespace, name, container, len(lines), options),
        )
    return Response(200, body, "text/plain")
