"""Relay figures: bytes per second through `netrepl -l P --relay` in batch mode (with and
without `--log`), its memory over that transfer, and the round-trip time it adds, each against
socat relaying the same two endpoints in the same run (the issue's reference).

The endpoints (`benchmarks/relay_peers.py`) are the same processes whatever relays them, and
never the relay itself. Without socat the rows still measure netrepl and say that the
reference is missing; nothing is ever relayed beyond 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmarks.bench import MB, Bench, size_text
from benchmarks.flood import percentile
from benchmarks.processes import (
    PYTHON,
    BenchmarkError,
    Peer,
    Processes,
    memory_kib,
    netrepl_command,
    wait_exit,
)
from benchmarks.relay_peers import START_LINE
from benchmarks.results import Quantity, Row, median
from benchmarks.startup import compile_netrepl
from benchmarks.transcripts import Transcript

Relayer = Literal["netrepl", "socat", "direct"]
"""What stands between the endpoints: netrepl, socat, or nothing (the client connects to the
upstream itself: the round trip that relaying adds to)."""

TRANSFER_TIMEOUT = 120.0
LISTEN_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
ROUND_TRIPS = 10_000
# socat's own buffer is 8 KiB unless told; with netrepl's read size (1 MiB) it is another
# program. The reference is socat as a user types it; this one is in the details.
SOCAT_BIG_BUFFER = ["-b", str(1 << 20)]
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket
NO_SOCAT = "no socat on this machine: the reference was not measured"


def socat_path() -> str | None:
    return shutil.which("socat")


def socat_version() -> str:
    socat = socat_path()
    if socat is None:
        return ""
    try:
        said = subprocess.run([socat, "-V"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return next((line for line in said.splitlines() if "version" in line), "?").strip()


def free_port() -> int:
    """A loopback port free a moment ago, for a relay that must be told its port (socat
    cannot say which one it took, and netrepl says so only in the status lines -q hides)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_listening(port: int) -> bool:
    """Something listens on TCP `port` (from /proc/net/tcp: asking by connecting would be a
    client of the relay, and a flow of its own)."""
    wanted = f":{port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1].endswith(wanted) and fields[3] == TCP_LISTEN:
                return True
    return False


def wait_listening(port: int, process: subprocess.Popen[Any], what: str, err: Path) -> None:
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while not is_listening(port):
        if process.poll() is not None:
            tail = err.read_text(errors="replace")[-300:] if err.exists() else ""
            raise BenchmarkError(f"{what} exited {process.returncode} before listening: {tail}")
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{what} did not listen on {port} in {LISTEN_TIMEOUT:g} s")
        time.sleep(0.01)  # pacing: polling a table the kernel gives no event for


@dataclass
class Relay:
    """A relay process on `port` in front of the upstream, started by `start_relay`."""

    relayer: Relayer
    port: int
    process: subprocess.Popen[bytes] | None = None
    stderr: Path | None = None
    quiet: bool = True
    """netrepl with -q: nothing on stderr at all; without, its status lines end with the
    summary of the flows (`relayed 1 flow: ...`)."""

    def rss_kib(self, key: str) -> int:
        assert self.process is not None
        return memory_kib(self.process.pid)[key]


def start_relay(
    procs: Processes,
    bench: Bench,
    relayer: Relayer,
    upstream: int,
    *,
    log: Path | None = None,
    socat_options: tuple[str, ...] = (),
    quiet: bool = True,
) -> Relay:
    """netrepl or socat listening on 127.0.0.1 and relaying each client to `upstream`; for
    `direct`, the upstream itself. netrepl runs with -q unless `quiet` is False."""
    if relayer == "direct":
        return Relay("direct", upstream)
    port = free_port()
    err = bench.workdir / f"{relayer}.err"
    if relayer == "netrepl":
        argv = [*netrepl_command(), "-l", "127.0.0.1", str(port)]
        argv += ["--relay", f"127.0.0.1:{upstream}", "--view", "raw"]
        argv += ["-q"] if quiet else []
        if log is not None:
            argv += ["--log", str(log)]
    else:
        socat = socat_path()
        if socat is None:
            raise BenchmarkError(NO_SOCAT)
        # The issue's `socat TCP-LISTEN:P,reuseaddr TCP:HOST:PORT`, bound to loopback only.
        argv = [socat, *socat_options, f"TCP-LISTEN:{port},reuseaddr,bind=127.0.0.1"]
        argv.append(f"TCP:127.0.0.1:{upstream}")
    with open(err, "wb") as stderr:
        process = procs.popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
        )
    wait_listening(port, process, relayer, err)
    return Relay(relayer, port, process, err, quiet)


