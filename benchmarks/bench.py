"""What one benchmark run is: its sizes (full or --quick), repetitions, scratch directories and
time budget. Figures read their sizes from here, so `--quick` scales every one of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

MB = 1_000_000
MiB = 1 << 20
# The whole run must end within 5 minutes; a figure that would start with less than its
# estimate left is reported as not measured rather than overrunning.
BUDGET_SECONDS = 285.0


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

    def left(self) -> float:
        return BUDGET_SECONDS - (time.monotonic() - self.started)


def size_text(size: int) -> str:
    return f"{size / MB:g} MB"
