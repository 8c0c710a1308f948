"""Helpers shared by the tests of scripts, automatic replies, long and periodic sends:
a CRC written apart from netrepl, script files, and an in-process session's connection."""

from __future__ import annotations

from pathlib import Path

from netrepl.events import Noticed
from tests.net.conftest import Harness
from tests.peers import Peer, PeerClient


def crc16_modbus(data: bytes) -> bytes:
    """CRC-16/MODBUS, low byte first, written out here rather than taken from netrepl."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def write_script(directory: Path, name: str, *lines: str) -> str:
    path = directory / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def stderr_of(result) -> str:
    return result.stderr.decode()


def connect(harness: Harness, peer: Peer) -> PeerClient:
    """Connect the harness's session to `peer`; the peer's side of the new connection."""
    clients = len(peer.clients)
    harness.session.connect(peer.host, peer.port)
    return peer.wait_for_client(clients + 1)


def errors(harness: Harness) -> list[str]:
    return [e.text for e in harness.tap.of_type(Noticed) if e.level == "error"]
