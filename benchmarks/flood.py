"""The prompt under a flood: keystroke echo, a `/stats` round trip, and peak memory, with
netrepl in a pty (hex view) while a flooder sends at full rate; and peak memory over one long
line with no newline (text view).

A key is timed from the moment it is written to the pty until it appears in netrepl's output.
The flood's bytes are 0x80-0xff only, so the hexdump shows none of the letters typed, and none
of the letters typed occur in netrepl's own messages or toolbar: the first one seen is the echo.
After each echo, Ctrl-C clears the line, so the next key's letter is not already on screen.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from benchmarks.bench import MB, Bench, size_text
from benchmarks.processes import (
    BenchmarkError,
    Processes,
    Screen,
    drain_until_report,
    memory_kib,
    quit_netrepl,
)
from benchmarks.results import Quantity, Row, median

# Uppercase letters that neither the hexdump, the toolbar, a status line nor /stats (KiB/s,
# MiB/s, GiB/s) contains (escape sequences are stripped before searching), nor the tty's echo
# of a cursor position report (^[[40;1R).
LETTERS = "QZXYVWUEFNOS"
ECHO_TIMEOUT = 2.0
STATS_TIMEOUT = 5.0
KEY_GAP = 0.05  # between keys: a fast typist's pace, while the pty keeps being read
STATS_EVERY = 2.0
FLOOD_LINE = re.compile(r"\d{8} \w")
"""A numbered line of the `lines` flood, on screen."""
STATS_REPORT = re.compile(r"received\s+[\d,]+ bytes? in [\d,]+ reads?")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class Keys:
    """Typed keys and when netrepl showed them; tty echoes (the letter written outside any
    prompt_toolkit redraw: the terminal was in cooked mode for a write) are counted apart."""

    def __init__(self) -> None:
        self.echo_ms: list[float] = []
        self.tty_echoes = 0

    def type_one(self, screen: Screen) -> None:
        """Type one key; record the milliseconds until netrepl shows it (ECHO_TIMEOUT if it
        never does)."""
        letter = LETTERS[len(self.echo_ms) % len(LETTERS)]
        sent = time.monotonic()
        deadline = sent + ECHO_TIMEOUT
        screen.pty.send(letter.encode())
        tty_echo = False
        while (now := time.monotonic()) < deadline:
            screen.read(deadline - now)
            if letter in screen.outside:
                tty_echo = True
            if letter in screen.redrawn:
                self.echo_ms.append((time.monotonic() - sent) * 1000)
                break
            if screen.pty.eof:
                raise BenchmarkError("netrepl exited while a key was being typed")
        else:
            self.echo_ms.append(ECHO_TIMEOUT * 1000)
        self.tty_echoes += tty_echo


def stats_round_trip_ms(screen: Screen) -> float:
    """Enter `/stats`; milliseconds until its report shows (STATS_TIMEOUT if it never does)."""
    sent = time.monotonic()
    screen.pty.send(b"/stats\r")
    try:
        seen = screen.wait_for(
            lambda text: STATS_REPORT.search(text) is not None, STATS_TIMEOUT, "the /stats report"
        )
    except BenchmarkError:
        if screen.pty.process.poll() is not None:
            raise
        return STATS_TIMEOUT * 1000
    return (seen - sent) * 1000


def at_prompt(screen: Screen, view: str) -> int:
    """Wait for the first prompt and for output to settle; netrepl's RSS (KiB) there."""
    screen.wait_for(lambda text: f"view {view}" in text, 30, "the first prompt")
    return settled_rss(screen)


def settled_rss(screen: Screen) -> int:
    """netrepl's RSS (KiB) once its output has been quiet for a moment."""
    screen.drain_until_quiet(0.3, 5)
    return memory_kib(screen.pty.pid)["VmRSS"]


FLOOD_VIEWS = (("hex", "high"), ("utf8", "lines"), ("auto", "lines"))
"""The views a flood is measured in, and the flooder's pattern for each: bytes 0x80-0xff for
hex (every one a non-printable, the most work per byte), numbered text lines for the text
views."""
FLOOD_REPS = 2


@dataclass
class FloodRun:
    echoes: list[float]
    stats: list[float]
    peak_kib: int
    idle_kib: int
    flooded: int
    seconds: float
    tty_echoes: int
    status: int


