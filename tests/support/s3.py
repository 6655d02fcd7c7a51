"""S3 for the tests: a real SeaweedFS (scripts/devstack.S3Server) per test process, a
bucket per test, and helpers for what jobgate's client does without boto3 (presigned
URLs used with urllib, POST policy uploads)."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from scripts import devstack


@dataclass(frozen=True)
class S3Bucket:
    """Where a test's objects go: an endpoint, its admin keys and a bucket of its own."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str

    def client(self, endpoint_url: str | None = None, **config: Any) -> Any:
        """A boto3 client (SigV4, us-east-1); `endpoint_url` e.g. through a proxy,
        `config` botocore Config options such as retries={"max_attempts": 1}."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=endpoint_url or self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=devstack.S3Server.region,
            config=Config(signature_version="s3v4", **config),
        )


def new_bucket_name() -> str:
    """A valid, unique bucket name (lower case, 3 to 63 characters)."""
    return f"t-{uuid.uuid4().hex[:20]}"


def bucket_on(server: devstack.S3Server) -> S3Bucket:
    """Create a fresh bucket on `server`."""
    name = server.create_bucket(new_bucket_name())
    return S3Bucket(server.endpoint_url, server.access_key, server.secret_key, name)


def delete_bucket(server: devstack.S3Server, name: str) -> None:
    """Delete a bucket and whatever is in it (weed's -s3.allowDeleteBucketNotEmpty,
    on by default); unfinished multipart uploads go with it."""
    server.client().delete_bucket(Bucket=name)


@dataclass(frozen=True)
class HttpReply:
    """What urllib got back, errors included (status 4xx/5xx are replies too)."""

    status: int
    headers: dict[str, str]
    body: bytes


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> HttpReply:
    """One request with urllib, as a client without boto3 makes it; header names lower case."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return HttpReply(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as e:
        return HttpReply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def multipart_form(fields: dict[str, str], file_name: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body of `fields` then the file (last, as S3 requires), and its
    Content-Type."""
    boundary = f"----jobgate{secrets.token_hex(12)}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    parts.append(
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    encoded = [p.encode() for p in parts] + [content, f"\r\n--{boundary}--\r\n".encode()]
    return b"".join(encoded), f"multipart/form-data; boundary={boundary}"


def post_policy_upload(
    presigned: dict[str, Any], content: bytes, *, key: str | None = None
) -> HttpReply:
    """POST a file with the fields of `generate_presigned_post`; `key` overrides the
    signed key field (to try a key the policy should refuse)."""
    fields = dict(presigned["fields"])
    if key is not None:
        fields["key"] = key
    body, content_type = multipart_form(fields, "upload.bin", content)
    return http("POST", presigned["url"], body, {"Content-Type": content_type})
