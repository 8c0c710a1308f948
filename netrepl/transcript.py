"""The transcript format: one JSON object per line for each event.

Pure: events in, JSON text out, and back; never opens a file. `log.py` writes these lines as
things happen, `/save` writes them from memory, `netrepl replay` and `netrepl export` read
them. A line of a newer or unknown type is skipped by readers, so the format can grow.

Two layouts, said by the header's `version`:

- version 1, one file: the bytes of a `received` or `sent` record are in the line, in base64.

      {"t": 1764031200.25, "type": "received", "conn": 1, "data": "K1BPTkcNCg=="}

- version 2, two files (what `--log F` writes to a regular file): the raw bytes received and
  sent are appended, in the order of their records, to a data file next to the log, named in
  the header (`"data_file": "F.data"`, a name in the log's own directory); each record says
  where its bytes are in it. Base64 wrote 1.33 bytes for each byte, and encoding them was a
  third of the log writer's time in a flood.

      {"t": 1764031200.25, "type": "received", "conn": 1, "data_offset": 0, "data_length": 7}

Everything else (the upgrade's request and response, control payloads) stays in base64 in
the line in both layouts: it is small.
"""

from __future__ import annotations

import binascii
import functools
import typing
from collections.abc import Callable, Iterator
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
    Signalled,
    TlsEstablished,
    Upgraded,
)
from netrepl.records import record

FORMAT = "netrepl-transcript"
VERSION = 1
"""The one-file layout: data in base64 in each line (/save, a log written to a FIFO)."""
VERSION_DATA_FILE = 2
"""The two-file layout: data in a data file the header names, records pointing into it."""
DATA_SUFFIX = ".data"
"""What `--log F` appends to F's name for its data file."""

Logged = (
    Connected
    | Listening
    | TlsEstablished
    | Upgraded
    | Signalled
    | Received
    | Sent
    | HalfClosed
    | Closed
)
"""The events a transcript keeps: everything that happened on the wire, nothing of the UI."""
WIRE_EVENTS = typing.get_args(Logged)


# json, base64 and pybase64 are imported where a transcript is written or read, not at the
# top: every start imports this module (the session's log), and a one-shot pipe without
# --log used none of them (10 M instructions, ~5% of its run; issue 14).


@functools.cache
def _base64_encoder() -> Callable[[bytes], bytes]:
    # CPython's base64 encodes at ~0.46 GB/s, slower than a loopback socket fills a file,
    # so in a flood it was most of a log's cost; pybase64 (SIMD, optional: the `fast`
    # extra) encodes at ~15 GB/s, byte for byte the same text (benchmarks/, docs/performance.md).
    try:
        import pybase64  # type: ignore[import-not-found]
    except ImportError:
        import base64

        return base64.b64encode
    return pybase64.b64encode  # type: ignore[no-any-return]


def encode_base64(data: bytes) -> bytes:
    """Bytes -> base64 bytes (no newline)."""
    return _base64_encoder()(data)


@record(unsafe_hash=True, slots=True)
class Entry:
    """One record of a transcript: when, and the event."""

    at: float
    """Seconds since the epoch."""
    event: Logged


def header(at: float, data_file: str | None = None) -> str:
    """The first line of every transcript; naming `data_file` makes it version 2."""
    record: dict[str, Any] = {"t": at, "type": FORMAT, "version": VERSION, "netrepl": __version__}
    if data_file is not None:
        record |= {"version": VERSION_DATA_FILE, "data_file": data_file}
    import json

    return json.dumps(record, ensure_ascii=False)


def header_of(line: str) -> dict[str, Any] | None:
    """The header record if `line` is a header (a transcript's first line, or where another
    transcript was appended to it), else None."""
    if f'"{FORMAT}"' not in line:
        return None
    import json

    try:
        record = json.loads(line)
    except ValueError:
        return None  # parse_line says what is wrong with it
    return record if isinstance(record, dict) and record.get("type") == FORMAT else None


def data_file_of(line: str, number: int = 1) -> str | None:
    """The data file a header line names (a file name, in the log's directory); None for a
    version 1 header and any other line. Raises TranscriptError for a name that is a path."""
    record = header_of(line)
    name = None if record is None else record.get("data_file")
    if name is None:
        return None
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise TranscriptError(f"line {number}: data_file {name!r} is not a file name")
    return name


