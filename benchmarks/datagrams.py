"""UDP bursts: how many datagrams of one burst `netrepl -u -l --log` keeps, against the plain
`recvfrom` loop a user would write, both hearing the same paced sender in the same run.

UDP has no flow control: what a receiver does not read in time, the kernel drops. So the
figure is a count, not a rate: datagrams that reached netrepl's log intact (each carries its
number), over datagrams the plain loop kept. The plain loop uses the system's default receive
buffer (it is what a user would write); netrepl uses its own default (`--rcvbuf`).
"""

from __future__ import annotations

import json
import re
import select
import subprocess
import time
from pathlib import Path

from benchmarks.bench import Bench
from benchmarks.datagram_peers import datagram_number
from benchmarks.processes import (
    PYTHON,
    BenchmarkError,
    Peer,
    Processes,
    Screen,
    drain_until_report,
    netrepl_command,
    quit_netrepl,
)
from benchmarks.results import Row
from benchmarks.transcripts import Transcript
from netrepl.transport.udp import DEFAULT_RCVBUF

COUNT = 20_000
SIZE = 1000
RATE = 100e6  # bytes per second: the issue's ~100 MB/s
TIMEOUT = 60.0
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+) \(UDP\)")


def _sender(procs: Processes, port: int, count: int) -> Peer:
    argv = [PYTHON, "-m", "benchmarks.datagram_peers", "send", "--port", str(port)]
    argv += ["--count", str(count), "--size", str(SIZE), "--rate", str(RATE)]
    return Peer(procs.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))


def _start(sender: Peer) -> None:
    """The receiver is ready: send the burst."""
    assert sender.process.stdin is not None
    sender.process.stdin.write("go\n")
    sender.process.stdin.flush()


def plain_loop_once(bench: Bench, count: int) -> tuple[dict[str, object], dict[str, object]]:
    """The reference: the plain loop's report (datagrams kept, its buffer), the sender's."""
    with Processes(bench.state_dir) as procs:
        argv = [PYTHON, "-m", "benchmarks.datagram_peers", "loop"]
        argv += ["--count", str(count), "--size", str(SIZE)]
        loop = Peer(procs.popen(argv, stdout=subprocess.PIPE, text=True))
        sender = _sender(procs, loop.port, count)
        _start(sender)
        sent = sender.report(TIMEOUT)
        result = loop.report(TIMEOUT)
    return result, sent


def _listening_port(stderr: Path, process: subprocess.Popen[bytes]) -> int:
    """The port netrepl says it listens on (`listening on 127.0.0.1:PORT (UDP)`)."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        text = stderr.read_text(errors="replace")
        for line in text.splitlines():
            if "listening on 127.0.0.1:" in line:
                return int(line.split("127.0.0.1:")[1].split()[0])
        if process.poll() is not None:
            raise BenchmarkError(f"netrepl exited {process.returncode}: {text[-300:]}")
        select.select([], [], [], 0.02)  # pacing: polling a file for a line
    raise BenchmarkError("netrepl did not say where it listens")


def kept_in_log(path: Path, count: int) -> tuple[int, int]:
    """(burst datagrams intact in the log, received records that are not)."""
    intact: set[int] = set()
    bad = 0
    with Transcript(path) as log:
        for line in log:
            record = json.loads(line)
            if record.get("type") != "received":
                continue
            number = datagram_number(log.data(record), SIZE)
            if number is None or number >= count or not record.get("datagram"):
                bad += 1
            else:
                intact.add(number)
    return len(intact), bad


def netrepl_once(bench: Bench, count: int, view: str) -> tuple[int, int, dict[str, object]]:
    """`netrepl -u -l 127.0.0.1 0 --view VIEW --log F` in batch mode, stdout to /dev/null:
    (datagrams intact in the log, records that are not, the sender's report)."""
    log = bench.workdir / "burst.jsonl"
    err = bench.workdir / "burst.err"
    with Processes(bench.state_dir) as procs, open(err, "wb") as stderr:
        argv = [*netrepl_command(), "-u", "-l", "127.0.0.1", "0", "--view", view]
        argv += ["--log", str(log), "--linger", "0.5"]
        netrepl = procs.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr)
        port = _listening_port(err, netrepl)
        sender = _sender(procs, port, count)
        _start(sender)
        sent = sender.report(TIMEOUT)
        # End of stdin: netrepl lingers until 0.5 s pass with nothing received, shows what
        # it queued, and exits; its log is then complete.
        assert netrepl.stdin is not None
        netrepl.stdin.close()
        status = procs.wait(netrepl, TIMEOUT, "netrepl (UDP listener)")
    if status != 0:
        raise BenchmarkError(f"netrepl exited {status}: {err.read_text()[-300:]}")
    kept, bad = kept_in_log(log, count)
    log.unlink()
    Path(f"{log}.data").unlink(missing_ok=True)
    return kept, bad, sent


