"""Reading netrepl's --log transcripts for the benchmarks' checks, in either layout (version
1: data in base64 in each line; version 2: raw data in the data file the header names).

Independent of netrepl's own reader on purpose: a check that used it would not catch a bug
in it. Never used for timing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO


class Transcript:
    """An open transcript: its lines (after the header), and each record's bytes."""

    def __init__(self, path: Path) -> None:
        self.lines: TextIO = open(path, encoding="utf-8")  # noqa: SIM115 (closed by close)
        header = json.loads(self.lines.readline())
        self._data: BinaryIO | None = None
        if "data_file" in header:
            self._data = open(path.parent / header["data_file"], "rb")  # noqa: SIM115
        self.version: int = header["version"]

    def __enter__(self) -> Transcript:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lines.close()
        if self._data is not None:
            self._data.close()

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def data(self, record: dict[str, Any]) -> bytes:
        """A `received` or `sent` record's bytes, checked whole."""
        if "data" in record:
            return base64.b64decode(record["data"])
        assert self._data is not None, "a version 2 record in a transcript with no data file"
        self._data.seek(record["data_offset"])
        data = self._data.read(record["data_length"])
        if len(data) != record["data_length"]:
            raise ValueError(f"the data file ends before {record}")
        return data

    def length(self, record: dict[str, Any]) -> int:
        """How many bytes a record holds, without decoding them."""
        if "data" in record:
            encoded = record["data"]
            return len(encoded) // 4 * 3 - encoded[-2:].count("=")
        return int(record["data_length"])