def to_line(event: Event, at: float, data_offset: int | None = None) -> str | None:
    """The JSON line for `event`, or None for events a transcript does not keep. With
    `data_offset`, a `received` or `sent` record points at its bytes in the data file
    (version 2) instead of holding them."""
    record: dict[str, Any]
    match event:
        case Received(conn, data, datagram, _):
            record = {"type": "received", "conn": conn, **_data_fields(data, data_offset)}
            if datagram:
                record["datagram"] = True
            record |= _message_fields(event.message, event.offset, event.more)
        case Sent(conn, data, as_hex, echo, _):
            record = {"type": "sent", "conn": conn, **_data_fields(data, data_offset)}
            if as_hex:
                record["hex"] = True
            if not echo:
                record["echo"] = False  # a copy of one send to a further client
            if event.injected:
                record["injected"] = True
            record |= _message_fields(event.message, 0, event.more)
        case Upgraded(conn, target, subprotocol, request, response):
            record = {"type": "upgraded", "conn": conn, "target": target}
            record |= {"subprotocol": subprotocol, "request": _b64(request)}
            record["response"] = _b64(response)
        case Signalled(conn, opcode, outgoing, payload, code, reason, round_trip):
            record = {"type": "control", "conn": conn, "opcode": opcode, "outgoing": outgoing}
            if payload:
                record["payload"] = _b64(payload)
            if opcode == "close":
                record |= {"code": code, "reason": reason}
            if round_trip is not None:
                record["round_trip"] = round_trip
        case Connected(conn, peer, local, protocol, accepted):
            record = {"type": "connected", "conn": conn, "peer": peer, "local": local}
            record |= {"protocol": protocol, "accepted": accepted}
            if event.datagrams != (protocol == "udp"):
                record["datagram"] = event.datagrams  # a kind UDP's rule does not cover
            if event.flow is not None:
                record |= {"flow": event.flow, "side": event.side}
            if event.via:
                record["via"] = event.via  # the proxy it went through
        case Listening(address, protocol, tls):
            record = {"type": "listening", "address": address, "protocol": protocol, "tls": tls}
            if event.upstream:
                record["upstream"] = event.upstream
        case TlsEstablished(conn, version, cipher, alpn, verified, _):
            record = {"type": "tls", "conn": conn, "version": version, "cipher": cipher}
            record |= {"alpn": alpn, "verified": verified}
        case HalfClosed(conn, by_peer):
            record = {"type": "half-closed", "conn": conn}
            if by_peer:
                record["by_peer"] = True
        case Closed(conn, reason, received, sent, failed):
            record = {"type": "closed", "conn": conn, "reason": reason}
            record |= {"received": received, "sent": sent, "failed": failed}
        case _:
            return None
    import json

    # The time as the float it is: a rounded one could show another millisecond on replay.
    return json.dumps({"t": at, **record}, ensure_ascii=False)


# Base64 is written in pieces of this much data (a multiple of 3, so the pieces join into
# one valid base64 string). Each piece's text stays under glibc's mmap threshold (128 KiB):
# encoding a 1 MiB read at once allocated fresh pages for every record, and faulting them
# in cost more than the encoding and the write together (log throughput x2-3, benchmarks/).
BASE64_PIECE = 48 * 1024


def to_data_line(event: Received | Sent, at: float, data_offset: int) -> bytes:
    """The version 2 line (and its newline) of a `received` or `sent` event whose bytes were
    appended to the data file at `data_offset`."""
    if isinstance(event, Received) and not (event.message or event.offset or event.more):
        # A flood's record, one per read, or a UDP burst's, thousands a second: built by
        # hand, as json.dumps was most of its cost.
        tail = ', "datagram": true}\n' if event.datagram else "}\n"
        return (
            f'{{"t": {at!r}, "type": "received", "conn": {event.conn}, '
            f'"data_offset": {data_offset}, "data_length": {len(event.data)}{tail}'
        ).encode()
    line = to_line(event, at, data_offset)
    assert line is not None
    return (line + "\n").encode()


def to_pieces(event: Event, at: float) -> Iterator[bytes]:
    """`to_line(event, at)` and its newline as UTF-8, in pieces to be written in order; none
    for an event a transcript does not keep. Data records are built by hand: base64 needs no
    JSON escaping, and json.dumps scanning a megabyte of it cost more than the encoding."""
    tail = b'"}\n'
    if isinstance(event, Received) and not event.message:
        head = f'{{"t": {at!r}, "type": "received", "conn": {event.conn}, "data": "'
        if event.datagram:
            # A UDP burst is thousands of these a second, each logged on the I/O thread
            # while the kernel holds the next ones: json.dumps was 10 of their ~30 us each.
            tail = b'", "datagram": true}\n'
    elif (
        isinstance(event, Sent)
        and not event.as_hex
        and event.echo
        and not event.injected
        and not event.message
    ):
        head = f'{{"t": {at!r}, "type": "sent", "conn": {event.conn}, "data": "'
    else:
        line = to_line(event, at)
        if line is not None:
            yield (line + "\n").encode()
        return
    yield head.encode()
    data = memoryview(event.data)
    for start in range(0, len(data), BASE64_PIECE):
        yield encode_base64(data[start : start + BASE64_PIECE])
    yield tail


