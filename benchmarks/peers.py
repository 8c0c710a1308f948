"""Loopback peers for the benchmarks, each run as a process of its own (`python -m
benchmarks.peers ...`): a flooder, a reference file sink, and an idle server.

They bind 127.0.0.1 only, print one JSON line when ready and one when done, and every wait is
bounded by a socket timeout, so a stuck benchmark ends by itself. Times are CLOCK_MONOTONIC,
which on Linux is one clock for every process: the harness compares them with its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import sys
import threading
import time

CHUNK_SIZE = 1 << 20
# What the sink reads per call: the same as netrepl's reader (transport/stream.py READ_SIZE).
SINK_READ_SIZE = 1024 * 1024
WAIT_SECONDS = 120.0
PATTERNS = ("binary", "high", "noline", "lines")


def pattern_chunk(kind: str) -> bytes:
    """1 MiB that a flood repeats: `binary` any byte (no two 16-byte lines alike, so
    `hexdump -C` squeezes nothing), `high` bytes 0x80-0xff only (the hexdump gutter is all
    dots: typed letters are easy to find among it), `noline` UTF-8 text with no CR or LF,
    `lines` UTF-8 text in lines of 40-100 characters (a log being tailed)."""
    rng = random.Random(f"netrepl-bench-{kind}")
    if kind == "binary":
        return rng.randbytes(CHUNK_SIZE)
    if kind == "high":
        return bytes(b | 0x80 for b in rng.randbytes(CHUNK_SIZE))
    if kind == "noline":
        words = ["flood", "设备", "数据", "line", "without", "end", "0123456789", "中文", "\t"]
        text = " ".join(rng.choice(words) for _ in range(CHUNK_SIZE // 4)).encode()
        return text[:CHUNK_SIZE] if len(text) >= CHUNK_SIZE else (text * 2)[:CHUNK_SIZE]
    if kind == "lines":
        words = ["flood", "设备", "数据", "line", "status", "ok", "0123456789", "温度", "reading"]
        out = bytearray()
        number = 0
        while len(out) < CHUNK_SIZE:
            width = rng.randrange(40, 100)
            line = f"{number:08d}"
            while len(line) < width:
                line += " " + rng.choice(words)
            out += line.encode() + b"\n"
            number += 1
        return bytes(out[:CHUNK_SIZE])
    raise ValueError(f"unknown pattern {kind!r}")


def pattern_bytes(kind: str, size: int) -> bytes:
    """The first `size` bytes of the flood `kind` (for small sizes: it is built in memory)."""
    chunk = pattern_chunk(kind)
    return (chunk * (size // len(chunk) + 1))[:size]


def pattern_sha256(kind: str, size: int, chunk: bytes | None = None) -> str:
    chunk = pattern_chunk(kind) if chunk is None else chunk
    digest = hashlib.sha256()
    view = memoryview(chunk)
    whole, rest = divmod(size, len(chunk))
    for _ in range(whole):
        digest.update(view)
    digest.update(view[:rest])
    return digest.hexdigest()


def _say(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _listener() -> socket.socket:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT_SECONDS)
    _say({"port": listener.getsockname()[1]})
    return listener


def flood(kind: str, size: int | None, seconds: float | None, sha: bool, wait_line: bool) -> int:
    """Accept one client, send it `size` bytes (or send for `seconds`) of the pattern with
    large `sendall`s, half-close, and wait for the client to close in turn. With `wait_line`
    the flood starts only when the client has sent a line (netrepl is at its prompt)."""
    chunk = pattern_chunk(kind)
    view = memoryview(chunk)
    listener = _listener()
    report: dict[str, object] = {"error": None}
    sent = 0
    try:
        conn, _ = listener.accept()
    except OSError as error:
        _say({"error": f"accept: {error}"})
        return 1
    with conn:
        conn.settimeout(WAIT_SECONDS)
        try:
            if wait_line:
                asked = b""
                while b"\n" not in asked:
                    piece = conn.recv(4096)
                    if not piece:
                        raise ConnectionError("the client left before asking for the flood")
                    asked += piece
            report["started_at"] = time.monotonic()
            if seconds is not None:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    conn.sendall(view)
                    sent += len(view)
            else:
                assert size is not None
                while sent < size:
                    piece = min(size - sent, len(view))
                    conn.sendall(view[:piece])
                    sent += piece
            report["sent_at"] = time.monotonic()
            conn.shutdown(socket.SHUT_WR)
            # The client has read everything when it closes its end.
            while conn.recv(65536):
                pass
            report["closed_at"] = time.monotonic()
        except OSError as error:
            report["error"] = f"{type(error).__name__}: {error}"
    report["bytes"] = sent
    # Hashed after the timing, so hashing never slows the sending.
    report["sha256"] = pattern_sha256(kind, sent, chunk) if sha else None
    _say(report)
    return 0 if report["error"] is None else 1


def sink(port: int, out: str) -> int:
    """The reference receiver: connect, `recv_into` one buffer, write it to `out`, until EOF;
    close the file, then the socket (the flooder's clock stops then)."""
    buffer = bytearray(SINK_READ_SIZE)
    view = memoryview(buffer)
    received = 0
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as conn:
        connected = time.monotonic()
        with open(out, "wb") as file:
            while count := conn.recv_into(buffer):
                file.write(view[:count])
                received += count
        eof = time.monotonic()
    _say({"bytes": received, "connected_at": connected, "eof_at": eof})
    return 0


def idle(lifetime: float) -> int:
    """Accept any number of clients and hold them open, silent, until stdin closes or
    `lifetime` seconds pass."""
    listener = _listener()
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    done = threading.Event()

    def wait_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    deadline = time.monotonic() + lifetime
    while not done.is_set() and time.monotonic() < deadline:
        try:
            conn, _ = listener.accept()
            held.append(conn)
        except TimeoutError:
            continue
        except OSError:
            break
    for conn in held:
        conn.close()
    listener.close()
    return 0


def answer(lifetime: float) -> int:
    """A redis-like peer: each client's `PING` line gets `+PONG`, and its end of stream gets
    the close, at once. Any number of clients, one after the other, until stdin closes or
    `lifetime` seconds pass."""
    listener = _listener()
    listener.settimeout(0.2)
    deadline = time.monotonic() + lifetime
    done = threading.Event()

    def wait_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    while not done.is_set() and time.monotonic() < deadline:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            break
        with conn:
            conn.settimeout(WAIT_SECONDS)
            pending = b""
            try:
                while chunk := conn.recv(65536):
                    pending += chunk
                    while b"\n" in pending:
                        line, _, pending = pending.partition(b"\n")
                        if line.rstrip(b"\r") == b"PING":
                            conn.sendall(b"+PONG\r\n")
            except OSError:
                pass
    listener.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers")
    sub = parser.add_subparsers(dest="role", required=True)
    flood_args = sub.add_parser("flood", help="send a pattern to one client as fast as it takes")
    flood_args.add_argument("--pattern", choices=PATTERNS, default="binary")
    amount = flood_args.add_mutually_exclusive_group(required=True)
    amount.add_argument("--bytes", type=int)
    amount.add_argument("--seconds", type=float)
    flood_args.add_argument("--sha", action="store_true", help="report the sha256 of what was sent")
    flood_args.add_argument(
        "--wait-line", action="store_true", help="start when the client has sent a line"
    )
    sink_args = sub.add_parser("sink", help="receive into a file (the reference receiver)")
    sink_args.add_argument("--port", type=int, required=True)
    sink_args.add_argument("--out", required=True)
    idle_args = sub.add_parser("idle", help="accept clients and hold them, silent")
    idle_args.add_argument("--lifetime", type=float, default=WAIT_SECONDS)
    answer_args = sub.add_parser("answer", help="answer PING with +PONG, close at end of stream")
    answer_args.add_argument("--lifetime", type=float, default=WAIT_SECONDS)
    args = parser.parse_args(argv)
    if args.role == "flood":
        return flood(args.pattern, args.bytes, args.seconds, args.sha, args.wait_line)
    if args.role == "sink":
        return sink(args.port, args.out)
    if args.role == "answer":
        return answer(args.lifetime)
    return idle(args.lifetime)


if __name__ == "__main__":
    raise SystemExit(main())
