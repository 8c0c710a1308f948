"""The exceptions netrepl reports to the user as one line, grouped by what they mean.

Every message is a complete sentence fragment meant to be shown as is ("cannot connect to
127.0.0.1:1: connection refused"); none carries a traceback to the user.
"""

from __future__ import annotations


class NetreplError(Exception):
    """Anything the user is told about in one line; the REPL keeps running."""


class UsageError(NetreplError):
    """A command or payload the user typed is not valid; nothing was sent."""


class ConnectError(NetreplError):
    """A connection could not be made (refused, unknown host, timeout)."""


class SendError(NetreplError):
    """Data could not be sent: not connected, or the connection failed while sending."""
