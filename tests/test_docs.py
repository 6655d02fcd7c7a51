"""Generated documentation stays in step with the code."""

from __future__ import annotations

from pathlib import Path

from scripts import profile_reference

ROOT = Path(__file__).resolve().parents[1]


def test_profile_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "profiles.md").read_text()
    assert committed == profile_reference.render(), (
        "docs/profiles.md is stale: run python scripts/profile_reference.py"
    )