def flood_once(bench: Bench, view: str, pattern: str) -> FloodRun:
    seconds = bench.flood_seconds
    with Processes(bench.state_dir) as procs:
        flooder = procs.peer(
            "flood", "--seconds", str(seconds), "--wait-line", "--pattern", pattern
        )
        pty = procs.pty(["--view", view, "127.0.0.1", str(flooder.port)])
        screen = Screen(pty)
        idle = at_prompt(screen, "hex" if view == "hex" else "")
        pty.send(b"go\r")
        asked = time.monotonic()
        if view == "hex":
            screen.wait_for(lambda text: "|................|" in text, 10, "the flood on screen")
        else:
            screen.wait_for(lambda text: FLOOD_LINE.search(text) is not None, 10, "the flood")
        end = asked + seconds - 0.5
        keys = Keys()
        stats: list[float] = []
        next_stats = time.monotonic() + STATS_EVERY / 2
        while time.monotonic() < end:
            if time.monotonic() >= next_stats:
                stats.append(stats_round_trip_ms(screen))
                next_stats = time.monotonic() + STATS_EVERY
                continue
            keys.type_one(screen)
            pty.send(b"\x03")  # Ctrl-C clears the line
            screen.drain(KEY_GAP)
        report = drain_until_report(screen, flooder, seconds + 60)
        peak = memory_kib(pty.pid)["VmHWM"]
        status = quit_netrepl(screen)
    if not keys.echo_ms or not stats:
        raise BenchmarkError(f"the flood ({view} view) ended before any key could be timed")
    return FloodRun(
        keys.echo_ms,
        stats,
        peak,
        idle,
        report["bytes"],
        report["closed_at"] - report["started_at"],
        keys.tty_echoes,
        status,
    )


def flood(bench: Bench) -> list[Row]:
    rows: list[Row] = []
    for view, pattern in FLOOD_VIEWS:
        rows += _flood_rows(bench, view, pattern)
    return rows


def _flood_rows(bench: Bench, view: str, pattern: str) -> list[Row]:
    seconds = bench.flood_seconds
    label = f"{view} view, {seconds:g} s flood"
    p99 = Row(f"keystroke echo under flood, p99 ({label})", "max", 50)
    worst = Row(f"keystroke echo under flood, max ({label})", "max", 200)
    command = Row(f"command under flood: /stats round trip, max ({label})", "max", 200)
    memory = Row(
        f"memory under flood: VmHWM ({label})",
        "ratio_max",
        1.5,
        reference_name="idle RSS of netrepl",
    )
    runs: list[FloodRun] = []
    p99s: list[float] = []
    for _ in bench.repetitions(p99s, at_least=1 if bench.quick else FLOOD_REPS):
        run = flood_once(bench, view, pattern)
        runs.append(run)
        p99s.append(percentile(run.echoes, 0.99))
    echoes = [echo for run in runs for echo in run.echoes]
    details = {
        "view": view,
        "keys": len(echoes),
        "tty_echoes": sum(run.tty_echoes for run in runs),
        "echo_ms_median": median(echoes),
        "echo_ms": [run.echoes for run in runs],
        "stats_ms": [run.stats for run in runs],
        "flood_MBps": [run.flooded / run.seconds / MB for run in runs],
        "netrepl_exit_status": [run.status for run in runs],
    }
    p99.measured(p99s, None, "ms")
    worst.measured([max(run.echoes) for run in runs], None, "ms")
    command.measured([max(run.stats) for run in runs], None, "ms")
    memory.measured([run.peak_kib for run in runs], [run.idle_kib for run in runs], "MiB", 1 / 1024)
    # The bound is for every flood, not the median: the worst repetition is the row.
    worst.netrepl = Quantity(max(worst.netrepl_reps), "ms")
    command.netrepl = Quantity(max(command.netrepl_reps), "ms")
    lost = sum(1 for echo in echoes if echo >= ECHO_TIMEOUT * 1000)
    notes = []
    if lost:
        notes.append(f"{lost} of {len(echoes)} keys never echoed within {ECHO_TIMEOUT:g} s")
    if details["tty_echoes"]:
        notes.append(
            f"{details['tty_echoes']} of {len(echoes)} keys were also echoed by the tty outside"
            " the prompt (cooked mode during a write above it): stray letters in the output"
        )
    worst.note = "; ".join(notes)
    stats = [ms for run in runs for ms in run.stats]
    unanswered = sum(1 for ms in stats if ms >= STATS_TIMEOUT * 1000)
    if unanswered:
        command.note = f"{unanswered} of {len(stats)} never answered within {STATS_TIMEOUT:g} s"
    for row in (p99, worst, command, memory):
        row.details = details
    return [p99, worst, command, memory]


def long_line(bench: Bench) -> list[Row]:
    size = bench.size(50 * MB)
    row = Row(
        f"memory under flood: VmHWM over one {size_text(size)} line, no newline (text view)",
        "ratio_max",
        1.5,
        reference_name="idle RSS of netrepl",
    )
    with Processes(bench.state_dir) as procs:
        flooder = procs.peer("flood", "--bytes", str(size), "--wait-line", "--pattern", "noline")
        pty = procs.pty(["127.0.0.1", str(flooder.port)])
        screen = Screen(pty)
        idle = at_prompt(screen, "utf-8")
        pty.send(b"go\r")
        report = drain_until_report(screen, flooder, 90)
        # The prompt must still answer once the line has arrived.
        after = stats_round_trip_ms(screen)
        peak = memory_kib(pty.pid)["VmHWM"]
        quit_netrepl(screen)
    duration = report["closed_at"] - report["started_at"]
    row.netrepl = Quantity(peak / 1024, "MiB")
    row.reference = Quantity(idle / 1024, "MiB")
    row.details = {
        "bytes": size,
        "receive_seconds": duration,
        "stats_round_trip_after_ms": after,
    }
    return [row]
