"""Generated documentation stays in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

from scripts import profile_reference

ROOT = Path(__file__).resolve().parents[1]


def test_profile_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "profiles.md").read_text()
    assert committed == profile_reference.render(), (
        "docs/profiles.md is stale: run python scripts/profile_reference.py"
    )


def test_the_reliability_table_names_tests_that_exist() -> None:
    table = (ROOT / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(test_\w+\.py)(?:::(test_\w+))?", table)
    assert len(named) >= 18, "docs/reliability.md lost its fault table"
    for module, test in named:
        places = (ROOT / "tests" / "faults", ROOT / "tests" / "staging", ROOT / "tests")
        path = next((p / module for p in places if (p / module).exists()), None)
        assert path is not None, f"docs/reliability.md names {module}, which does not exist"
        if test:
            assert f"def {test}(" in path.read_text(), f"{module} has no {test}"