def stop_relay(procs: Processes, relay: Relay, summary: str = "") -> str:
    """SIGTERM (how a batch relay is stopped), and wait for its exit; "" when it exited 0
    and its stderr is as it should be (-q: empty; else its last line `summary`), else what was
    wrong."""
    process = relay.process
    if process is None:
        return ""
    # socat ends by itself once its one connection has; netrepl relays until told to stop.
    if relay.relayer == "socat" and wait_exit(process, STOP_TIMEOUT):
        status = process.returncode
    else:
        process.send_signal(signal.SIGTERM)
        status = procs.wait(process, STOP_TIMEOUT, f"{relay.relayer} after SIGTERM")
    said = relay.stderr.read_text(errors="replace").strip() if relay.stderr else ""
    if relay.stderr is not None:
        relay.stderr.unlink(missing_ok=True)
    last = said.splitlines()[-1] if said else ""
    if status != 0:
        return f"{relay.relayer} exited {status}" + (f": {said[-200:]}" if said else "")
    if relay.quiet and said:
        return f"{relay.relayer} -q said: {said[-200:]}"
    if not relay.quiet and last != summary:
        return f"{relay.relayer}'s last line was {last!r}, not {summary!r}"
    return ""


def _peer(procs: Processes, *args: str) -> Peer:
    argv = [PYTHON, "-m", "benchmarks.relay_peers", *args]
    return Peer(procs.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))


def _say_go(peer: Peer) -> None:
    stdin = peer.process.stdin
    assert stdin is not None
    stdin.write("go\n")
    stdin.flush()


@dataclass
class Transfer:
    seconds: float
    idle_kib: int = 0
    """The relay's VmRSS with both legs connected, before the first byte."""
    peak_kib: int = 0
    """Its VmHWM once everything has gone through."""
    problem: str = ""
    sha256: str | None = None
    sent_sha256: str | None = None


def transfer_once(
    bench: Bench,
    relayer: Relayer,
    size: int,
    *,
    log: Path | None = None,
    sha: bool = False,
    socat_options: tuple[str, ...] = (),
    quiet: bool = True,
) -> Transfer:
    """`size` bytes from the source (the upstream) through the relay to the drain (the
    client), timed from the source's first byte to the drain's end of stream. Without
    `quiet`, netrepl's last status line must sum the flow up exactly."""
    with Processes(bench.state_dir) as procs:
        flags = ("--sha",) if sha else ()
        source = _peer(procs, "source", "--bytes", str(size), *flags)
        relay = start_relay(
            procs, bench, relayer, source.port, log=log, socat_options=socat_options, quiet=quiet
        )
        drain = _peer(procs, "drain", "--port", str(relay.port), *flags)
        source.report(LISTEN_TIMEOUT)  # accepted: both legs of the flow are up
        measured = relayer == "netrepl"
        idle = relay.rss_kib("VmRSS") if measured else 0
        _say_go(drain)
        got = drain.report(TRANSFER_TIMEOUT)
        sent = source.report(TRANSFER_TIMEOUT)
        peak = relay.rss_kib("VmHWM") if measured else 0
        problem = stop_relay(procs, relay, summary(size))
    if got["bytes"] != size or sent["bytes"] != size:
        arrived = f"{got['bytes']:,} of {size:,} bytes arrived"
        problem = f"{arrived}; {problem}" if problem else arrived
    return Transfer(
        got["eof_at"] - sent["started_at"],
        idle,
        peak,
        problem,
        got.get("sha256"),
        sent.get("sha256"),
    )


def summary(size: int) -> str:
    """netrepl's last line on stderr after relaying one flow of `size` bytes from the
    upstream (and the client's START_LINE the other way)."""
    return (
        f"netrepl: relayed 1 flow: {len(START_LINE):,} bytes from the clients,"
        f" {size:,} from the upstream"
    )


def rate(size: int, seconds: float) -> float:
    return size / seconds / MB


def leg_digest(path: Path, side: str, *, hashed: bool = True) -> tuple[int, str]:
    """Bytes and sha256 of what a transcript says the `side` leg (client or upstream) of
    flow #1 received, in order; without `hashed`, the bytes only (counted from the base64's
    length, three times faster: ~4 s for a gigabyte's log here)."""
    digest = hashlib.sha256()
    total = 0
    conn = None
    with Transcript(path) as log:
        for line in log:
            if conn is None and '"connected"' in line:
                record = json.loads(line)
                if record.get("side") == side and record.get("flow") == 1:
                    conn = record["conn"]
            elif conn is not None and '"received"' in line:
                record = json.loads(line)
                if record.get("type") != "received" or record.get("conn") != conn:
                    continue
                if hashed:
                    data = log.data(record)
                    total += len(data)
                    digest.update(data)
                else:
                    total += log.length(record)
    return total, digest.hexdigest() if hashed else ""


