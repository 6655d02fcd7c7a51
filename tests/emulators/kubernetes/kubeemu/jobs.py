"""batch/v1 Job: defaults (SetDefaults_Job), the selector and labels the job strategy
generates, and validation on create and update (ValidateJob, ValidateJobUpdate)."""

from __future__ import annotations

import json
from typing import Any

from .errors import Cause
from .naming import label_value_causes, quote
from .podspec import default_pod_spec, validate_pod_spec

JsonObj = dict[str, Any]

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"


def controller_labels(name: str, uid: str) -> dict[str, str]:
    return {
        CONTROLLER_UID: uid,
        JOB_NAME: name,
        LEGACY_CONTROLLER_UID: uid,
        LEGACY_JOB_NAME: name,
    }


def apply_defaults(job: JsonObj) -> None:
    """What decoding a batch/v1 Job defaults (before the strategy adds the selector)."""
    spec = job.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("completionMode", "NonIndexed")
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") else 6
    spec.setdefault("suspend", False)
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )
    template = spec.setdefault("template", {})
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        pod_spec = template.setdefault("spec", {})
        if isinstance(pod_spec, dict):
            default_pod_spec(pod_spec)


def generate_selector(job: JsonObj) -> None:
    """The job strategy's PrepareForCreate: selector and template labels from the uid."""
    meta = job["metadata"]
    spec = job["spec"]
    labels = controller_labels(meta["name"], meta["uid"])
    template_meta = spec["template"].setdefault("metadata", {})
    template_labels = template_meta.setdefault("labels", {})
    template_labels.update(labels)
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {CONTROLLER_UID: meta["uid"]}}
    # Decoding the stored object defaults empty Job labels to the template's labels.
    if not meta.get("labels"):
        meta["labels"] = dict(template_labels)


def validate_create(job: JsonObj) -> list[Cause]:
    spec = job.get("spec")
    causes: list[Cause] = []
    if not isinstance(spec, dict):
        return [Cause("FieldValueRequired", "spec", "Required value")]
    if spec.get("selector") and not spec.get("manualSelector"):
        causes.append(
            Cause(
                "FieldValueInvalid",
                "spec.selector",
                f"Invalid value: {json.dumps(spec['selector'])}: `selector` not auto-generated",
            )
        )
    for field in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"spec.{field}",
                    f"Invalid value: {quote(value)}: must be greater than or equal to 0",
                )
            )
    template = spec.get("template")
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    causes += validate_pod_spec(pod_spec, "spec.template.spec")
    if isinstance(pod_spec, dict) and pod_spec.get("restartPolicy") not in ("OnFailure", "Never"):
        causes = [c for c in causes if c.field != "spec.template.spec.restartPolicy"]
        causes.append(
            Cause(
                "FieldValueNotSupported",
                "spec.template.spec.restartPolicy",
                f"Unsupported value: {quote(pod_spec.get('restartPolicy'))}: supported values: "
                '"OnFailure", "Never"',
            )
        )
    name = job["metadata"].get("name") or ""
    causes += label_value_causes("spec.template.labels", name)
    return causes


_IMMUTABLE = ("selector", "template", "completionMode", "podFailurePolicy", "manualSelector")


def validate_update(old: JsonObj, new: JsonObj) -> list[Cause]:
    """Fields of a Job's spec that may not change once it exists."""
    causes = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    for field in _IMMUTABLE:
        if old_spec.get(field) != new_spec.get(field):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"spec.{field}",
                    f"Invalid value: {json.dumps(new_spec.get(field))}: field is immutable",
                )
            )
    if old_spec.get("completions") != new_spec.get("completions") and not (
        new_spec.get("completionMode") == "Indexed"
        and new_spec.get("completions") == new_spec.get("parallelism")
    ):
        causes.append(
            Cause(
                "FieldValueInvalid",
                "spec.completions",
                f"Invalid value: {quote(new_spec.get('completions'))}: field is immutable",
            )
        )
    return causes
