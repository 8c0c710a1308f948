"""What one benchmark run is: its sizes (full or --quick), repetitions, scratch directories and
time budget. Figures read their sizes from here, so `--quick` scales every one of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.results import relative_spread

MB = 1_000_000
MiB = 1 << 20
# The whole run must end within 5 minutes; a figure that would start with less than its
# estimate left is reported as not measured rather than overrunning.
BUDGET_SECONDS = 540.0
SPREAD = 0.2
"""A figure whose repetitions spread more than this (max - min over the median) gets more
repetitions, up to MAX_REPS, while the budget allows."""
MAX_REPS = 9
EXTRA_REPS_RESERVE = 120.0
"""Extra repetitions stop when less than this is left of the budget: the figures after need
their turn."""


@dataclass
class Bench:
    quick: bool
    workdir: Path
    """Scratch files (logs, received files): deleted as soon as each is checked."""
    state_dir: Path
    """netrepl's XDG state and config for every child: no user history or config."""
    started: float = field(default_factory=time.monotonic)

    @property
    def scale(self) -> int:
        return 10 if self.quick else 1

    def size(self, full: int) -> int:
        return full // self.scale

    @property
    def reps(self) -> int:
        """Repetitions of each timing; the median is reported."""
        return 3

    @property
    def flood_seconds(self) -> float:
        return 2.0 if self.quick else 10.0

    def repetitions(
        self, ours: list[float], theirs: list[float] | None = None, *, at_least: int | None = None
    ) -> Iterator[int]:
        """Repetition numbers for a loop that appends to `ours` (and `theirs`) each time: the
        usual count, then more while the spread exceeds SPREAD (the one printed: of the ratios,
        or of `ours`), up to MAX_REPS and within the budget."""
        wanted = self.reps if at_least is None else at_least
        done = 0
        while done < wanted or (
            done < MAX_REPS
            and not self.quick
            and self.left() > EXTRA_REPS_RESERVE
            and relative_spread(ours, theirs) > SPREAD
        ):
            yield done
            done += 1

    def left(self) -> float:
        return BUDGET_SECONDS - (time.monotonic() - self.started)


def size_text(size: int) -> str:
    return f"{size / MB:g} MB"
