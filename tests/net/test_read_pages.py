"""A flood's reads reuse memory: the pages of freed 1 MiB reads serve the next ones, however
many reads the consumers held at once (glibc's thresholds, `stream.keep_read_pages`).

Measured in a fresh process (the allocator's state is per process): a real TCP transport
reads a flood from a loopback peer, and its consumer frees the reads eight at a time, as a
batch display or the log writer may. Page faults are counted over the flood.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tests.net.conftest import netrepl_env

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's"
)

FLOOD = r"""
import itertools, resource, socket, sys, threading
from netrepl.events import Closed, Received
from netrepl.transport import Endpoint, open_transport
from netrepl.transport import stream

if sys.argv[2] == "untuned":
    stream._allocator_tuned = True  # as before the thresholds were fixed: glibc's defaults
size = int(sys.argv[1])
server = socket.create_server(("127.0.0.1", 0))

def flood():
    conn, _ = server.accept()
    block = bytes(range(256)) * 4096
    for _ in range(size // len(block)):
        conn.sendall(block)
    conn.close()

threading.Thread(target=flood, daemon=True).start()
held, received, closed, start = [], [0], threading.Event(), []

def post(event):
    if isinstance(event, Received):
        if not start:
            start.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        received[0] += len(event.data)
        held.append(event)
        if len(held) == 8:
            held.clear()
    elif isinstance(event, Closed):
        closed.set()

endpoint = Endpoint("tcp", "127.0.0.1", server.getsockname()[1])
transport = open_transport(endpoint, post, itertools.count(1))
assert closed.wait(60), "the flood did not end"
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start[0]
transport.close()
print(received[0], faults)
"""


def faults_over_a_flood(size: int, mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", FLOOD, str(size), mode],
        capture_output=True,
        env=netrepl_env(),
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-500:]
    received, faults = map(int, result.stdout.split())
    assert received == size
    return faults


def test_a_flood_faults_in_its_read_memory_once_not_per_read():
    size = 128 * 1024 * 1024
    pages = size // 4096  # one fault per page of every read, at worst
    tuned = faults_over_a_flood(size, "tuned")
    untuned = faults_over_a_flood(size, "untuned")
    # Tuned: the pages of the first reads (eight held, and the ones in flight), then reuse.
    assert tuned < pages // 6, (tuned, untuned)
    # glibc's defaults give the freed reads back and fault them in again: what this catches.
    # How often depends on where glibc's dynamic threshold lands (3.7k - 28k faults over six
    # runs, against 1.5k - 2.2k tuned), so only the direction is asserted here.
    assert untuned > tuned, (tuned, untuned)
