"""A cluster's S3 storage as the worker reaches it: boto3 clients, object keys, errors.

Only workers hold S3 credentials (the profile's ``storage.credentials`` references, or
the standard AWS chain). Clients and jobs get presigned URLs, signed with SigV4 (SigV2,
boto3's default for custom endpoints, signs Content-Type and fails from plain HTTP
clients). 5xx answers and throttling are retried by botocore's standard retry mode.
Every botocore error leaves this module as a `StorageError` naming the bucket and key.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jobgate.client.credentials import resolve_ref
from jobgate.client.errors import ConfigurationError, StorageError
from jobgate.client.models import JobRecord
from jobgate.client.profile_schema import Storage

MIB = 1 << 20
MIN_PART = 16 * MIB
MAX_PARTS = 10_000
RETRY_ATTEMPTS = 5


def _boto() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:  # pragma: no cover - the worker extra has it
        raise ConfigurationError(
            "S3 storage needs boto3: pip install 'jobgate[s3]' (or 'jobgate[worker]')"
        ) from e
    return boto3, Config


@dataclass(frozen=True)
class Location:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class JobStorage:
    """The S3 storage of one cluster: where a job's bundle, outputs and logs go."""

    def __init__(self, storage: Storage, cluster: str) -> None:
        self.settings, self.cluster = storage, cluster
        rest = storage.prefix.removeprefix("s3://")
        self.bucket, _, base = rest.partition("/")
        self.base = base.strip("/")
        boto3, config_type = _boto()
        session = boto3.session.Session(**self._credentials())
        config = config_type(
            signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS},
            connect_timeout=5,
            read_timeout=60,
            s3={"addressing_style": "path"} if storage.endpoint_url else {},
        )
        region = storage.region or "us-east-1"
        self.client = session.client(
            "s3", endpoint_url=storage.endpoint_url, region_name=region, config=config
        )
        presign_url = storage.presign_endpoint_url or storage.endpoint_url
        self.presigner = (
            self.client
            if presign_url == storage.endpoint_url
            else session.client("s3", endpoint_url=presign_url, region_name=region, config=config)
        )

    def _credentials(self) -> dict[str, str]:
        refs = self.settings.credentials
        if refs is None:
            return {}  # boto3's own chain
        try:
            keys = {
                "aws_access_key_id": resolve_ref(refs.access_key_id),
                "aws_secret_access_key": resolve_ref(refs.secret_access_key),
            }
            if refs.session_token:
                keys["aws_session_token"] = resolve_ref(refs.session_token)
        except ConfigurationError as e:
            raise ConfigurationError(f"cluster {self.cluster}: storage.credentials: {e}") from e
        return keys

    # -- where things go ------------------------------------------------------------

    def _key(self, template: str, record: JobRecord, filename: str) -> Location:
        key = template.format(
            prefix=self.base, run_id=record.spec.run_id or record.id, filename=filename
        )
        return Location(self.bucket, posixpath.normpath("/" + key).lstrip("/"))

    def bundle(self, record: JobRecord) -> Location:
        return self._key(self.settings.inputs, record, f"{record.id}.tar")

    def output(self, record: JobRecord, path: str) -> Location:
        return self._key(self.settings.outputs, record, f"{record.id}/{path}")

    def log(self, record: JobRecord, name: str) -> Location:
        return self._key(self.settings.logs, record, name)

    # -- calls ------------------------------------------------------------------------

    def call(self, what: str, operation: str, **params: Any) -> Any:
        """One S3 API call; a StorageError that says `what` failed and why."""
        try:
            return getattr(self.client, operation)(**params)
        except Exception as e:
            raise self.error(what, e) from e

    def error(self, what: str, e: Exception) -> StorageError:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        endpoint = self.settings.endpoint_url or "AWS S3"
        if isinstance(e, ClientError):
            error = e.response.get("Error", {})
            code = str(error.get("Code", "")) or str(
                e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
            )
            if code == "NoSuchBucket":
                return StorageError(
                    f"{what}: bucket {self.bucket} does not exist at {endpoint} (storage.prefix "
                    f"of cluster {self.cluster}): create it, or fix the profile"
                )
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return StorageError(
                    f"{what}: S3 refused the worker's credentials ({code}): check "
                    f"storage.credentials of cluster {self.cluster}"
                )
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return StorageError(f"{what}: S3 answered {code}", transient=int(status) >= 500)
        if isinstance(e, NoCredentialsError):
            return StorageError(
                f"{what}: the worker has no S3 credentials: set storage.credentials of cluster "
                f"{self.cluster}, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            )
        if isinstance(e, EndpointConnectionError | BotoCoreError):
            return StorageError(
                f"{what}: S3 at {endpoint} is unreachable ({type(e).__name__})", transient=True
            )
        if isinstance(e, OSError):
            return StorageError(f"{what}: {e}")
        raise e

    def presign(self, operation: str, **params: Any) -> str:
        url: str = self.presigner.generate_presigned_url(
            operation, Params=params, ExpiresIn=self.settings.presign_expires_s
        )
        return url

    def uploads(self, where: Location) -> Iterator[str]:
        """Upload ids of the multipart uploads still open for this key."""
        reply = self.call(
            f"listing the uploads of {where}",
            "list_multipart_uploads",
            Bucket=where.bucket,
            Prefix=where.key,
        )
        for upload in reply.get("Uploads", []):
            if upload.get("Key") == where.key:
                yield str(upload["UploadId"])


def part_size(size_bound: int) -> int:
    """Part size for an upload of at most `size_bound` bytes: 16 MiB, or more so that the
    parts stay well within S3's 10,000."""
    return max(MIN_PART, math.ceil(size_bound / (MAX_PARTS - 1000) / MIB) * MIB)
