"""Opening the files a user names: --log, --capture, --script, /save, /run, /record,
/sendfile, {file:PATH}, --config.

One place turns every way a path can fail (missing, a directory, no permission, a NUL byte,
text the file system cannot take) into a one-line UsageError that names the path. Nothing
here reads or writes more than it is asked to, or renders.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO, TextIO

from netrepl.codec import quote
from netrepl.errors import UsageError


def shown_path(path: str) -> str:
    """The path as a message shows it: as typed, or quoted when it holds something a
    terminal would not show as itself (a NUL, a control, an undecodable byte)."""
    if path.isprintable() and not any("\udc80" <= char <= "\udcff" for char in path):
        return path
    return quote(path)


def describe_path_error(error: Exception) -> str:
    """Why a path could not be opened, in a few words: `No such file or directory`."""
    if isinstance(error, OSError):
        return error.strerror or str(error)
    if isinstance(error, UnicodeError):
        return "the path is not text the file system can take"
    if "null" in str(error):  # ValueError: embedded null byte
        return "a path cannot hold a NUL byte"
    return str(error)


def _failure(verb: str, path: str, error: Exception) -> UsageError:
    return UsageError(f"cannot {verb} {shown_path(path)}: {describe_path_error(error)}")


def open_for_reading(path: str) -> BinaryIO:
    """Open `path` (`~` expanded) to read bytes, or raise UsageError saying why not."""
    try:
        return open(os.path.expanduser(path), "rb")
    except (OSError, ValueError) as error:
        raise _failure("read", path, error) from None


def open_for_writing(path: str, *, binary: bool = False, buffering: int = -1) -> BinaryIO | TextIO:
    """Open `path` (`~` expanded) to write, or raise UsageError saying why not. Text is
    UTF-8, and a character that came from undecodable input (surrogateescape) is written
    as the byte it was."""
    try:
        expanded = os.path.expanduser(path)
        if binary:
            return open(expanded, "wb", buffering=buffering)
        return open(expanded, "w", encoding="utf-8", errors="surrogateescape")
    except (OSError, ValueError) as error:
        raise _failure("write", path, error) from None


def read_at_most(path: str, limit: int, hint: str = "") -> bytes:
    """The bytes of `path`, or UsageError when it cannot be read or holds more than `limit`
    bytes (an endless device stops there too); `hint` says what to do then."""
    with open_for_reading(path) as file:
        try:
            data = file.read(limit + 1)
        except OSError as error:
            raise _failure("read", path, error) from None
    if len(data) > limit:
        size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit:,} bytes"
        raise UsageError(f"{shown_path(path)} is over {size}" + (f": {hint}" if hint else ""))
    return data


def check_readable(path: str) -> None:
    """Raise the UsageError that reading `path` would, without reading it. A FIFO is not
    opened: that would wait for a writer, and closing it again could cut the writer off."""
    try:
        expanded = os.path.expanduser(path)
        mode = os.stat(expanded).st_mode
    except (OSError, ValueError) as error:
        raise _failure("read", path, error) from None
    if stat.S_ISFIFO(mode):
        if not os.access(expanded, os.R_OK):
            raise UsageError(f"cannot read {shown_path(path)}: Permission denied")
        return
    open_for_reading(path).close()


def is_stream(file: BinaryIO) -> bool:
    """A FIFO, a device, a socket: read as bytes come, with no size known in advance (and
    maybe no end), unlike a regular file."""
    try:
        return not stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except (OSError, ValueError):
        return True
