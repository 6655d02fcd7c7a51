"""One HTTP request as the API code sees it, and the answers it can give."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import errors

JsonObj = dict[str, Any]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def flag(self, name: str) -> bool:
        """A boolean query parameter, read as Go's strconv.ParseBool reads it."""
        return (self.param(name) or "") in ("1", "t", "T", "true", "TRUE", "True")

    def int_param(self, name: str) -> int | None:
        value = self.param(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise errors.bad_request(f'invalid value for {name}: "{value}"') from None

    def json(self) -> Any:
        """The JSON body; 415 for another media type (protobuf, YAML, CBOR)."""
        if not self.body.strip():
            return None
        media = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media and media != "application/json" and not media.endswith("+json"):
            raise errors.unsupported_media_type(
                media, ("application/json", "application/yaml")
            ).with_message(
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json (kubeemu does not decode {media})"
            )
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise errors.bad_request(
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json, application/yaml ({exc})"
            ) from None

    def accepts_table(self) -> bool:
        return "as=Table" in self.headers.get("accept", "")


@dataclass
class Response:
    code: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None  # sent chunked after ``body`` when set

    @classmethod
    def json(cls, code: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(code, json.dumps(obj).encode(), headers=dict(headers or {}))

    @classmethod
    def error(cls, err: errors.ApiError) -> Response:
        return cls.json(err.code, err.status(), err.headers)
