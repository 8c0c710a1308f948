"""The exceptions netrepl reports to the user as one line, grouped by what they mean, and
the exit statuses they end a batch run with: declared here once.

Every message is a complete sentence fragment meant to be shown as is ("cannot connect to
127.0.0.1:1: connection refused"); none carries a traceback to the user.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """netrepl's exit statuses (README: "Exit codes")."""

    OK = 0
    CONNECTION = 1
    """A connection error; for `netrepl replay` and `export`, a file that cannot be read."""
    USAGE = 2
    EXPECT = 3
    """An /expect that timed out."""
    INTERNAL = 4
    """netrepl itself failed (a bug): the line on stderr says where."""
    INTERRUPTED = 130
    """Ctrl-C (128 + SIGINT, as shells report it)."""


class NetreplError(Exception):
    """Anything the user is told about in one line; the REPL keeps running."""

    status: ExitStatus = ExitStatus.CONNECTION
    """The exit status of a batch run that this error ends."""


class UsageError(NetreplError):
    """A command or payload the user typed is not valid; nothing was sent."""

    status = ExitStatus.USAGE


class ConnectError(NetreplError):
    """A connection could not be made (refused, unknown host, timeout)."""


class SendError(NetreplError):
    """Data could not be sent: not connected, or the connection failed while sending."""
