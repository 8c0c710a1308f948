"""Checksums that devices append to frames: CRC-16 (Modbus, CCITT, XMODEM), CRC-32, sum, XOR, LRC.

Pure: bytes in, bytes out (already in the byte order the protocol sends). Each algorithm is
one table entry, so `{name}` placeholders, `/help` and the docs list the same set.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable

from netrepl.records import record


def _crc16(data: bytes, *, poly: int, init: int, reflected: bool) -> int:
    crc = init
    if reflected:
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    else:
        for byte in data:
            crc ^= byte << 8
            for _ in range(8):
                crc = ((crc << 1) ^ poly) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS: reflected 0x8005 (0xA001), init 0xFFFF."""
    return _crc16(data, poly=0xA001, init=0xFFFF, reflected=True)


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (also called CRC-16/IBM-3740): 0x1021, init 0xFFFF."""
    return _crc16(data, poly=0x1021, init=0xFFFF, reflected=False)


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM: 0x1021, init 0."""
    return _crc16(data, poly=0x1021, init=0x0000, reflected=False)


def crc32(data: bytes) -> int:
    """CRC-32 (ISO-HDLC, as in zlib, Ethernet, PNG)."""
    return binascii.crc32(data)


def sum8(data: bytes) -> int:
    return sum(data) & 0xFF


def xor8(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def lrc(data: bytes) -> int:
    """Modbus ASCII LRC: the two's complement of the 8-bit sum."""
    return -sum(data) & 0xFF


@record(unsafe_hash=True)
class Checksum:
    """A checksum /sum can append: its width, byte order and function."""

    name: str
    size: int
    compute: Callable[[bytes], int]
    little_endian: bool
    description: str

    def digest(self, data: bytes) -> bytes:
        """The checksum of `data` as the bytes that go on the wire."""
        order = "little" if self.little_endian else "big"
        return self.compute(data).to_bytes(self.size, order)


CHECKSUMS: dict[str, Checksum] = {
    c.name: c
    for c in (
        Checksum("crc16-modbus", 2, crc16_modbus, True, "CRC-16/MODBUS, low byte first (RTU)"),
        Checksum("crc16-ccitt", 2, crc16_ccitt, False, "CRC-16/CCITT-FALSE, high byte first"),
        Checksum("crc16-xmodem", 2, crc16_xmodem, False, "CRC-16/XMODEM, high byte first"),
        Checksum("crc32", 4, crc32, False, "CRC-32 (zlib), high byte first"),
        Checksum("crc32-le", 4, crc32, True, "CRC-32 (zlib), low byte first"),
        Checksum("sum8", 1, sum8, False, "sum of the bytes, modulo 256"),
        Checksum("xor8", 1, xor8, False, "XOR of the bytes (BCC)"),
        Checksum("lrc", 1, lrc, False, "Modbus ASCII LRC: minus the sum, modulo 256"),
    )
}
