"""Start-up and idle memory: `netrepl --version` against `python -c pass`; the time to the
first prompt in a pty (connected to an idle loopback peer) against an interpreter that only
imports prompt_toolkit and rich; netrepl's RSS at that prompt against that interpreter's; and
a one-shot pipe (`printf 'PING\r\n' | netrepl HOST PORT`, start-up included) against the
ten-line Python client a user would write instead.
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
    REPO,
    BenchmarkError,
    Processes,
    Screen,
    child_env,
    netrepl_command,
    quit_netrepl,
)
from benchmarks.results import Row

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
        version.measured(ours, theirs, "ms", 1000)
        version.details = {
            "netrepl_ms": [t * 1000 for t in ours],
            "python_ms": [t * 1000 for t in theirs],
        }

        idle = procs.peer("idle", "--lifetime", "240")
        prompt_s: list[float] = []
        imports_s: list[float] = []
        rss_kib: list[int] = []
        imports_rss: list[int] = []
        for _ in bench.repetitions(prompt_s, imports_s, at_least=runs):
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
    prompt.measured(prompt_s, imports_s, "ms", 1000)
    prompt.details = {
        "netrepl_ms": [t * 1000 for t in prompt_s],
        "imports_ms": [t * 1000 for t in imports_s],
    }
    memory.measured(rss_kib, imports_rss, "MiB", 1 / 1024)
    memory.details = {"netrepl_kib": rss_kib, "imports_kib": imports_rss}
    return [version, prompt, memory]


# The ten-line client a user would write instead: connect, send, half-close, read until close.
ONE_SHOT_CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"PING\\r\\n")
s.shutdown(socket.SHUT_WR)
out = b""
while chunk := s.recv(65536):
    out += chunk
sys.stdout.buffer.write(out)
"""


def one_shot(bench: Bench) -> list[Row]:
    """`printf 'PING\\r\\n' | netrepl 127.0.0.1 PORT` against a peer that answers and closes
    at end of stream, start-up included, against a ten-line Python client doing the same."""
    row = Row(
        "one-shot pipe: printf 'PING\\r\\n' | netrepl HOST PORT, to the peer's close",
        "ratio_max",
        2.0,
        reference_name="a ten-line Python client",
    )
    compile_netrepl()
    ours: list[float] = []
    theirs: list[float] = []
    problems: list[str] = []
    with Processes(bench.state_dir) as procs:
        peer = procs.peer("answer", "--lifetime", "240")
        port = str(peer.port)
        for _ in bench.repetitions(ours, theirs, at_least=3 if bench.quick else 7):
            # Its +PONG goes nowhere, as netrepl's goes to a pipe: not onto the report.
            client = [PYTHON, "-c", ONE_SHOT_CLIENT, port]
            theirs.append(procs.run(client, 30, stdout=subprocess.DEVNULL))
            started = time.monotonic()
            done = subprocess.run(
                [*netrepl_command(), "127.0.0.1", port],
                input=b"PING\r\n",
                capture_output=True,
                timeout=30,
                cwd=REPO,
                env=child_env(bench.state_dir),
            )
            ours.append(time.monotonic() - started)
            if done.returncode != 0 or done.stdout.rstrip() != b"+PONG":
                problems.append(f"exit {done.returncode}, stdout {done.stdout[:40]!r}")
    row.measured(ours, theirs, "ms", 1000)
    row.details = {"netrepl_ms": row.netrepl_reps, "client_ms": row.reference_reps}
    if problems:
        row.check_failed = True
        row.note = f"netrepl did not print +PONG and exit 0: {problems[0]}"
    return [row]
