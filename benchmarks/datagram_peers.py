"""UDP peers for the datagram benchmark, each run as a process of its own (`python -m
benchmarks.datagram_peers ...`): a paced burst sender, and the plain `recvfrom` loop that is
the reference receiver.

Loopback only. Each prints one JSON line when ready and one when done; every wait is bounded
by a socket timeout or a deadline. Datagrams carry their sequence number, so a receiver's kept
datagrams can be checked one by one, whatever it lost.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

WAIT_SECONDS = 60.0
# The reference ends when nothing came for this long after the first datagram: far above any
# gap inside a burst (the sender paces in steps of PACING_STEP).
QUIET_SECONDS = 0.5
# The sender checks its schedule every this many seconds' worth of datagrams.
PACING_STEP = 0.001
# A sender more than this behind its schedule (the machine is loaded) moves the schedule
# rather than catching up: the rate is never above the one asked for.
SLACK_SECONDS = 0.002
SEQUENCE = struct.Struct(">I")
FILLER = bytes(range(256)) * 256


def burst_datagram(number: int, size: int) -> bytes:
    """Datagram `number` of a burst: its number (4 bytes, big-endian), then filler bytes."""
    return SEQUENCE.pack(number) + FILLER[(number % 256) : (number % 256) + size - SEQUENCE.size]


def datagram_number(data: bytes, size: int) -> int | None:
    """The number of a burst datagram, or None when `data` is not one (altered or cut)."""
    if len(data) != size:
        return None
    (number,) = SEQUENCE.unpack_from(data)
    return number if data == burst_datagram(number, size) else None


def _say(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def send_burst(port: int, count: int, size: int, rate: float) -> int:
    """Send `count` datagrams of `size` bytes to 127.0.0.1:`port` at `rate` bytes/s at most,
    once a line arrives on stdin (the receivers are ready); report when done."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    payloads = [burst_datagram(n, size) for n in range(count)]
    _say({"port": sock.getsockname()[1], "ready": True})
    if not sys.stdin.readline():
        return 1
    per_step = max(1, round(rate * PACING_STEP / size))
    step = per_step * size / rate
    started = time.monotonic()
    due = started
    errors = 0
    for first in range(0, count, per_step):
        # Sleeping, not spinning, until a step is due: a spinning sender took a whole core of
        # two from the receiver it measures, and fell behind when the receiver had threads.
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)  # pacing: the next step of datagrams is not sent before its time
        if (now := time.monotonic()) - due > SLACK_SECONDS:
            due = now
        for data in payloads[first : first + per_step]:
            try:
                sock.send(data)
            except OSError:  # ECONNREFUSED from an earlier datagram: nobody listens yet
                errors += 1
        due += step
    finished = time.monotonic()
    sock.close()
    _say(
        {
            "sent": count,
            "bytes": count * size,
            "seconds": finished - started,
            "send_errors": errors,
            "started_at": started,
            "finished_at": finished,
        }
    )
    return 0


def plain_loop(count: int, size: int) -> int:
    """The reference: what a user would write. Default receive buffer, one `recvfrom` per
    datagram; count the burst datagrams kept, intact, until QUIET_SECONDS pass with none."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    _say({"port": sock.getsockname()[1], "rcvbuf": rcvbuf})
    sock.settimeout(WAIT_SECONDS)
    kept: list[bytes] = []
    try:
        while True:
            data, _ = sock.recvfrom(65536)
            kept.append(data)
            sock.settimeout(QUIET_SECONDS)
    except TimeoutError:
        pass
    # Checked after the burst, so checking never slows the receiving.
    numbers = [datagram_number(data, size) for data in kept]
    intact = {n for n in numbers if n is not None and n < count}
    bad = len(numbers) - len(intact)
    _say({"kept": len(intact), "received": len(numbers), "bad": bad, "rcvbuf": rcvbuf})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.datagram_peers")
    sub = parser.add_subparsers(dest="role", required=True)
    sender = sub.add_parser("send", help="send a paced burst once stdin has a line")
    sender.add_argument("--port", type=int, required=True)
    sender.add_argument("--count", type=int, required=True)
    sender.add_argument("--size", type=int, required=True)
    sender.add_argument("--rate", type=float, required=True, help="bytes per second")
    loop = sub.add_parser("loop", help="the plain recvfrom loop (the reference receiver)")
    loop.add_argument("--count", type=int, required=True)
    loop.add_argument("--size", type=int, required=True)
    args = parser.parse_args(argv)
    if args.role == "send":
        return send_burst(args.port, args.count, args.size, args.rate)
    return plain_loop(args.count, args.size)


if __name__ == "__main__":
    raise SystemExit(main())
