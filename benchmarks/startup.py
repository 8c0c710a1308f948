"""Start-up and idle memory: `netrepl --version` against `python -c pass`; the time to the
first prompt in a pty (connected to an idle loopback peer) against an interpreter that only
imports prompt_toolkit and rich; and netrepl's RSS at that prompt against that interpreter's.
"""

from __future__ import annotations

import compileall
import subprocess
import time
from pathlib import Path

import netrepl
from benchmarks.bench import Bench
from benchmarks.flood import settled_rss
from benchmarks.processes import (
    PYTHON,
    BenchmarkError,
    Processes,
    Screen,
    netrepl_command,
    quit_netrepl,
)
from benchmarks.results import Quantity, Row, median

IMPORTS = "import prompt_toolkit, rich"
RSS_OF_IMPORTS = (
    IMPORTS + "\nfor line in open('/proc/self/status'):\n"
    "    if line.startswith('VmRSS:'): print(line.split()[1])"
)


def compile_netrepl() -> None:
    """Compile netrepl's modules to bytecode first, as installing a package does: with
    PYTHONDONTWRITEBYTECODE set (or a read-only checkout) an editable install would compile
    every module from source at every start, ~60 ms that no installed netrepl pays."""
    compileall.compile_dir(Path(netrepl.__file__).parent, quiet=1)


def _version_runs(procs: Processes, runs: int) -> tuple[list[float], list[float]]:
    ours, theirs = [], []
    for _ in range(runs):  # interleaved, so drift touches both alike
        ours.append(procs.run([*netrepl_command(), "--version"], 30, stdout=subprocess.DEVNULL))
        theirs.append(procs.run([PYTHON, "-c", "pass"], 30))
    return ours, theirs


def startup(bench: Bench) -> list[Row]:
    version = Row("start-up: netrepl --version", "ratio_max", 2.0, reference_name="python -c pass")
    prompt = Row(
        "start-up: first prompt in a pty, connected",
        "ratio_max",
        1.3,
        reference_name=f'python -c "{IMPORTS}"',
    )
    memory = Row(
        "idle memory: RSS at the prompt, connected",
        "ratio_max",
        1.3,
        reference_name="python importing prompt_toolkit, rich",
    )
    runs = 3 if bench.quick else 7
    compile_netrepl()
    with Processes(bench.state_dir) as procs:
        ours, theirs = _version_runs(procs, runs * 2)
        version.netrepl = Quantity(median(ours) * 1000, "ms")
        version.reference = Quantity(median(theirs) * 1000, "ms")
        version.details = {
            "netrepl_ms": [t * 1000 for t in ours],
            "python_ms": [t * 1000 for t in theirs],
        }

        idle = procs.peer("idle", "--lifetime", "240")
        prompt_s: list[float] = []
        imports_s: list[float] = []
        rss_kib: list[int] = []
        imports_rss: list[int] = []
        for _ in range(runs):
            started = time.monotonic()
            pty = procs.pty(["127.0.0.1", str(idle.port)])
            screen = Screen(pty)
            shown = screen.wait_for(
                lambda text: "connected" in text and "view utf-8" in text, 30, "the first prompt"
            )
            prompt_s.append(shown - started)
            rss_kib.append(settled_rss(screen))
            quit_netrepl(screen)
            imports_s.append(procs.run([PYTHON, "-c", IMPORTS], 30))
            result = subprocess.run(
                [PYTHON, "-c", RSS_OF_IMPORTS], capture_output=True, text=True, timeout=30
            )
            if result.returncode != 0 or not result.stdout.strip().isdigit():
                raise BenchmarkError(f"the import interpreter failed: {result.stderr[-200:]}")
            imports_rss.append(int(result.stdout))
    prompt.netrepl = Quantity(median(prompt_s) * 1000, "ms")
    prompt.reference = Quantity(median(imports_s) * 1000, "ms")
    prompt.details = {
        "netrepl_ms": [t * 1000 for t in prompt_s],
        "imports_ms": [t * 1000 for t in imports_s],
    }
    memory.netrepl = Quantity(median(rss_kib) / 1024, "MiB")
    memory.reference = Quantity(median(imports_rss) / 1024, "MiB")
    memory.details = {"netrepl_kib": rss_kib, "imports_kib": imports_rss}
    return [version, prompt, memory]