@dataclass
class Throughput:
    """The transfers of one throughput row: netrepl's and each reference's, per repetition."""

    netrepl: list[Transfer] = field(default_factory=list)
    socat: list[float] = field(default_factory=list)
    socat_big_buffer: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    netrepl_rates: list[float] = field(default_factory=list)
    """netrepl's rate in each repetition (MB/s): the spread that asks for more of them."""


def measure_throughput(
    bench: Bench,
    size: int,
    *,
    log: bool,
    big_buffer: bool,
) -> Throughput:
    """Repetitions of netrepl and socat (interleaved, so that drift touches both alike)."""
    result = Throughput()
    has_socat = socat_path() is not None
    for _ in bench.repetitions(result.netrepl_rates, result.socat):
        if has_socat:
            plain = transfer_once(bench, "socat", size)
            result.socat.append(rate(size, plain.seconds))
            references = [plain]
            if big_buffer:
                big = transfer_once(bench, "socat", size, socat_options=tuple(SOCAT_BIG_BUFFER))
                result.socat_big_buffer.append(rate(size, big.seconds))
                references.append(big)
            # A reference that lost bytes or failed is no reference.
            result.problems += [f"the reference: {t.problem}" for t in references if t.problem]
        path = bench.workdir / "relay.jsonl" if log else None
        try:
            transfer = transfer_once(bench, "netrepl", size, log=path, sha=False)
            if transfer.problem:
                result.problems.append(transfer.problem)
            if path is not None:
                problem = check_log(path, size)
                if problem:
                    result.problems.append(problem)
        finally:
            if path is not None:
                # A gigabyte of dirty pages left behind slows every later write (performance.md).
                path.unlink(missing_ok=True)
                Path(f"{path}.data").unlink(missing_ok=True)
        result.netrepl.append(transfer)
        result.netrepl_rates.append(rate(size, transfer.seconds))
    return result


def check_log(path: Path, size: int) -> str:
    """What is wrong with the log of a `size`-byte transfer ("" if nothing): its upstream
    records are counted here; their bytes are hashed against the source's in `check_content`."""
    total, _ = leg_digest(path, "upstream", hashed=False)
    return "" if total == size else f"log incomplete: {total:,} of {size:,} upstream bytes"


def check_content(bench: Bench, size: int, *, log: bool) -> str:
    """One untimed transfer with hashing at both ends, and netrepl's status lines on: "" when
    the client received exactly what the upstream sent, netrepl's summary says so (and, with
    `log`, the log's upstream records hash to it too)."""
    path = bench.workdir / "check.jsonl" if log else None
    try:
        transfer = transfer_once(bench, "netrepl", size, log=path, sha=True, quiet=False)
        if transfer.problem:
            return transfer.problem
        if transfer.sha256 != transfer.sent_sha256:
            return "the client received other bytes than the upstream sent (sha256)"
        if path is not None:
            total, digest = leg_digest(path, "upstream")
            if total != size or digest != transfer.sent_sha256:
                return f"log differs from what was relayed: {total:,} bytes, sha256 {digest[:12]}"
    finally:
        if path is not None:
            path.unlink(missing_ok=True)
            Path(f"{path}.data").unlink(missing_ok=True)
    return ""


def _spread(values: list[float]) -> str:
    return f"{min(values):,.0f} – {max(values):,.0f}" if values else "-"