def interactive_once(bench: Bench, count: int, view: str) -> tuple[int, int, dict[str, object]]:
    """The same in a pty, as a person runs it (the display keeps up by skipping); /quit
    once the burst is logged."""
    log = bench.workdir / "burst.jsonl"
    with Processes(bench.state_dir) as procs:
        pty = procs.pty(["-u", "-l", "127.0.0.1", "0", "--view", view, "--log", str(log)])
        screen = Screen(pty)
        found: list[int] = []

        def listening(text: str) -> bool:
            match = LISTENING.search(text)
            if match:
                found.append(int(match.group(1)))
            return match is not None

        screen.wait_for(listening, 30, "the listening line")
        sender = _sender(procs, found[0], count)
        _start(sender)
        sent = drain_until_report(screen, sender, TIMEOUT)
        screen.drain_until_quiet(0.5, 10)
        status = quit_netrepl(screen)
    if status != 0:
        raise BenchmarkError(f"netrepl exited {status} after /quit")
    kept, bad = kept_in_log(log, count)
    log.unlink()
    Path(f"{log}.data").unlink(missing_ok=True)
    return kept, bad, sent


def _system_cap() -> str:
    try:
        limit = int(Path("/proc/sys/net/core/rmem_max").read_text())
    except (OSError, ValueError):
        return ""
    return f", net.core.rmem_max {limit:,}"


def _mbps(report: dict[str, object]) -> float:
    return float(report["bytes"]) / float(report["seconds"]) / 1e6  # type: ignore[arg-type]


def udp_burst(bench: Bench) -> list[Row]:
    """Two rows, batch and interactive (pty), both against the plain loop's count of the
    same rep: each rep runs the loop, then netrepl in batch, then netrepl in a pty."""
    count = bench.size(COUNT)
    burst = f"{count:,} x {SIZE} B, {RATE / 1e6:g} MB/s"
    runs = {
        "batch": (f"UDP burst -u -l --log, batch hex ({burst}): datagrams kept", netrepl_once),
        "interactive": (
            f"UDP burst -u -l --log, interactive hex ({burst}): datagrams kept",
            interactive_once,
        ),
    }
    reference: list[int] = []
    kept: dict[str, list[int]] = {mode: [] for mode in runs}
    rates: dict[str, list[float]] = {mode: [] for mode in ("plain loop", *runs)}
    problems: dict[str, list[str]] = {mode: [] for mode in runs}
    plain_rcvbuf = 0
    first = next(iter(runs))
    for _ in bench.repetitions(kept[first], reference):  # the batch row's spread decides
        plain, sent = plain_loop_once(bench, count)
        reference.append(int(plain["kept"]))  # type: ignore[call-overload]
        plain_rcvbuf = int(plain["rcvbuf"])  # type: ignore[call-overload]
        rates["plain loop"].append(round(_mbps(sent), 1))
        for mode, (_, run) in runs.items():
            ours, bad, sent = run(bench, count, "hex")
            kept[mode].append(ours)
            rates[mode].append(round(_mbps(sent), 1))
            if bad:
                problems[mode].append(f"{bad} received records are not burst datagrams")
    rows = []
    slowest = min(rate for values in rates.values() for rate in values)
    for mode, (figure, _) in runs.items():
        row = Row(figure, "ratio_min", 0.9, reference_name="plain recvfrom loop")
        row.measured(kept[mode], reference, "datagrams")
        row.details = {
            "netrepl_kept": kept[mode],
            "plain_loop_kept": reference,
            "sent": count,
            "datagram_bytes": SIZE,
            "sender_MBps": {"plain loop": rates["plain loop"], "netrepl": rates[mode]},
            # getsockopt's figures: Linux reports twice what it counts as data.
            "plain_loop_SO_RCVBUF": plain_rcvbuf,
            "netrepl_rcvbuf": f"asks {DEFAULT_RCVBUF:,} (--rcvbuf default){_system_cap()}",
        }
        notes = sorted(set(problems[mode]))
        if notes:
            row.check_failed = True
        if slowest < 0.9 * RATE / 1e6:
            # A loaded machine: the sender could not keep its pace, for either receiver.
            notes.append(f"the sender fell behind its pace in some reps (down to {slowest} MB/s)")
        row.note = "; ".join(notes)
        rows.append(row)
    return rows
