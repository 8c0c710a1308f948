"""What happens in a session, as small immutable records passed to the display in order.

Transport threads and the REPL create them; only the display consumes them. Events carry
bytes and facts, never rendered text or terminal codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from netrepl.view import View

NoticeLevel = Literal["status", "info", "error"]


@dataclass(frozen=True, slots=True)
class Connected:
    conn: int
    peer: str
    local: str


@dataclass(frozen=True, slots=True)
class Received:
    conn: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Sent:
    conn: int
    data: bytes
    as_hex: bool
    """True when the user sent hex (/x, hex input): the echo then shows the bytes in hex."""


@dataclass(frozen=True, slots=True)
class Closed:
    conn: int
    reason: str
    received: int
    sent: int
    failed: bool = False
    """True for a reset or an error, False for an orderly close by either side."""


@dataclass(frozen=True, slots=True)
class Submitted:
    """A line the user entered at the prompt, echoed so the scrollback reads as typed."""

    prompt: str
    line: str


@dataclass(frozen=True, slots=True)
class Noticed:
    """A one-off message for the user: a status line, command output, or an error."""

    text: str
    level: NoticeLevel = "info"


@dataclass(frozen=True, slots=True)
class ViewChanged:
    view: View


Event = Connected | Received | Sent | Closed | Submitted | Noticed | ViewChanged
