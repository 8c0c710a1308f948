"""Rows of the benchmark table: a figure, netrepl's value, the reference measured in the same
run, their ratio, the target, and whether it is met; printed as a table and written as JSON.

Targets are the issue's and are never relaxed here: a figure that misses prints FAIL, and a
figure that could not be measured prints its reason instead of a number.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Goal = Literal["ratio_min", "ratio_max", "max"]
"""`ratio_min`: netrepl/reference >= target; `ratio_max`: netrepl/reference <= target;
`max`: netrepl's value <= target (in its own unit; no reference)."""


COUNTS = ("datagrams", "samples")
"""Units of things counted, shown as whole numbers."""


@dataclass
class Quantity:
    value: float
    unit: str  # "MB/s", "ms", "MiB", "s"

    @property
    def text(self) -> str:
        if self.unit == "MB/s" and self.value >= 1000:
            return f"{self.value / 1000:.2f} GB/s"
        if self.unit in COUNTS:
            return f"{self.value:,.0f} {self.unit}"
        if self.value >= 100:
            return f"{self.value:,.0f} {self.unit}"
        if self.value >= 10:
            return f"{self.value:.1f} {self.unit}"
        return f"{self.value:.2f} {self.unit}"


@dataclass
class Row:
    figure: str
    """What is measured, with its size: `receive --log, interactive (500 MB)`."""
    goal: Goal
    target: float
    netrepl: Quantity | None = None
    reference: Quantity | None = None
    reference_name: str = ""
    note: str = ""
    """Why there is no number, or a check that failed (the log was incomplete, say)."""
    details: dict[str, Any] = field(default_factory=dict)
    check_failed: bool = False
    """A check of the result (log complete, output identical) failed: FAIL, whatever the
    speed."""
    error: bool = False
    """Not measured: the measurement failed, or was skipped (the reason is in `note`)."""
    netrepl_reps: list[float] = field(default_factory=list)
    """netrepl's value in each repetition (the row's unit); `netrepl` is their median."""
    reference_reps: list[float] = field(default_factory=list)
    """The reference's value in each repetition, paired with netrepl's."""

    def measured(
        self, ours: list[float], theirs: list[float] | None, unit: str, scale: float = 1.0
    ) -> None:
        """Set the medians of these repetitions (times `scale`: seconds to ms, say), and keep
        every repetition for the spread and the JSON."""
        self.netrepl_reps = [value * scale for value in ours]
        self.netrepl = Quantity(median(self.netrepl_reps), unit)
        if theirs:
            self.reference_reps = [value * scale for value in theirs]
            self.reference = Quantity(median(self.reference_reps), unit)

    @property
    def spread(self) -> tuple[float, float] | None:
        """Min and max over the repetitions: of the ratio (each repetition's netrepl against
        its own reference) for a ratio row, of netrepl's value for the others."""
        return spread_of(self.netrepl_reps, self.reference_reps if self.goal != "max" else None)

    @property
    def spread_text(self) -> str:
        found = self.spread
        if found is None or len(self.netrepl_reps) < 2:
            return "-"
        low, high = found
        if self.goal == "max":
            unit = self.netrepl.unit if self.netrepl else ""
            return f"{low:.3g}–{high:.3g} {unit}".rstrip()
        return f"{low:.2f}–{high:.2f}x"

    @property
    def ratio(self) -> float | None:
        if self.netrepl is None or self.reference is None or self.reference.value == 0:
            return None
        return self.netrepl.value / self.reference.value

    @property
    def target_text(self) -> str:
        if self.error:
            return "-"
        if self.goal == "ratio_min":
            return f">= {self.target:g}x"
        if self.goal == "ratio_max":
            return f"<= {self.target:g}x"
        unit = self.netrepl.unit if self.netrepl else ""
        return f"<= {self.target:g} {unit}".rstrip()

    @property
    def result(self) -> str:
        if self.error:
            return "ERROR"
        if self.netrepl is None:
            return "N/A"
        if self.check_failed:
            return "FAIL"
        if self.goal == "max":
            return "PASS" if self.netrepl.value <= self.target else "FAIL"
        ratio = self.ratio
        if ratio is None:
            return "N/A"
        met = ratio >= self.target if self.goal == "ratio_min" else ratio <= self.target
        return "PASS" if met else "FAIL"

    def as_json(self) -> dict[str, Any]:
        record = asdict(self)
        record |= {"ratio": self.ratio, "target_text": self.target_text, "result": self.result}
        record["spread"] = self.spread
        return record


def median(values: list[float]) -> float:
    return statistics.median(values)


def _values(ours: list[float], theirs: list[float] | None) -> list[float]:
    """The per-repetition ratios ours/theirs (paired), or `ours` alone."""
    return [o / t for o, t in zip(ours, theirs, strict=False) if t] if theirs else list(ours)


def spread_of(ours: list[float], theirs: list[float] | None = None) -> tuple[float, float] | None:
    """Min and max of the per-repetition ratios ours/theirs (paired), or of `ours` alone."""
    values = _values(ours, theirs)
    return (min(values), max(values)) if values else None


def relative_spread(ours: list[float], theirs: list[float] | None = None) -> float:
    """(max - min) / median of the same values as `spread_of`: 0.2 is a 20% spread."""
    values = _values(ours, theirs)
    if len(values) < 2:
        return 0.0
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle else 0.0


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


HEADERS = ("figure", "netrepl", "reference", "ratio", "spread", "reps", "target", "result")


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (readable in a terminal, pasteable into the docs)."""
    lines = [list(HEADERS)]
    notes: list[str] = []
    for row in rows:
        reference = ""
        if row.reference is not None:
            reference = f"{row.reference.text} ({row.reference_name})"
        elif row.reference_name:
            reference = row.reference_name
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        netrepl = row.netrepl.text if row.netrepl is not None else "-"
        reps = str(len(row.netrepl_reps)) if row.netrepl_reps else "-"
        lines.append(
            [
                row.figure,
                netrepl,
                reference or "-",
                ratio,
                row.spread_text,
                reps,
                row.target_text,
                row.result,
            ]
        )
        if row.note:
            notes.append(f"- {row.figure}: {row.note}")
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]
    out = []
    for index, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if index == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out + (["", *notes] if notes else []))


def write_json(path: Path, rows: list[Row], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**meta, "machine": machine(), "rows": [row.as_json() for row in rows]}
    path.write_text(json.dumps(document, indent=2) + "\n")
