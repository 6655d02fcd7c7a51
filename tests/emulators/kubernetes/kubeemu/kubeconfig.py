"""A kubeconfig for the emulator: one cluster, one user with a bearer token, one
context (written as YAML by hand; the values are JSON-quoted, which YAML reads)."""

from __future__ import annotations

import base64
import json
from pathlib import Path


def render(
    server: str,
    token: str | None,
    namespace: str,
    context: str,
    ca_pem: bytes | None,
) -> str:
    q = json.dumps
    cluster = [f"    server: {q(server)}"]
    if ca_pem is not None:
        cluster.append(f"    certificate-authority-data: {q(base64.b64encode(ca_pem).decode())}")
    user = f"    token: {q(token)}" if token is not None else "    {}"
    if token is None:
        user_block = f"- name: {q(context)}\n  user: {{}}"
    else:
        user_block = f"- name: {q(context)}\n  user:\n{user}"
    return "\n".join(
        [
            "apiVersion: v1",
            "kind: Config",
            "clusters:",
            f"- name: {q(context)}",
            "  cluster:",
            *cluster,
            "users:",
            user_block,
            "contexts:",
            f"- name: {q(context)}",
            "  context:",
            f"    cluster: {q(context)}",
            f"    user: {q(context)}",
            f"    namespace: {q(namespace)}",
            f"current-context: {q(context)}",
            "preferences: {}",
            "",
        ]
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path