def throughput_row(bench: Bench, size: int, result: Throughput, *, log: bool, target: float) -> Row:
    label = "relay --log FILE" if log else "relay"
    row = Row(
        f"{label}, batch --view raw -q > /dev/null, one way ({size_text(size)})",
        "ratio_min",
        target,
        reference_name="socat TCP-LISTEN TCP",
    )
    ours = [rate(size, t.seconds) for t in result.netrepl]
    row.measured(ours, result.socat, "MB/s")
    notes = []
    if not result.socat:
        notes.append(NO_SOCAT)
    row.details = {
        "bytes": size,
        "netrepl_MBps": ours,
        "socat_MBps": result.socat,
        "socat": socat_version(),
        "netrepl_idle_rss_KiB": [t.idle_kib for t in result.netrepl],
        "netrepl_peak_rss_KiB": [t.peak_kib for t in result.netrepl],
        "spread_MBps": {"netrepl": _spread(ours), "socat": _spread(result.socat)},
    }
    if result.socat_big_buffer:
        row.details["socat_b_1MiB_MBps"] = result.socat_big_buffer
        row.details["socat_b_1MiB_ratio"] = row.netrepl.value / median(result.socat_big_buffer)
    problem = check_content(bench, max(size // 10, 1 << 20), log=log)
    if problem or result.problems:
        row.check_failed = True
        notes += sorted({*result.problems, *([problem] if problem else [])})
    else:
        what = "the client got every byte, every rep; hashed end to end on a tenth"
        row.details["check"] = what + (", and the log's upstream records too" if log else "")
    row.note = "; ".join(notes)
    return row


def memory_row(size: int, transfers: list[Transfer]) -> Row:
    """The worst repetition: the issue's bound holds for every 1 GB, not for the median."""
    row = Row(
        f"relay memory: VmHWM over {size_text(size)} relayed, worst of {len(transfers)}",
        "ratio_max",
        1.5,
        reference_name="idle RSS of the relay, both legs connected",
    )
    worst = max(transfers, key=lambda t: t.peak_kib / t.idle_kib)
    row.netrepl = Quantity(worst.peak_kib / 1024, "MiB")
    row.reference = Quantity(worst.idle_kib / 1024, "MiB")
    row.details = {
        "bytes": size,
        "idle_rss_KiB": [t.idle_kib for t in transfers],
        "peak_KiB": [t.peak_kib for t in transfers],
        "ratios": [t.peak_kib / t.idle_kib for t in transfers],
    }
    return row


def relay_throughput(bench: Bench) -> list[Row]:
    # Compiled first, as an installed netrepl is: compiling at each start costs time and
    # leaves ~1.5 MiB more in the idle RSS the memory row divides by.
    compile_netrepl()
    size = bench.size(1000 * MB)
    result = measure_throughput(bench, size, log=False, big_buffer=True)
    return [
        throughput_row(bench, size, result, log=False, target=0.8),
        memory_row(size, result.netrepl),
    ]


def relay_log(bench: Bench) -> list[Row]:
    compile_netrepl()
    size = bench.size(1000 * MB)
    result = measure_throughput(bench, size, log=True, big_buffer=False)
    row = throughput_row(bench, size, result, log=True, target=0.5)
    return [row]


def round_trips_once(bench: Bench, relayer: Relayer, rounds: int) -> list[float]:
    """`rounds` one-byte round trips (µs) from the pinger through the relay to the echo
    server and back."""
    with Processes(bench.state_dir) as procs:
        echo = _peer(procs, "echo")
        relay = start_relay(procs, bench, relayer, echo.port)
        ping = _peer(procs, "ping", "--port", str(relay.port), "--rounds", str(rounds))
        result = ping.report(LISTEN_TIMEOUT + rounds * 0.005)
        echo.report(LISTEN_TIMEOUT)
        problem = stop_relay(procs, relay)
    if problem:
        raise BenchmarkError(problem)
    return result["round_trip_us"]


def added(table: dict[Relayer, list[float]], relayer: Relayer) -> list[float]:
    """Per repetition: the relayer's figure less the direct path's, measured beside it."""
    return [ours - direct for ours, direct in zip(table[relayer], table["direct"], strict=True)]


def relay_latency(bench: Bench) -> list[Row]:
    compile_netrepl()
    rounds = bench.size(ROUND_TRIPS)
    row = Row(
        f"relay: added round trip, median ({rounds:,} one-byte round trips)",
        "ratio_max",
        1.5,
        reference_name="socat's added round trip",
    )
    relayers: list[Relayer] = ["direct", "netrepl"]
    if socat_path() is not None:
        relayers.insert(1, "socat")
    p50: dict[Relayer, list[float]] = {relayer: [] for relayer in relayers}
    p99: dict[Relayer, list[float]] = {relayer: [] for relayer in relayers}
    netrepl_added: list[float] = []
    socat_added: list[float] = []
    for _ in bench.repetitions(netrepl_added, socat_added if "socat" in relayers else None):
        for relayer in relayers:  # interleaved: drift touches each alike
            times = round_trips_once(bench, relayer, rounds)
            p50[relayer].append(statistics.median(times))
            p99[relayer].append(percentile(times, 0.99))
        netrepl_added[:] = added(p50, "netrepl")
        if "socat" in relayers:
            socat_added[:] = added(p50, "socat")
    row.measured(netrepl_added, socat_added, "µs")
    row.details = {"round_trips": rounds, "p50_us": p50, "p99_us": p99}
    said = [f"p50/p99 (µs): direct {median(p50['direct']):.0f}/{median(p99['direct']):.0f}"]
    for relayer in relayers[1:]:
        added_p50, added_p99 = added(p50, relayer), added(p99, relayer)
        row.details |= {f"{relayer}_added_p50_us": added_p50, f"{relayer}_added_p99_us": added_p99}
        said.append(
            f"{relayer} {median(p50[relayer]):.0f}/{median(p99[relayer]):.0f}"
            f" (added {median(added_p50):.0f}/{median(added_p99):.0f})"
        )
    if "socat" not in relayers:
        said.append(NO_SOCAT)
    row.note = "; ".join(said)
    return [row]
