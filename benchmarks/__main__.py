"""`python -m benchmarks [--quick] [--only NAME] [--json PATH]`: measure every figure, print the
table, write it as JSON.

Exit status 0 means every figure was measured (whether or not it met its target: misses print
FAIL); 1 means a measurement itself failed (a peer or netrepl crashed or hung), with the reason
in its row.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import datagrams, flood, receiving, relaying, rendering, screen, startup
from benchmarks.bench import BUDGET_SECONDS, Bench
from benchmarks.processes import REPO
from benchmarks.results import Row, table, write_json

Figure = Callable[[Bench], list[Row]]

# name, what it measures, estimated seconds of a full run (for the time budget). Cheap and
# quick figures first: when the budget runs out, the ones left are reported as not measured.
FIGURES: list[tuple[str, Figure, float]] = [
    ("startup", startup.startup, 15),
    ("one-shot", startup.one_shot, 10),
    ("text-render", rendering.text_render, 25),
    ("hex-render", rendering.hex_render, 20),
    ("json-render", rendering.json_render, 5),
    ("flood", flood.flood, 20),
    ("long-line", flood.long_line, 10),
    ("prompt-visible", screen.prompt_visible, 30),
    ("receive-raw", receiving.receive_raw, 20),
    ("udp-burst", datagrams.udp_burst, 35),
    ("receive-log", receiving.receive_log, 60),
    ("batch-hex", receiving.batch_hex, 80),
    ("relay-latency", relaying.relay_latency, 20),
    ("relay-throughput", relaying.relay_throughput, 30),
    ("relay-log", relaying.relay_log, 45),
]
# Above this 1-minute load average before the run, other work competes for the cores.
BUSY_LOAD = 0.5
DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure netrepl's performance figures against references, on loopback.",
    )
    parser.add_argument("--quick", action="store_true", help="sizes scaled down ~10x (smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        choices=[name for name, _, _ in FIGURES],
        metavar="NAME",
        help="run only this figure (repeatable): " + ", ".join(name for name, _, _ in FIGURES),
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument("--tmp", type=Path, help="scratch directory (default: the system's)")
    return parser.parse_args(argv)


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=REPO
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def source_state() -> dict[str, object]:
    """Which netrepl was measured: the commit, and the files of netrepl/ changed since."""
    status = _git("status", "--porcelain", "--", "netrepl") or ""
    return {
        "commit": (_git("rev-parse", "--short", "HEAD") or "?").strip(),
        "changed": [line[3:] for line in status.splitlines() if line.strip()],
    }


def run_figure(name: str, figure: Figure, bench: Bench) -> tuple[list[Row], bool]:
    """The figure's rows, and whether its measurement crashed."""
    try:
        return figure(bench), False
    except Exception as error:  # one figure failing must not hide the others
        traceback.print_exc(file=sys.stderr)
        row = Row(f"{name}: not measured", "max", 0)
        row.note = f"measurement failed: {type(error).__name__}: {error}"
        row.error = True
        return [row], True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = [f for f in FIGURES if args.only is None or f[0] in args.only]
    rows: list[Row] = []
    crashed = False
    load_before = os.getloadavg()
    if load_before[0] > BUSY_LOAD:
        print(
            f"benchmarks: the machine is busy (load {load_before[0]:.2f}): figures will be noisy",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="netrepl-bench-", dir=args.tmp) as scratch:
        workdir = Path(scratch)
        state = workdir / "state"
        state.mkdir()
        bench = Bench(quick=args.quick, workdir=workdir, state_dir=state)
        for name, figure, estimate in selected:
            needed = estimate / bench.scale
            if bench.left() < needed:
                row = Row(f"{name}: not measured", "max", 0)
                row.note = f"skipped: would overrun the {BUDGET_SECONDS:g} s budget"
                row.error = True
                rows.append(row)
                continue
            print(f"benchmarks: {name} ...", file=sys.stderr, flush=True)
            began = time.monotonic()
            figure_rows, failed = run_figure(name, figure, bench)
            crashed |= failed
            rows.extend(figure_rows)
            took = time.monotonic() - began
            print(f"benchmarks: {name} took {took:.1f} s", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - bench.started
    print(table(rows))
    state = source_state()
    measured = f"netrepl {state['commit']}"
    if state["changed"]:
        measured += " + uncommitted changes to " + ", ".join(state["changed"])  # type: ignore[arg-type]
    kind = "quick" if args.quick else "full"
    load_after = os.getloadavg()
    print(f"\n{len(rows)} rows in {elapsed:.0f} s ({kind} run; {measured})")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    meta = {
        "command": "python -m benchmarks" + (" --quick" if args.quick else ""),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(elapsed, 1),
        "quick": args.quick,
        "netrepl": state,
        # Other work on the machine skews every figure: judge the run by these.
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    write_json(args.json, rows, meta)
    print(f"wrote {args.json}")
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
