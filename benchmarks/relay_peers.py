"""The two ends of a relayed connection for the relay benchmarks, each run as a process of its
own (`python -m benchmarks.relay_peers ...`): a source and a drain for throughput, an echo
server and a pinger for round trips. Whatever relays them (netrepl, socat, or nothing) sits
between the two and must never be one of them.

They bind and connect to 127.0.0.1 only, print a JSON line when ready (the source another once
its client is there) and one when done. Every socket wait is bounded by a timeout and the
drain's wait for its start line ends when the harness closes stdin, so a stuck benchmark ends
by itself. Times are CLOCK_MONOTONIC, one clock for every process on Linux.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import sys
import time

from benchmarks.peers import pattern_chunk, pattern_sha256

WAIT_SECONDS = 120.0
# What the drain reads per call: netrepl's read size (transport/stream.py READ_SIZE).
DRAIN_READ_SIZE = 1024 * 1024
START_LINE = b"go\n"
# Round trips before the timed ones: connections, caches and the relay's first-use costs.
WARM_UP_ROUNDS = 200


def _say(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _listener() -> socket.socket:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT_SECONDS)
    _say({"port": listener.getsockname()[1]})
    return listener


def _accept_one(listener: socket.socket) -> socket.socket:
    conn, _ = listener.accept()
    listener.close()
    conn.settimeout(WAIT_SECONDS)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def source(size: int, sha: bool) -> int:
    """The upstream: accept one connection (and say so), wait for the START_LINE through it,
    send `size` bytes of the binary pattern in 1 MiB `sendall`s, half-close, and wait for the
    other end to close."""
    view = memoryview(pattern_chunk("binary"))
    listener = _listener()
    report: dict[str, object] = {"error": None}
    sent = 0
    try:
        conn = _accept_one(listener)
    except OSError as error:
        _say({"error": f"accept: {error}"})
        return 1
    _say({"accepted": True})
    with conn:
        try:
            asked = b""
            while not asked.endswith(START_LINE):
                piece = conn.recv(64)
                if not piece:
                    raise ConnectionError("the client left before asking for the data")
                asked += piece
            report["started_at"] = time.monotonic()
            while sent < size:
                piece = min(size - sent, len(view))
                conn.sendall(view[:piece])
                sent += piece
            report["sent_at"] = time.monotonic()
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass
            report["closed_at"] = time.monotonic()
        except OSError as error:
            report["error"] = f"{type(error).__name__}: {error}"
    report["bytes"] = sent
    # Hashed after the timing, so hashing never slows the sending.
    report["sha256"] = pattern_sha256("binary", sent) if sha else None
    _say(report)
    return 0 if report["error"] is None else 1


def drain(port: int, sha: bool) -> int:
    """The client: connect (and say so, with its own port), send the START_LINE once stdin
    has a line, then `recv_into` one buffer until end of stream, keeping nothing (hashing it
    with `sha`: for checks only, it slows the reading); close."""
    buffer = bytearray(DRAIN_READ_SIZE)
    view = memoryview(buffer)
    digest = hashlib.sha256() if sha else None
    received = 0
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as conn:
        _say({"port": conn.getsockname()[1], "connected": True})
        if not sys.stdin.readline():
            _say({"error": "stdin closed before the start"})
            return 1
        conn.sendall(START_LINE)
        try:
            while count := conn.recv_into(buffer):
                received += count
                if digest is not None:
                    digest.update(view[:count])
        except OSError as error:
            _say({"error": f"{type(error).__name__}: {error}", "bytes": received})
            return 1
        eof = time.monotonic()
    _say({"bytes": received, "eof_at": eof, "sha256": digest.hexdigest() if digest else None})
    return 0


def echo() -> int:
    """The upstream of the round trips: accept one connection and send back every byte it
    reads, until end of stream."""
    listener = _listener()
    try:
        conn = _accept_one(listener)
    except OSError as error:
        _say({"error": f"accept: {error}"})
        return 1
    echoed = 0
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
                echoed += len(data)
        except OSError as error:
            _say({"error": f"{type(error).__name__}: {error}", "bytes": echoed})
            return 1
    _say({"bytes": echoed})
    return 0


def ping(port: int, rounds: int) -> int:
    """The client of the round trips: connect (and say so, with its own port), then send one
    byte and wait for it to come back, WARM_UP_ROUNDS times untimed and `rounds` times timed;
    report each timed round trip (µs) and close."""
    times: list[float] = []
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _say({"port": conn.getsockname()[1], "connected": True})
        try:
            for index in range(WARM_UP_ROUNDS + rounds):
                byte = bytes((index & 0xFF,))
                began = time.perf_counter_ns()
                conn.sendall(byte)
                answer = conn.recv(1)
                ended = time.perf_counter_ns()
                if answer != byte:
                    raise ConnectionError(f"round trip {index}: sent {byte!r}, got {answer!r}")
                if index >= WARM_UP_ROUNDS:
                    times.append((ended - began) / 1000)
        except OSError as error:
            _say({"error": f"{type(error).__name__}: {error}", "rounds": len(times)})
            return 1
    _say({"rounds": len(times), "round_trip_us": times})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay_peers")
    sub = parser.add_subparsers(dest="role", required=True)
    source_args = sub.add_parser("source", help="accept one client, send it bytes when asked")
    source_args.add_argument("--bytes", type=int, required=True)
    source_args.add_argument("--sha", action="store_true", help="report the sha256 of the data")
    drain_args = sub.add_parser("drain", help="connect, ask for the data, count it")
    drain_args.add_argument("--port", type=int, required=True)
    drain_args.add_argument("--sha", action="store_true", help="report the sha256 of the data")
    sub.add_parser("echo", help="accept one client and echo what it sends")
    ping_args = sub.add_parser("ping", help="connect and time one-byte round trips")
    ping_args.add_argument("--port", type=int, required=True)
    ping_args.add_argument("--rounds", type=int, required=True)
    args = parser.parse_args(argv)
    if args.role == "source":
        return source(args.bytes, args.sha)
    if args.role == "drain":
        return drain(args.port, args.sha)
    if args.role == "echo":
        return echo()
    return ping(args.port, args.rounds)


if __name__ == "__main__":
    raise SystemExit(main())
