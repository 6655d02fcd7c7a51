"""The staging tests' backend: a harness with S3 storage, on the local backend unless a
test parametrizes `backend` indirectly ("slurm", "lsf")."""

from __future__ import annotations

import pytest

from tests.support.harness import BackendHarness
from tests.support.s3 import S3Bucket
from tests.support.staging import StagedBackend


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> BackendHarness:
    harness: BackendHarness = request.getfixturevalue(
        f"{getattr(request, 'param', 'local')}_backend"
    )
    return harness


@pytest.fixture
def staged(backend: BackendHarness, s3_bucket: S3Bucket) -> StagedBackend:
    return StagedBackend(backend, s3_bucket)
