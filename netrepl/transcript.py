"""The transcript format: one JSON object per line for each event, bytes in base64.

Pure: events in, JSON text out, and back. `log.py` writes these lines as things happen,
`/save` writes them from memory, `netrepl replay` and `netrepl export` read them. A line of a
newer or unknown type is skipped by readers, so the format can grow.

    {"t": 1764031200.25, "type": "received", "conn": 1, "data": "K1BPTkcNCg=="}
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from netrepl import __version__
from netrepl.events import (
    Closed,
    Connected,
    Event,
    HalfClosed,
    Listening,
    Received,
    Sent,
    TlsEstablished,
)

FORMAT = "netrepl-transcript"
VERSION = 1

Logged = Connected | Listening | TlsEstablished | Received | Sent | HalfClosed | Closed
"""The events a transcript keeps: everything that happened on the wire, nothing of the UI."""
WIRE_EVENTS = (Connected, Listening, TlsEstablished, Received, Sent, HalfClosed, Closed)


@dataclass(frozen=True, slots=True)
class Entry:
    at: float
    """Seconds since the epoch."""
    event: Logged


def header(at: float) -> str:
    """The first line of every transcript."""
    return json.dumps({"t": at, "type": FORMAT, "version": VERSION, "netrepl": __version__})


def to_line(event: Event, at: float) -> str | None:
    """The JSON line for `event`, or None for events a transcript does not keep."""
    record: dict[str, Any]
    match event:
        case Received(conn, data, datagram, _):
            record = {"type": "received", "conn": conn, "data": _b64(data)}
            if datagram:
                record["datagram"] = True
        case Sent(conn, data, as_hex, echo, _):
            record = {"type": "sent", "conn": conn, "data": _b64(data)}
            if as_hex:
                record["hex"] = True
            if not echo:
                record["echo"] = False  # a copy of one send to a further client
        case Connected(conn, peer, local, protocol, accepted):
            record = {"type": "connected", "conn": conn, "peer": peer, "local": local}
            record |= {"protocol": protocol, "accepted": accepted}
        case Listening(address, protocol, tls):
            record = {"type": "listening", "address": address, "protocol": protocol, "tls": tls}
        case TlsEstablished(conn, version, cipher, alpn, verified, _):
            record = {"type": "tls", "conn": conn, "version": version, "cipher": cipher}
            record |= {"alpn": alpn, "verified": verified}
        case HalfClosed(conn):
            record = {"type": "half-closed", "conn": conn}
        case Closed(conn, reason, received, sent, failed):
            record = {"type": "closed", "conn": conn, "reason": reason}
            record |= {"received": received, "sent": sent, "failed": failed}
        case _:
            return None
    # The time as the float it is: a rounded one could show another millisecond on replay.
    return json.dumps({"t": at, **record}, ensure_ascii=False)


class TranscriptError(ValueError):
    """A line that is not a transcript record: says which line and why."""


def parse_line(line: str, number: int = 0) -> Entry | None:
    """The entry of one transcript line; None for the header, blank and unknown lines."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
        kind = record["type"]
        at = float(record["t"])
    except (ValueError, KeyError, TypeError) as error:
        raise TranscriptError(f"line {number}: not a transcript record ({error})") from None
    try:
        event = _event(kind, record)
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise TranscriptError(f"line {number}: bad {kind!r} record ({error})") from None
    return None if event is None else Entry(at, event)


def _event(kind: str, r: dict[str, Any]) -> Logged | None:
    match kind:
        case "received":
            return Received(r["conn"], _bytes(r["data"]), bool(r.get("datagram", False)), r["t"])
        case "sent":
            echo = bool(r.get("echo", True))
            return Sent(r["conn"], _bytes(r["data"]), bool(r.get("hex", False)), echo, r["t"])
        case "connected":
            protocol, accepted = r["protocol"], r["accepted"]
            return Connected(r["conn"], r["peer"], r["local"], protocol, accepted, r["t"])
        case "listening":
            return Listening(r["address"], r["protocol"], r["tls"])
        case "tls":
            return TlsEstablished(
                r["conn"], r["version"], r["cipher"], r.get("alpn"), r.get("verified", False)
            )
        case "half-closed":
            return HalfClosed(r["conn"])
        case "closed":
            return Closed(r["conn"], r["reason"], r["received"], r["sent"], r["failed"])
    return None  # the header, or a record from a newer netrepl


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _bytes(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
