"""The `backend` fixture: each contract test runs once per backend, with that backend's
harness (tests/support/harness.py; the `<kind>_backend` fixtures are in tests/conftest.py).
Slurm's run only where the private Slurm starts (the `slurm` fixture skips, or fails in
CI)."""

from __future__ import annotations

import pytest

from tests.support.harness import BackendHarness

BACKENDS = ("local", "slurm", "lsf", "kubernetes")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> BackendHarness:
    harness: BackendHarness = request.getfixturevalue(f"{request.param}_backend")
    return harness
