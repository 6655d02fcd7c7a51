"""Issue 13's goals as bench/slurm.py checks them: a figure, what it is compared with in
the same run, the ratio, and whether the goal holds."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One measured figure; with a `target`, a goal of issue 13."""

    section: str
    name: str
    value: float
    unit: str
    reference: float | None = None
    reference_name: str = ""
    target: str = ""  # how the goal reads, e.g. ">= 0.9x plain sbatch" or "<= 0.5 s"
    holds: bool | None = None  # None: a figure shown for context, no goal

    @property
    def ratio(self) -> float | None:
        if self.reference is None or self.reference == 0:
            return None
        return self.value / self.reference

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": None if self.ratio is None else round(self.ratio, 3)}


def at_least_times(
    section: str, name: str, value: float, unit: str, reference: float, ref_name: str, x: float
) -> Figure:
    """Goal: `value` >= `x` times the reference."""
    return Figure(
        section,
        name,
        value,
        unit,
        reference,
        ref_name,
        f">= {x:g}x {ref_name}",
        value >= x * reference,
    )


def at_most_times(
    section: str, name: str, value: float, unit: str, reference: float, ref_name: str, x: float
) -> Figure:
    """Goal: `value` <= `x` times the reference."""
    return Figure(
        section,
        name,
        value,
        unit,
        reference,
        ref_name,
        f"<= {x:g}x {ref_name}",
        value <= x * reference,
    )


def at_most(
    section: str,
    name: str,
    value: float,
    unit: str,
    limit: float,
    reference: float | None = None,
    ref_name: str = "",
) -> Figure:
    """Goal: `value` <= an absolute `limit` (a reference, if any, shown beside it)."""
    return Figure(
        section, name, value, unit, reference, ref_name, f"<= {limit:g} {unit}", value <= limit
    )


def within(
    section: str, name: str, value: float, unit: str, reference: float, ref_name: str, band: float
) -> Figure:
    """Goal: `value` within ±`band` (a fraction) of the reference."""
    holds = abs(value / reference - 1) <= band if reference else False
    return Figure(
        section, name, value, unit, reference, ref_name, f"within ±{band:.0%} of {ref_name}", holds
    )


def shown(
    section: str,
    name: str,
    value: float,
    unit: str,
    reference: float | None = None,
    ref_name: str = "",
) -> Figure:
    """A figure without a goal of its own."""
    return Figure(section, name, value, unit, reference, ref_name)


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(figures: list[Figure]) -> str:
    """The figures as a plain-text table, one line each."""
    rows = [("section", "figure", "value", "reference", "ratio", "goal", "holds")]
    for f in figures:
        ref = "" if f.reference is None else f"{_num(f.reference)} {f.unit} ({f.reference_name})"
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}x"
        holds = {True: "yes", False: "NO", None: ""}[f.holds]
        rows.append((f.section, f.name, f"{_num(f.value)} {f.unit}", ref, ratio, f.target, holds))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"
