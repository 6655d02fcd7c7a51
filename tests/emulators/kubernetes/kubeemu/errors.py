"""API errors and the ``Status`` objects the API server answers them with.

Wording follows k8s.io/apimachinery/pkg/api/errors (NewNotFound, NewAlreadyExists,
NewConflict, NewInvalid, NewBadRequest, NewForbidden, NewTooManyRequests, ...) and
k8s.io/apiserver/pkg/endpoints/handlers/responsewriters (forbidden message).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .resources import ResourceType

JsonObj = dict[str, Any]


@dataclass(frozen=True)
class Cause:
    """One field.Error: ``reason`` is its StatusCause type (FieldValueRequired, ...)."""

    reason: str
    field: str
    message: str  # "Required value: ..." / 'Invalid value: "x": ...'

    def text(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class ApiError(Exception):
    code: int
    reason: str
    message: str
    details: JsonObj | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def with_message(self, message: str) -> ApiError:
        self.message = message
        return self

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> JsonObj:
        body: JsonObj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(rt: ResourceType, name: str) -> JsonObj:
    out: JsonObj = {"name": name}
    if rt.group:
        out["group"] = rt.group
    out["kind"] = rt.plural  # the API server puts the resource here, not the kind
    return out


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def namespace_not_found(name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'namespaces "{name}" not found', {"name": name, "kind": "namespaces"}
    )


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name)
    )


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        _details(rt, name),
    )


def invalid(rt: ResourceType, name: str, causes: list[Cause]) -> ApiError:
    texts = [c.text() for c in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: JsonObj = {"name": name} if name else {}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.kind
    details["causes"] = [
        {"reason": c.reason, "message": c.message, "field": c.field} for c in causes
    ]
    return ApiError(422, "Invalid", f'{rt.group_kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        {},
    )


def unsupported_media_type(content_type: str, accepted: tuple[str, ...]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(
    rt: ResourceType, name: str, user: str, verb: str, subresource: str, namespace: str
) -> ApiError:
    resource = f"{rt.plural}/{subresource}" if subresource else rt.plural
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    why = f'User "{user}" cannot {verb} resource "{resource}" in API group "{rt.group}" {where}'
    subject = f'{rt.qualified} "{name}"' if name else rt.qualified
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", _details(rt, name))


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": retry_after},
        {"Retry-After": str(retry_after)},
    )


def internal_error(message: str) -> ApiError:
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )


def service_unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def gateway_timeout(message: str) -> ApiError:
    return ApiError(504, "Timeout", message, {})


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
