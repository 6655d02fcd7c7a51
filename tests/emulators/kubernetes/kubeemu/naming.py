"""Object names: RFC 1123 validation and generateName, as apimachinery does them."""

from __future__ import annotations

import json
import random
import re

from .errors import Cause

DNS1123_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
# k8s.io/apiserver/pkg/storage/names: 5 random characters from this alphabet
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_GENERATED_BASE = 63 - 5


def quote(value: object) -> str:
    return json.dumps(value)


def subdomain_causes(field: str, name: str) -> list[Cause]:
    causes = []
    if len(name) > 253:
        causes.append(
            Cause(
                "FieldValueInvalid",
                field,
                f"Invalid value: {quote(name)}: must be no more than 253 characters",
            )
        )
    if not re.fullmatch(DNS1123_SUBDOMAIN, name):
        causes.append(
            Cause(
                "FieldValueInvalid",
                field,
                f"Invalid value: {quote(name)}: a lowercase RFC 1123 subdomain must consist of "
                "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                f"'{DNS1123_SUBDOMAIN}')",
            )
        )
    return causes


def label_value_causes(field: str, value: str) -> list[Cause]:
    if len(value) > 63:
        return [
            Cause(
                "FieldValueInvalid",
                field,
                f"Invalid value: {quote(value)}: must be no more than 63 characters",
            )
        ]
    return []


def generate(base: str) -> str:
    """names.SimpleNameGenerator: the base cut to 58 characters plus 5 random ones."""
    suffix = "".join(random.choice(_ALPHABET) for _ in range(5))
    return base[:_MAX_GENERATED_BASE] + suffix


def metadata_name_causes(meta: dict[str, object]) -> list[Cause]:
    name = meta.get("name")
    if not name:
        return [
            Cause(
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            )
        ]
    if not isinstance(name, str):
        return [Cause("FieldValueInvalid", "metadata.name", "Invalid value: not a string")]
    return subdomain_causes("metadata.name", name)
