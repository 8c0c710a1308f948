"""What a view is: how received bytes are shown (text in an encoding, hexdump, JSON documents
indented, or raw bytes), cut into which frames, with or without timestamps.

Pure data and name parsing; knows nothing of rendering or terminals.
"""

from __future__ import annotations

from typing import Literal

from netrepl.codec import AUTO, resolve_encoding
from netrepl.framing import RAW, Framing
from netrepl.records import record, replace

ViewMode = Literal["text", "hex", "json", "raw"]
TimeMode = Literal["off", "on", "delta"]

# Names accepted by --view and /view, and what each one sets. `text` and `json` keep the
# encoding (`json` decodes in it, so `--view json --encoding gbk` reads GBK documents).
VIEW_NAMES = ("hex", "text", "utf8", "gbk", "auto", "json", "raw")
_NAMED_ENCODINGS = {"utf8": "utf-8", "gbk": "gbk", "auto": AUTO}


@record(slots=True, unsafe_hash=True)
class View:
    """How received data is shown: the mode, the encoding, timestamps and framing."""

    mode: ViewMode = "text"
    encoding: str = "utf-8"
    """The text encoding: used to show text and to encode typed text, also while in hex."""
    timestamps: TimeMode = "off"
    framing: Framing = RAW

    @property
    def blocks(self) -> bool:
        """Each frame and each send is shown as a block under a header line (time, direction,
        size), rather than as a running stream."""
        return self.timestamps != "off" or self.framing.mode != "raw"

    @property
    def label(self) -> str:
        return self.encoding if self.mode == "text" else self.mode


def apply_view_name(view: View, name: str) -> View:
    """The view that `/view NAME` or `--view NAME` turns `view` into."""
    if name in _NAMED_ENCODINGS:
        return replace(view, mode="text", encoding=_NAMED_ENCODINGS[name])
    if name in ("text", "hex", "json", "raw"):
        return replace(view, mode=name)
    raise ValueError(f"unknown view {name!r} (choose from {', '.join(VIEW_NAMES)})")


def apply_encoding(view: View, name: str) -> View:
    """The view after `/encoding NAME`: same mode, new encoding (ValueError if unknown)."""
    return replace(view, encoding=resolve_encoding(name))
