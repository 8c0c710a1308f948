"""Traffic counters for /stats: bytes, reads and frames each way, rates, connection ages.

Pure: fed events (which carry their own times), asked for a report at a given time. It
counts everything, shown or not, so /stats stays exact while the display is paused or
skipping under a flood.
"""

from __future__ import annotations

from netrepl.events import Closed, Connected, Event, Received, Sent
from netrepl.records import field, record


@record
class Direction:
    """One direction of traffic: received or sent."""

    bytes: int = 0
    chunks: int = 0
    """Reads (received) or sends (sent); datagrams count one each."""
    frames: int = 0
    """Frames as the current /frame mode cuts them (the display counts them)."""
    first_at: float | None = None
    last_at: float | None = None
    _second: int = -1
    _second_bytes: int = 0
    peak_per_second: int = 0

    def add(self, size: int, at: float, chunks: int = 1) -> None:
        self.bytes += size
        self.chunks += chunks
        if self.first_at is None:
            self.first_at = at
        self.last_at = at
        second = int(at)
        if second != self._second:
            self._second, self._second_bytes = second, 0
        self._second_bytes += size
        self.peak_per_second = max(self.peak_per_second, self._second_bytes)


@record
class TrafficStats:
    """Counters of the session's traffic, for /stats."""

    received: Direction = field(default_factory=Direction)
    sent: Direction = field(default_factory=Direction)
    open_since: dict[int, tuple[str, float]] = field(default_factory=dict)
    """Open connections: id -> (peer, connected at)."""
    legs: dict[int, str] = field(default_factory=dict)
    """Relay legs: id -> `#1 client`, what they are called instead of their id."""
    connections: int = 0

    def observe(self, event: Event) -> None:
        match event:
            case Received(_, data, _, at):
                self.received.add(len(data), at)
            case Sent(_, data, _, _, at):
                self.sent.add(len(data), at)
            case Connected(conn, peer, _, _, _, at):
                self.open_since[conn] = (peer, at)
                if event.flow is not None:
                    self.legs[conn] = f"#{event.flow} {event.side}"
                self.connections += 1
            case Closed(conn):
                self.open_since.pop(conn, None)
                self.legs.pop(conn, None)

    def report(self, now: float) -> str:
        """What /stats prints."""
        lines = [
            _direction_line("received", self.received, now, "read"),
            _direction_line("sent", self.sent, now, "send"),
        ]
        if not self.open_since:
            lines.append(f"no open connection ({self.connections} so far)")
        for conn, (peer, since) in sorted(self.open_since.items()):
            who = self.legs.get(conn, f"#{conn}")
            lines.append(f"{who} {peer}: connected for {format_age(now - since)}")
        return "\n".join(lines)


def count(number: int, noun: str) -> str:
    """`1 byte`, `2,048 bytes`."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def _direction_line(name: str, direction: Direction, now: float, chunk: str) -> str:
    text = f"{name:<9}{count(direction.bytes, 'byte')} in {count(direction.chunks, chunk)}"
    if direction.frames:
        text += f", {count(direction.frames, 'frame')}"
    if direction.first_at is not None:
        # At least a second: the peak is counted per second, and the average must not
        # exceed it in the first moments.
        span = max(now - direction.first_at, 1.0)
        text += (
            f"; {format_rate(direction.bytes / span)} on average,"
            f" peak {format_rate(direction.peak_per_second)}"
        )
    return text


def format_rate(bytes_per_second: float) -> str:
    """`812 B/s`, `3.4 KiB/s`, `1.20 GiB/s`."""
    # Decided on the rounded number, so 1023.6 B/s reads 1.0 KiB/s, never 1024 B/s.
    if round(bytes_per_second) < 1024:
        return f"{bytes_per_second:.0f} B/s"
    for unit in ("KiB/s", "MiB/s"):
        bytes_per_second /= 1024
        if round(bytes_per_second, 1) < 1024:
            return f"{bytes_per_second:.1f} {unit}"
    return f"{bytes_per_second / 1024:.2f} GiB/s"


def format_age(seconds: float) -> str:
    """`42s`, `3m05s`, `2h01m`."""
    whole = int(max(seconds, 0))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
