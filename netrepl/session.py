"""The state of one netrepl session and the operations every front end calls.

The interactive REPL and batch mode both hand each line to `Session.submit`, so a command
behaves the same typed or piped. The session owns the settings and the current connection; it
reports through `post` (to the display) and raises NetreplError subclasses for the caller to
show, never printing anything itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from netrepl.commands import REGISTRY
from netrepl.errors import SendError, UsageError
from netrepl.events import Event, Noticed, Sent, ViewChanged
from netrepl.payload import InputMode, build_payload
from netrepl.transport import format_address, parse_port
from netrepl.transport.tcp import TcpConnection
from netrepl.view import View, apply_encoding, apply_view_name


@dataclass
class Settings:
    view: View
    eol: str = "lf"
    escapes: bool = True
    input_mode: InputMode = "text"
    connect_timeout: float = 10.0
    batch: bool = False
    """Batch mode (stdin not a terminal): allows the raw view."""


class Session:
    def __init__(self, settings: Settings, post: Callable[[Event], None]) -> None:
        self.settings = settings
        self.post = post
        self.connection: TcpConnection | None = None
        self.address: tuple[str, int] | None = None
        self.quit_requested = False
        self._connection_ids = itertools.count(1)

    # ---- state, for the toolbar and the batch driver

    @property
    def connected(self) -> bool:
        return self.connection is not None and self.connection.is_open

    @property
    def state(self) -> str:
        if self.connected:
            return "connected"
        return "closed" if self.connection is not None else "not connected"

    @property
    def address_label(self) -> str:
        return format_address(*self.address) if self.address else "-"

    # ---- operations

    def submit(self, line: str) -> None:
        """Handle one line as typed: a command, or data to send. Raises NetreplError."""
        if line.startswith("/") and not line.startswith("//"):
            command, args = REGISTRY.parse(line)
            command.run(self, args)
            return
        if line.startswith("//"):
            line = line[1:]
        payload = build_payload(
            line,
            input_mode=self.settings.input_mode,
            encoding=self.settings.view.encoding,
            escapes=self.settings.escapes,
            eol=self.settings.eol,
        )
        if not payload:
            raise UsageError("nothing to send: empty line and /eol none")
        self.send(payload, as_hex=self.settings.input_mode == "hex")

    def send(self, data: bytes, *, as_hex: bool) -> None:
        if self.connection is None or not self.connection.is_open:
            raise SendError("not connected (/reconnect or /connect HOST PORT)")
        self.connection.send(data)
        self.post(Sent(self.connection.id, data, as_hex))

    def connect(self, host: str, port: int | str) -> None:
        """Close any current connection and connect to HOST PORT. Raises ConnectError."""
        number = parse_port(port) if isinstance(port, str) else port
        self.close()
        self.address = (host, number)
        self.connection = TcpConnection.open(
            host,
            number,
            conn_id=next(self._connection_ids),
            post=self.post,
            timeout=self.settings.connect_timeout,
        )

    def reconnect(self) -> None:
        if self.address is None:
            raise UsageError("nothing to reconnect to: use /connect HOST PORT")
        self.connect(*self.address)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()

    def set_view_name(self, name: str) -> None:
        if name == "raw" and not self.settings.batch:
            raise UsageError("the raw view writes bytes to stdout unchanged: batch mode only")
        self._set_view(apply_view_name(self.settings.view, name))

    def set_encoding(self, name: str) -> None:
        try:
            view = apply_encoding(self.settings.view, name)
        except ValueError as error:
            raise UsageError(f"/encoding: {error}") from None
        self._set_view(view)

    def _set_view(self, view: View) -> None:
        self.settings.view = view
        self.post(ViewChanged(view))

    def note(self, text: str) -> None:
        """Command output for the user (help, current settings)."""
        self.post(Noticed(text, "info"))
