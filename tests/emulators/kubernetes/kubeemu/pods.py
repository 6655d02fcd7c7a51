"""core/v1 Pod: defaults on create, and the pod a Job controller makes from a Job."""

from __future__ import annotations

import copy
from typing import Any

from .errors import Cause
from .jobs import TRACKING_FINALIZER
from .naming import generate
from .podspec import default_pod_spec, qos_class, validate_pod_spec

JsonObj = dict[str, Any]

# What admission and defaulting add to every pod (ServiceAccount admission,
# DefaultTolerationSeconds, Priority).
_TOLERATIONS = [
    {
        "effect": "NoExecute",
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "tolerationSeconds": 300,
    },
    {
        "effect": "NoExecute",
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "tolerationSeconds": 300,
    },
]


def apply_defaults(pod: JsonObj) -> None:
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    default_pod_spec(spec)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault("tolerations", copy.deepcopy(_TOLERATIONS))


def validate_create(pod: JsonObj) -> list[Cause]:
    return validate_pod_spec(pod.get("spec"), "spec")


def initial_status(pod: JsonObj) -> JsonObj:
    """A new pod, not yet scheduled."""
    return {"phase": "Pending", "qosClass": qos_class(pod.get("spec") or {})}


def from_job(job: JsonObj) -> JsonObj:
    """The pod the Job controller creates: template labels and annotations, an
    ownerReference to the Job, the job-tracking finalizer, generateName ``<job>-``."""
    meta = job["metadata"]
    template = copy.deepcopy(job["spec"]["template"])
    template_meta = template.get("metadata") or {}
    pod_meta: JsonObj = {
        "name": generate(meta["name"] + "-"),
        "generateName": meta["name"] + "-",
        "namespace": meta["namespace"],
        "labels": dict(template_meta.get("labels") or {}),
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        "finalizers": [TRACKING_FINALIZER],
    }
    if template_meta.get("annotations"):
        pod_meta["annotations"] = dict(template_meta["annotations"])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": template["spec"]}
    apply_defaults(pod)
    return pod
