"""What a view is: how received bytes are shown (text in an encoding, hexdump, or raw bytes).

Pure data and name parsing; knows nothing of rendering or terminals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from netrepl.codec import AUTO, resolve_encoding

ViewMode = Literal["text", "hex", "raw"]

# Names accepted by --view and /view, and what each one sets. `text` keeps the encoding.
VIEW_NAMES = ("hex", "text", "utf8", "gbk", "auto", "raw")
_NAMED_ENCODINGS = {"utf8": "utf-8", "gbk": "gbk", "auto": AUTO}


@dataclass(frozen=True, slots=True)
class View:
    mode: ViewMode = "text"
    encoding: str = "utf-8"
    """The text encoding: used to show text and to encode typed text, also while in hex."""

    @property
    def label(self) -> str:
        return self.encoding if self.mode == "text" else self.mode


def apply_view_name(view: View, name: str) -> View:
    """The view that `/view NAME` or `--view NAME` turns `view` into."""
    if name in _NAMED_ENCODINGS:
        return View("text", _NAMED_ENCODINGS[name])
    if name in ("text", "hex", "raw"):
        return replace(view, mode=name)
    raise ValueError(f"unknown view {name!r} (choose from {', '.join(VIEW_NAMES)})")


def apply_encoding(view: View, name: str) -> View:
    """The view after `/encoding NAME`: same mode, new encoding (ValueError if unknown)."""
    return replace(view, encoding=resolve_encoding(name))
