"""A backend with S3 storage for the staging tests: its profile's storage block points at
the test's own bucket on the real SeaweedFS (or at a proxy in front of it, to cut S3 off),
and only the worker gets the keys, through the environment its profile names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts import devstack
from tests.support.harness import BackendHarness
from tests.support.s3 import S3Bucket

KEY_ENV = "TEST_S3_KEY_ID"
SECRET_ENV = "TEST_S3_SECRET"


@dataclass(frozen=True)
class StagedBackend:
    """A backend harness whose workers keep job files in `bucket`."""

    harness: BackendHarness
    bucket: S3Bucket

    def storage(self, *, endpoint_url: str | None = None, **settings: Any) -> dict[str, Any]:
        """The profile's storage block: work directories go once outputs are kept."""
        return {
            "prefix": f"s3://{self.bucket.bucket}/jobs",
            "endpoint_url": endpoint_url or self.bucket.endpoint_url,
            "credentials": {
                "access_key_id": f"env:{KEY_ENV}",
                "secret_access_key": f"env:{SECRET_ENV}",
            },
            "work_dir_retention_s": 0,
            **settings,
        }

    def start(self, *, endpoint_url: str | None = None, **storage: Any) -> devstack.Worker:
        h = self.harness
        profile = h.profile(storage=self.storage(endpoint_url=endpoint_url, **storage))
        env = {
            **h.worker_env(),
            KEY_ENV: self.bucket.access_key,
            SECRET_ENV: self.bucket.secret_key,
        }
        return h.start_worker(profile, env=env)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
