"""Reading a --log transcript in a test, in either layout, with its own JSON and file reads
rather than netrepl's reader (which the tests of replay and export cover).

`records` hands every `received` and `sent` record back with its bytes in `data`, in base64,
as a version 1 transcript holds them, so a test checks the events whatever the layout. A
version 2 transcript is checked on the way: its records' data are the data file, whole, in
order, with nothing before, between or after them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from netrepl.transcript import Entry, parse_line


def header(path: Path) -> dict[str, Any]:
    """The transcript's first record."""
    with open(path, encoding="utf-8") as file:
        record = json.loads(file.readline())
    assert record["type"] == "netrepl-transcript", record
    return record


def records(path: Path) -> list[dict[str, Any]]:
    """The records after the header, each `received` and `sent` one with its `data`."""
    first = header(path)
    lines = Path(path).read_text(encoding="utf-8").splitlines()[1:]
    recs = [json.loads(line) for line in lines]
    if "data_file" not in first:
        assert first["version"] == 1, first
        return recs
    assert first["version"] == 2, first
    data = (Path(path).parent / first["data_file"]).read_bytes()
    offset = 0
    for record in recs:
        if record["type"] not in ("received", "sent"):
            continue
        assert "data" not in record, record
        assert record["data_offset"] == offset, (record, offset)
        end = offset + record.pop("data_length")
        record.pop("data_offset")
        assert end <= len(data), (record, len(data))
        record["data"] = base64.b64encode(data[offset:end]).decode("ascii")
        offset = end
    assert offset == len(data), f"the data file holds {len(data) - offset} bytes no record has"
    return recs


def entries(path: Path) -> list[Entry]:
    """The transcript as netrepl's parser reads each line (the data file read here)."""
    first = header(path)
    data = b""
    if "data_file" in first:
        data = (Path(path).parent / first["data_file"]).read_bytes()
    lines = Path(path).read_text(encoding="utf-8").splitlines()

    def read(offset: int, length: int) -> bytes:
        return data[offset : offset + length]

    return [entry for n, line in enumerate(lines, 1) if (entry := parse_line(line, n, read))]
