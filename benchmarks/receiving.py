"""Receive throughput: netrepl against a Python `recv_into` -> file sink on the same flooder,
and batch hex against `hexdump -C` on the same bytes.

A transfer is timed by the flooder's clock, from the start of the flood to the moment the
receiver closed the connection (interactive: netrepl closes when the peer does), or from the
start of the flood to the receiver's exit (batch: its output file is then complete). Each
result is checked: the log's received bytes and the raw file hash to what was sent.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

from benchmarks.bench import MB, Bench, size_text
from benchmarks.peers import pattern_bytes
from benchmarks.processes import (
    PYTHON,
    BenchmarkError,
    Processes,
    Screen,
    drain_until_report,
    netrepl_command,
    quit_netrepl,
)
from benchmarks.results import Row
from benchmarks.transcripts import Transcript

FLOOD_TIMEOUT = 90.0


def _rate(size: int, seconds: float) -> float:
    return size / seconds / MB


def sink_once(bench: Bench, size: int) -> tuple[float, float]:
    """The reference: (seconds to the sink's close, seconds to its exit) for `size` bytes."""
    out = bench.workdir / "sink.bin"
    with Processes(bench.state_dir) as procs:
        flooder = procs.peer("flood", "--bytes", str(size))
        sink = procs.popen(
            [PYTHON, "-m", "benchmarks.peers", "sink", "--port", str(flooder.port), "--out", out],
            stdout=subprocess.DEVNULL,
        )
        status = procs.wait(sink, FLOOD_TIMEOUT, "the sink")
        exited = time.monotonic()
        report = flooder.report(FLOOD_TIMEOUT)
    received = out.stat().st_size
    out.unlink()
    if status != 0 or received != size:
        raise BenchmarkError(f"the sink exited {status} with {received} of {size} bytes")
    return report["closed_at"] - report["started_at"], exited - report["started_at"]


def log_digest(path: Path) -> tuple[int, str]:
    """Bytes and sha256 of the `received` records of a transcript, in order."""
    digest = hashlib.sha256()
    total = 0
    with Transcript(path) as log:
        for line in log:
            if '"received"' not in line:
                continue
            record = json.loads(line)
            if record.get("type") == "received":
                data = log.data(record)
                total += len(data)
                digest.update(data)
    return total, digest.hexdigest()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def interactive_log_once(bench: Bench, size: int) -> tuple[float, str]:
    """netrepl in a pty, hex view, --log: (seconds, "" or what was wrong with the log)."""
    log = bench.workdir / "flood.jsonl"
    with Processes(bench.state_dir) as procs:
        flooder = procs.peer("flood", "--bytes", str(size), "--wait-line", "--sha")
        pty = procs.pty(["--view", "hex", "--log", str(log), "127.0.0.1", str(flooder.port)])
        screen = Screen(pty)
        screen.wait_for(lambda text: "view hex" in text, 30, "the first prompt")
        pty.send(b"go\r")  # the flooder starts once netrepl is at its prompt
        report = drain_until_report(screen, flooder, FLOOD_TIMEOUT)
        status = quit_netrepl(screen)
    seconds = report["closed_at"] - report["started_at"]
    problem = ""
    if status != 0:
        problem = f"netrepl exited {status} after /quit"
    total, digest = log_digest(log)
    log.unlink()
    Path(f"{log}.data").unlink(missing_ok=True)
    if total != size or digest != report["sha256"]:
        problem = f"log incomplete: {total:,} of {size:,} bytes, sha256 {digest[:12]}"
    return seconds, problem


def receive_log(bench: Bench) -> list[Row]:
    size = bench.size(500 * MB)
    row = Row(
        f"receive --log, interactive, hex view ({size_text(size)})",
        "ratio_min",
        0.8,
        reference_name="recv_into->file sink",
    )
    ours: list[float] = []
    theirs: list[float] = []
    problems: list[str] = []
    for _ in bench.repetitions(ours, theirs):
        theirs.append(_rate(size, sink_once(bench, size)[0]))
        seconds, problem = interactive_log_once(bench, size)
        ours.append(_rate(size, seconds))
        if problem:
            problems.append(problem)
    row.measured(ours, theirs, "MB/s")
    row.details = {
        "netrepl_MBps": ours,
        "sink_MBps": theirs,
        "bytes": size,
        # A log to a file keeps its data raw (transcript version 2): no base64 to encode.
        "log_layout": "records in F, data raw in F.data",
    }
    if problems:
        row.check_failed = True
        row.note = "; ".join(sorted(set(problems)))
    else:
        row.details["log"] = "complete: received records hash to the flood (sha256), every rep"
    return [row]


def batch_once(bench: Bench, size: int, view: str, out: Path | None) -> tuple[float, dict]:
    """`netrepl --view VIEW HOST PORT < /dev/null > out`: (seconds to exit, flood report)."""
    err = bench.workdir / "netrepl.err"
    with Processes(bench.state_dir) as procs, open(err, "wb") as stderr:
        flooder = procs.peer("flood", "--bytes", str(size), "--sha")
        argv = [*netrepl_command(), "--view", view, "-q", "--linger", "30"]
        argv += ["127.0.0.1", str(flooder.port)]
        with open(out, "wb") if out is not None else open("/dev/null", "wb") as stdout:
            process = procs.popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
            status = procs.wait(process, FLOOD_TIMEOUT, "netrepl (batch)")
            exited = time.monotonic()
        report = flooder.report(FLOOD_TIMEOUT)
    if status != 0:
        raise BenchmarkError(f"netrepl exited {status}: {err.read_text()[-300:]}")
    return exited - report["started_at"], report


def receive_raw(bench: Bench) -> list[Row]:
    size = bench.size(500 * MB)
    row = Row(
        f"receive, batch --view raw > file ({size_text(size)})",
        "ratio_min",
        0.8,
        reference_name="recv_into->file sink",
    )
    out = bench.workdir / "raw.bin"
    ours: list[float] = []
    theirs: list[float] = []
    problems: list[str] = []
    for _ in bench.repetitions(ours, theirs):
        theirs.append(_rate(size, sink_once(bench, size)[1]))
        seconds, report = batch_once(bench, size, "raw", out)
        ours.append(_rate(size, seconds))
        if out.stat().st_size != size or file_digest(out) != report["sha256"]:
            problems.append(f"file differs from the flood ({out.stat().st_size:,} bytes)")
        out.unlink()
    row.measured(ours, theirs, "MB/s")
    row.details = {"netrepl_MBps": ours, "sink_MBps": theirs, "bytes": size}
    if problems:
        row.check_failed = True
        row.note = "; ".join(sorted(set(problems)))
    else:
        row.details["file"] = "identical to the flood (sha256), every rep"
    return [row]


def hexdump_available() -> str | None:
    return shutil.which("hexdump")


def check_batch_hex(bench: Bench, size: int, hexdump: str) -> str:
    """One untimed run to a file: is every line there, as `hexdump -C` writes it? "" if so."""
    out = bench.workdir / "hex.txt"
    data_file = bench.workdir / "check.bin"
    data_file.write_bytes(pattern_bytes("binary", size))
    expected = subprocess.run(
        [hexdump, "-C", str(data_file)], capture_output=True, timeout=60, check=True
    ).stdout
    data_file.unlink()
    batch_once(bench, size, "hex", out)
    got = out.read_bytes()
    out.unlink()
    # hexdump -C ends with a line holding only the total length; netrepl shows no such line.
    expected = expected[: expected.rstrip(b"\n").rfind(b"\n") + 1]
    if got == expected:
        return ""
    lines, wanted = got.count(b"\n"), expected.count(b"\n")
    return f"batch hex output differs from hexdump -C ({lines:,} of {wanted:,} lines)"


def batch_hex(bench: Bench) -> list[Row]:
    size = bench.size(50 * MB)
    row = Row(
        f"batch --view hex > /dev/null ({size_text(size)})",
        "ratio_min",
        2.0,
        reference_name="hexdump -C",
    )
    hexdump = hexdump_available()
    if hexdump is None:
        row.note = "not measured: no hexdump on this machine (util-linux / bsdmainutils)"
        return [row]
    data_file = bench.workdir / "flood.bin"
    data_file.write_bytes(pattern_bytes("binary", size))
    ours: list[float] = []
    theirs: list[float] = []
    try:
        for _ in bench.repetitions(ours, theirs):
            seconds = bench_timed_hexdump(bench, hexdump, data_file)
            theirs.append(_rate(size, seconds))
            ours.append(_rate(size, batch_once(bench, size, "hex", None)[0]))
    finally:
        data_file.unlink()
    row.measured(ours, theirs, "MB/s")
    row.details = {"netrepl_MBps": ours, "hexdump_MBps": theirs, "bytes": size}
    problem = check_batch_hex(bench, max(size // 10, 1 << 20), hexdump)
    if problem:
        row.check_failed = True
        row.note = problem
    else:
        row.details["lines"] = "every line written, identical to hexdump -C (checked on a tenth)"
    return [row]


def bench_timed_hexdump(bench: Bench, hexdump: str, path: Path) -> float:
    with Processes(bench.state_dir) as procs:
        return procs.run([hexdump, "-C", str(path)], FLOOD_TIMEOUT, stdout=subprocess.DEVNULL)
