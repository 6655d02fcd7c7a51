"""A throwaway self-signed certificate for 127.0.0.1, made with the openssl CLI.

kubectl (client-go) sends a kubeconfig's bearer token only over TLS; serve TLS to
test kubectl against token authentication."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path


def available() -> bool:
    return shutil.which("openssl") is not None


def make(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for CN=kubeemu, SAN IP:127.0.0.1, DNS:localhost."""
    cert, key = directory / "apiserver.crt", directory / "apiserver.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=kubeemu",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
