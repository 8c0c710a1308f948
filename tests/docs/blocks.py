"""The code blocks of a Markdown doc, and the checked ones among them.

A checked block is a fenced block right after a line `<!-- session: NAME -->` (an HTML
comment, which GitHub does not show). A block right after `<!-- file: NAME -->` is a file a
session uses (a script): the session runs what the doc shows. This module reads blocks and
rewrites the checked ones; it never runs anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", ROOT / "docs" / "guide.md")
"""The docs whose sessions are checked."""

MARKER = re.compile(r"^<!-- session: ([a-z0-9-]+) -->$")
FILE_MARKER = re.compile(r"^<!-- file: ([\w.-]+) -->$")
_FENCE = re.compile(r"^(\s*)```")


@dataclass(frozen=True)
class Block:
    path: Path
    first: int
    """Index of the first line inside the fences."""
    end: int
    """Index of the closing fence."""
    lines: tuple[str, ...]
    session: str | None
    """The session named by a marker right above the opening fence."""
    file: str | None = None
    """The file named by a file marker right above the opening fence."""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.first + 1}"


def code_blocks(path: Path) -> list[Block]:
    """Every fenced block of `path`, in order."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            marker = MARKER.match(lines[index]) or FILE_MARKER.match(lines[index])
            if marker is not None and not (
                index + 1 < len(lines) and _FENCE.match(lines[index + 1])
            ):
                raise ValueError(f"{path}:{index + 1}: a session marker not right above a block")
            index += 1
            continue
        end = next(
            (i for i in range(index + 1, len(lines)) if _FENCE.match(lines[i])),
            None,
        )
        if end is None:
            raise ValueError(f"{path}:{index + 1}: a code block that never ends")
        marker = MARKER.match(lines[index - 1]) if index else None
        file = FILE_MARKER.match(lines[index - 1]) if index else None
        blocks.append(
            Block(
                path,
                index + 1,
                end,
                tuple(lines[index + 1 : end]),
                marker[1] if marker else None,
                file[1] if file else None,
            )
        )
        index = end + 1
    return blocks


def checked_blocks() -> list[Block]:
    return [block for path in DOCS for block in code_blocks(path) if block.session]


def file_blocks() -> list[Block]:
    return [block for path in DOCS for block in code_blocks(path) if block.file]


def doc_file(name: str) -> bytes:
    """The content of the block marked `<!-- file: NAME -->`, as a file holds it."""
    found = [block for block in file_blocks() if block.file == name]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} blocks are marked <!-- file: {name} -->, not 1")
    return "\n".join(found[0].lines).encode() + b"\n"


def rewrite(path: Path, shown: dict[str, list[str]]) -> bool:
    """Put `shown[name]` into each block marked `name` in `path`; True if the file changed."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    # From the end, so the indices of the blocks before stay right.
    for block in reversed(code_blocks(path)):
        if block.session in shown:
            lines[block.first : block.end] = shown[block.session]
    new = "\n".join(lines)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
