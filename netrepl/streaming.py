"""A payload too big for one line, sent in pieces with a progress bar: /sendfile's file or
device, and batch mode's `--stdin raw`.

One Delivery carries all the pieces, so each recipient gets all of it or a contiguous prefix
(a client that stops reading is left out of the rest); Ctrl-C stops it at once and takes
back what has not reached a socket; the final line counts what reached each socket. It acts
only through the session (its transport, its cancel flag, `post`); nothing here renders.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, BinaryIO

from netrepl.errors import NetreplError, SendError
from netrepl.events import Progress
from netrepl.files import is_stream, open_for_reading
from netrepl.transport.stream import SendInterrupted

if TYPE_CHECKING:
    from netrepl.session import Session

# A long send says how far it is this often.
PROGRESS_SECONDS = 0.1


def open_to_send(path: str) -> tuple[BinaryIO, int | None]:
    """`path` opened for /sendfile, and its size; None for a stream (a device, a pipe), which
    is sent as it comes, until it ends or the user stops it."""
    file = open_for_reading(path)
    return file, None if is_stream(file) else os.fstat(file.fileno()).st_size


def send_file(session: Session, path: str, chunk: int, delay: float) -> None:
    """/sendfile: a file in pieces of `chunk` bytes, `delay` seconds apart."""
    file, total = open_to_send(path)
    with file:
        pieces = iter(lambda: file.read(chunk), b"")
        send_stream(session, pieces, f"sendfile {os.path.basename(path)}", total, delay=delay)


def send_stream(
    session: Session,
    pieces: Iterable[bytes],
    label: str,
    total: int | None,
    *,
    delay: float = 0.0,
) -> None:
    """Send `pieces` as one payload to the session's current target, with progress, and say
    how it ended in one line. An error reading the pieces (OSError) ends it as failed."""
    session.wait_for_recipient()
    transport = session.transport
    if transport is None:
        raise SendError("not connected (/reconnect or /connect HOST PORT)")
    delivery = transport.deliver(session.current_target, whole=True)
    cancel = session.cancel
    started = time.monotonic()
    last_shown = 0.0

    def show_progress() -> None:
        # Also while waiting for a peer to read: the bar says it is stuck, not dead.
        nonlocal last_shown
        now = time.monotonic()
        if now - last_shown >= PROGRESS_SECONDS:
            last_shown = now
            session.post(Progress(label, delivery.handed, total, now - started))

    outcome = "sent"
    try:
        for piece in pieces:
            if cancel.is_set():
                raise SendInterrupted("interrupted")
            # Not counted by {counter}: that numbers lines, not the pieces of a payload.
            delivery.write(piece, as_hex=False, waiting=show_progress)
            show_progress()
            if delay and cancel.wait(delay):
                raise SendInterrupted("interrupted")
        delivery.finish(cancel, show_progress)
    except SendInterrupted:
        outcome = "interrupted"
        delivery.withdraw()
    except NetreplError as error:
        outcome = f"failed: {error}"
    except OSError as error:  # the source itself (a device that fails, a vanished mount)
        outcome = f"failed: cannot read: {error.strerror or error}"
        delivery.withdraw()
    finally:
        elapsed = time.monotonic() - started
        session.post(
            Progress(
                label,
                delivery.handed,
                total,
                elapsed,
                finished=True,
                outcome=outcome,
                detail=delivery.outcome(),
            )
        )
