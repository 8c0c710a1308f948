"""Transports own sockets and the threads that read them, and nothing else.

A transport never renders and never writes to the terminal: its reader thread turns what the
socket does into events (`Received`, `Closed`) and posts them, so a slow terminal can never
slow a socket or lose a byte.
"""

from __future__ import annotations

import errno
import socket

from netrepl.errors import UsageError


def format_address(host: str, port: int) -> str:
    """`127.0.0.1:80`, `[::1]:80`: an address the way people write it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_os_error(error: OSError) -> str:
    """A short lower-case reason: `connection refused`, `unknown host`, `timed out`."""
    if isinstance(error, socket.gaierror):
        detail = (error.strerror or "").lower()
        return f"unknown host ({detail})" if detail else "unknown host"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionResetError):
        return "connection reset by peer"
    if error.strerror:
        return error.strerror[0].lower() + error.strerror[1:]
    if error.errno is not None:
        return errno.errorcode.get(error.errno, str(error.errno)).lower()
    return str(error) or type(error).__name__


def parse_port(text: str) -> int:
    """A port number (1-65535) or a service name from /etc/services (`http`, `smtp`)."""
    if text.isascii() and text.isdigit():
        port = int(text)
        if 1 <= port <= 65535:
            return port
        raise UsageError(f"port {text} is out of range (1-65535)")
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise UsageError(f"unknown port {text!r}: give a number or a service name") from None
