"""core/v1 Secrets as the API server stores them (pkg/apis/core/v1 conversion, the
Secret strategy): ``stringData`` is write-only, merged into ``data`` base64-encoded (its
keys win over the same keys of ``data``) and never returned; ``type`` defaults to
Opaque; keys must be valid config keys."""

from __future__ import annotations

import base64
import re
from typing import Any

from . import errors

JsonObj = dict[str, Any]
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def normalize(obj: JsonObj) -> list[errors.Cause]:
    """Fold stringData into data; the causes of an invalid Secret."""
    data = dict(obj.get("data") or {})
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    causes: list[errors.Cause] = []
    for key, value in data.items():
        if not _KEY.match(key) or len(key) > 253:
            message = f"Invalid value: {key!r}: a valid config key must consist of "
            message += "alphanumeric characters, '-', '_' or '.'"
            causes.append(errors.Cause("FieldValueInvalid", f"data[{key}]", message))
        try:
            base64.b64decode(str(value), validate=True)
        except ValueError:
            causes.append(errors.Cause("FieldValueInvalid", f"data[{key}]", "illegal base64 data"))
    if data:
        obj["data"] = data
    obj.setdefault("type", "Opaque")
    return causes
