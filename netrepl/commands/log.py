"""Log commands: keep every byte in a transcript or a raw capture, save the session so far."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netrepl.commands.registry import Arguments, Param, command

if TYPE_CHECKING:
    from netrepl.session import Session


@command(
    "log",
    "write every event from now on to FILE (JSON Lines), or stop with /log off",
    group="Log",
    setup=True,
    params=[Param("FILE", optional=True, rest=True)],
    details="""
One JSON object per line: time, what happened (connected, received, sent, closed...), the
connection, and where its bytes are: raw, in FILE.data beside it (two files; keep them
together), or in base64 in the line when FILE is a pipe or a device. Nothing is ever left
out, even while the screen skips or is paused. `netrepl replay FILE` shows it again;
`netrepl export FILE --pcap OUT` turns it into a capture Wireshark opens. Also `--log FILE`
on the command line.
""",
)
def _log(session: Session, args: Arguments) -> None:
    if not args:
        log = session.files.log
        session.note(_logging(log.path, log.data_path) if log else "not logging")
    elif args[0] == "off":
        stopped = session.files.stop_log()
        session.note(f"stopped logging to {stopped}" if stopped else "was not logging")
    else:
        session.note(_logging(args[0], session.files.start_log(args[0])))


def _logging(path: str, data_path: str | None) -> str:
    return f"logging to {path}" + (f", its bytes to {data_path}" if data_path else "")


@command(
    "capture",
    "write the received bytes, raw, to FILE from now on, or stop with /capture off",
    group="Log",
    setup=True,
    params=[Param("FILE", optional=True, rest=True)],
    details="Only what arrived, of every connection, byte for byte. Also `--capture FILE`.",
)
def _capture(session: Session, args: Arguments) -> None:
    capture = session.files.capture
    if not args:
        session.note(f"capturing to {capture.path}" if capture else "not capturing")
    elif args[0] == "off":
        stopped = session.files.stop_capture()
        session.note(f"stopped capturing to {stopped}" if stopped else "was not capturing")
    else:
        session.files.start_capture(args[0])
        session.note(f"capturing received bytes to {args[0]}")


@command(
    "save",
    "write the session so far to FILE as a transcript (what /log writes)",
    group="Log",
    setup=True,
    params=[Param("FILE", rest=True)],
    details="""
From memory, which keeps the newest 1 MiB of data; use --log to keep everything from the
start.
""",
)
def _save(session: Session, args: Arguments) -> None:
    count = session.memory.save(args[0])
    text = f"saved {count:,} events to {args[0]}"
    if session.memory.dropped:
        text += f" (the oldest {session.memory.dropped:,} bytes were no longer in memory)"
    session.note(text)