class TranscriptError(ValueError):
    """A line that is not a transcript record: says which line and why."""


DataReader = Callable[[int, int], bytes]
"""(offset, length) -> the bytes of a version 2 transcript's data file there: fewer if the
file ends sooner."""


def parse_line(line: str, number: int = 0, data: DataReader | None = None) -> Entry | None:
    """The entry of one transcript line; None for the header, blank and unknown lines.
    `data` reads a version 2 transcript's data file; without it such a record is an error."""
    if not line.strip():
        return None
    import json

    try:
        record = json.loads(line)
        kind = record["type"]
        at = float(record["t"])
    except (ValueError, KeyError, TypeError) as error:
        raise TranscriptError(f"line {number}: not a transcript record ({error})") from None
    try:
        event = _event(kind, record, data)
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise TranscriptError(f"line {number}: bad {kind!r} record ({error})") from None
    return None if event is None else Entry(at, event)


def _event(kind: str, r: dict[str, Any], data: DataReader | None) -> Logged | None:
    match kind:
        case "received":
            return Received(
                r["conn"],
                _record_data(r, data),
                bool(r.get("datagram", False)),
                r["t"],
                _message_type(r),
                int(r.get("offset", 0)),
                bool(r.get("more", False)),
            )
        case "sent":
            echo = bool(r.get("echo", True))
            return Sent(
                r["conn"],
                _record_data(r, data),
                bool(r.get("hex", False)),
                echo,
                r["t"],
                bool(r.get("injected", False)),
                _message_type(r),
                bool(r.get("more", False)),
            )
        case "upgraded":
            return Upgraded(
                r["conn"],
                str(r["target"]),
                r.get("subprotocol"),
                _bytes(r.get("request", "")),
                _bytes(r.get("response", "")),
            )
        case "control":
            opcode = r["opcode"]
            if opcode not in ("ping", "pong", "close"):
                raise ValueError(f"opcode {opcode!r}")
            return Signalled(
                r["conn"],
                opcode,
                bool(r["outgoing"]),
                _bytes(r.get("payload", "")),
                r.get("code"),
                str(r.get("reason", "")),
                r.get("round_trip"),
                r["t"],
            )
        case "connected":
            protocol, accepted = r["protocol"], r["accepted"]
            datagram = r.get("datagram")
            side = r.get("side")
            if side not in (None, "client", "upstream"):
                raise ValueError(f"side {side!r}")
            return Connected(
                r["conn"],
                r["peer"],
                r["local"],
                protocol,
                accepted,
                r["t"],
                datagram=datagram,
                flow=r.get("flow"),
                side=side,
                via=r.get("via"),
            )
        case "listening":
            return Listening(r["address"], r["protocol"], r["tls"], upstream=r.get("upstream", ""))
        case "tls":
            return TlsEstablished(
                r["conn"], r["version"], r["cipher"], r.get("alpn"), r.get("verified", False)
            )
        case "half-closed":
            return HalfClosed(r["conn"], bool(r.get("by_peer", False)))
        case "closed":
            return Closed(r["conn"], r["reason"], r["received"], r["sent"], r["failed"])
    return None  # the header, or a record from a newer netrepl


def _message_fields(message: str, offset: int, more: bool) -> dict[str, Any]:
    """A WebSocket message's type, and where a piece of a large one sits in it."""
    fields: dict[str, Any] = {}
    if message:
        fields["message"] = message
    if offset:
        fields["offset"] = offset
    if more:
        fields["more"] = True
    return fields


def _message_type(record: dict[str, Any]) -> str:
    message = record.get("message", "")
    if message not in ("", "text", "binary"):
        raise ValueError(f"message {message!r}")
    return str(message)


def _data_fields(data: bytes, data_offset: int | None) -> dict[str, Any]:
    if data_offset is None:
        return {"data": _b64(data)}
    return {"data_offset": data_offset, "data_length": len(data)}


def _record_data(record: dict[str, Any], data: DataReader | None) -> bytes:
    """A `received` or `sent` record's bytes: in the line, or in the data file."""
    if "data" in record or "data_offset" not in record:
        return _bytes(record["data"])
    offset, length = record["data_offset"], record["data_length"]
    if type(offset) is not int or type(length) is not int or offset < 0 or length < 0:
        raise ValueError(f"data_offset {offset!r}, data_length {length!r}")
    if data is None:
        raise ValueError("its bytes are in a data file, and the header names none")
    got = data(offset, length)
    if len(got) != length:
        raise ValueError(f"the data file ends at byte {offset + len(got):,}, before its bytes")
    return got


def _b64(data: bytes) -> str:
    return encode_base64(data).decode("ascii")


def _bytes(text: str) -> bytes:
    import base64

    return base64.b64decode(text, validate=True)
