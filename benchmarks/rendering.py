"""Rendering without a terminal: received bytes to hexdump text through netrepl's renderer
(the path batch hex takes), decode + escape of mixed UTF-8/GBK text in 4 KiB reads, and the json
view's largest document re-indented.

Both run in this process on data built in memory, each against its reference on the same
bytes: `hexdump -C` on the same file, a bare `codecs` incremental decoder on the same
chunks, Python's own json re-indent of the same document. The hexdump text is also checked
line for line against `hexdump -C`.
"""

from __future__ import annotations

import codecs
import json
import shutil
import subprocess
import time
from collections.abc import Callable

from benchmarks.bench import MB, Bench, size_text
from benchmarks.peers import pattern_bytes
from benchmarks.processes import Processes
from benchmarks.receiving import hexdump_available
from benchmarks.results import Row, median
from netrepl.codec import TextDecoder
from netrepl.display import AnsiFormatter, plain
from netrepl.events import Connected, Received
from netrepl.hexdump import format_hexdump
from netrepl.jsonview import JSON_MAX_CHARS, format_json
from netrepl.render import Renderer
from netrepl.transport.stream import READ_SIZE
from netrepl.view import View

TEXT_CHUNK = 4096


def plain_renderer(view: View) -> Renderer:
    """The renderer batch mode uses when stdout is a file or a pipe: no styles worked out
    (a netrepl from before that option renders styled text, and the sink drops the styles)."""
    try:
        return Renderer(view, styles=False)  # type: ignore[call-arg]
    except TypeError:
        return Renderer(view)


def render_hex(data: bytes, renderer: Renderer | None = None) -> str:
    """`data` as batch hex shows it: Renderer events -> Text -> plain, in reads of READ_SIZE."""
    renderer = plain_renderer(View(mode="hex")) if renderer is None else renderer
    renderer.render(Connected(1, "127.0.0.1:2", "127.0.0.1:1"))
    parts: list[str] = []
    for start in range(0, len(data), READ_SIZE):
        for output in renderer.render(Received(1, data[start : start + READ_SIZE])):
            if output.channel == "data" and output.text is not None:
                parts.append(plain(output.text))
    return "".join(parts)


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def hex_render(bench: Bench) -> list[Row]:
    size = bench.size(10 * MB)
    row = Row(
        f"hex render: renderer to plain hexdump text, no terminal ({size_text(size)})",
        "ratio_min",
        2.0,
        reference_name="hexdump -C",
    )
    hexdump = hexdump_available()
    if hexdump is None:
        row.note = "not measured: no hexdump on this machine (util-linux / bsdmainutils)"
        return [row]
    data = pattern_bytes("binary", size)
    path = bench.workdir / "render.bin"
    path.write_bytes(data)
    ours: list[float] = []
    theirs: list[float] = []
    try:
        with Processes(bench.state_dir) as procs:
            for _ in bench.repetitions(ours, theirs):
                theirs.append(
                    size
                    / MB
                    / procs.run([hexdump, "-C", str(path)], 120, stdout=subprocess.DEVNULL)
                )
                ours.append(size / MB / _timed(lambda: render_hex(data)))
        expected = subprocess.run(
            [hexdump, "-C", str(path)], capture_output=True, timeout=120, check=True
        ).stdout.decode("ascii")
    finally:
        path.unlink()
    expected = expected[: expected.rstrip("\n").rfind("\n") + 1]  # hexdump's closing offset
    if render_hex(data) != expected:
        row.check_failed = True
        row.note = "the rendered text differs from hexdump -C"
    sample = data[: min(size, 1 << 20)]
    formatter = AnsiFormatter()
    styled_renderer = Renderer(View(mode="hex"))
    styled_renderer.render(Connected(1, "127.0.0.1:2", "127.0.0.1:1"))
    details = {
        "renderer_MBps": ours,
        "hexdump_MBps": theirs,
        "format_hexdump_MBps": len(data) / MB / _timed(lambda: format_hexdump(data)),
        # The interactive path: styled Text (dim offsets), then rich turning it into ANSI.
        "styled_renderer_MBps": len(data)
        / MB
        / _timed(lambda: render_hex(data, Renderer(View(mode="hex")))),
        "styled_terminal_path_MBps": len(sample)
        / MB
        / _timed(
            lambda: [
                formatter(output.text)
                for output in styled_renderer.render(Received(1, sample))
                if output.text is not None
            ]
        ),
    }
    row.measured(ours, theirs, "MB/s")
    row.details = details
    return [row, _xxd_row(bench, data, size)]


def _xxd_row(bench: Bench, data: bytes, size: int) -> Row:
    """The same render against `xxd`, a faster C hexdump than `hexdump -C` (another layout:
    the bytes are the same work)."""
    row = Row(
        f"hex render: renderer to plain hexdump text, against xxd ({size_text(size)})",
        "ratio_min",
        0.5,
        reference_name="xxd",
    )
    xxd = shutil.which("xxd")
    if xxd is None:
        row.note = "not measured: no xxd on this machine (Debian: xxd, or vim-common)"
        return row
    path = bench.workdir / "render-xxd.bin"
    path.write_bytes(data)
    ours: list[float] = []
    theirs: list[float] = []
    try:
        with Processes(bench.state_dir) as procs:
            for _ in bench.repetitions(ours, theirs):
                theirs.append(
                    size / MB / procs.run([xxd, str(path)], 120, stdout=subprocess.DEVNULL)
                )
                ours.append(size / MB / _timed(lambda: render_hex(data)))
    finally:
        path.unlink()
    row.measured(ours, theirs, "MB/s")
    row.details = {"renderer_MBps": ours, "xxd_MBps": theirs}
    return row


def mixed_text(size: int) -> bytes:
    """Device-like text: UTF-8 and GBK lines mixed, CR LF ends, now and then an escape."""
    utf8 = "温度 23.5°C, 湿度 61% — sensor ok\r\n".encode()
    gbk = "设备状态：正常，电压 220V\r\n".encode("gbk")
    ascii_line = b"OK seq=000123 val=0x1f2e\r\n"
    control = b"\x1b[31mALARM\x1b[0m \x07\r\n"
    block = (utf8 + gbk + ascii_line) * 6 + control
    return (block * (size // len(block) + 1))[:size]


def _decode_all(decoder: Callable[[bytes], object], chunks: list[bytes]) -> None:
    for chunk in chunks:
        decoder(chunk)


def clean_text(kind: str, size: int) -> bytes:
    """A clean log, as a device writes it: UTF-8 with CJK and CR LF (`utf-8`), the same text
    in GBK (`gbk`), or ASCII (`ascii`); no escapes, no invalid bytes."""
    lines = [
        f"2026-12-06 10:{n % 60:02d}:{n * 7 % 60:02d} 温度 {20 + n % 9}.{n % 10}°C"
        f" 湿度 {40 + n % 30}% 设备 #{n:04d} 状态正常\r\n"
        for n in range(200)
    ]
    if kind == "ascii":
        lines = [
            f"2026-12-06 10:{n % 60:02d} sensor {n:04d} temp={20 + n % 9} ok\r\n"
            for n in range(200)
        ]
    text = "".join(lines)
    block = text.encode("gbk" if kind == "gbk" else "utf-8")
    return (block * (size // len(block) + 1))[:size]


def text_render(bench: Bench) -> list[Row]:
    size = bench.size(10 * MB)
    rows = []
    # (data, its name, view name, netrepl's encoding, the codec a bare decoder would use)
    cases = (
        ("mixed", "mixed UTF-8/GBK", "auto", "auto", "utf-8"),
        ("mixed", "mixed UTF-8/GBK", "utf-8", "utf-8", "utf-8"),
        ("mixed", "mixed UTF-8/GBK", "gbk", "gbk", "gbk"),
        ("utf-8", "clean UTF-8 CJK log, CR LF", "utf-8", "utf-8", "utf-8"),
        ("utf-8", "clean UTF-8 CJK log, CR LF", "auto", "auto", "utf-8"),
        ("gbk", "clean GBK log, CR LF", "gbk", "gbk", "gbk"),
        ("gbk", "clean GBK log, CR LF", "auto", "auto", "gbk"),
        ("ascii", "ASCII log, CR LF", "utf-8", "utf-8", "utf-8"),
    )
    datasets = {
        kind: (mixed_text(size) if kind == "mixed" else clean_text(kind, size))
        for kind in ("mixed", "utf-8", "gbk", "ascii")
    }
    for kind, name, view, encoding, codec in cases:
        data = datasets[kind]
        chunks = [data[i : i + TEXT_CHUNK] for i in range(0, len(data), TEXT_CHUNK)]
        row = Row(
            f"text render: decode+escape, {view} view, {name}, 4 KiB reads ({size_text(size)})",
            "ratio_min",
            0.5,
            reference_name=f"bare {codec} incremental decode",
        )
        ours: list[float] = []
        theirs: list[float] = []
        for _ in bench.repetitions(ours, theirs):
            bare = codecs.getincrementaldecoder(codec)(errors="surrogateescape")
            theirs.append(size / MB / _timed(lambda b=bare, c=chunks: _decode_all(b.decode, c)))
            netrepl = TextDecoder(encoding)
            ours.append(size / MB / _timed(lambda d=netrepl, c=chunks: _decode_all(d.decode, c)))
        row.measured(ours, theirs, "MB/s")
        row.details = {"netrepl_MBps": ours, "bare_MBps": theirs, "chunk": TEXT_CHUNK}
        rows.append(row)
    return rows


def api_reply(size: int) -> str:
    """A JSON array of API-like records (ids, names, flags, scores, nested objects, non-ASCII),
    compact, about `size` characters long."""
    records = []
    length = 2
    index = 0
    while length < size:
        record = json.dumps(
            {
                "id": index,
                "name": f"user {index}",
                "active": index % 3 == 0,
                "score": index * 7 % 1000 / 10,
                "tags": ["a", "b", "ü"],
                "address": {"city": "Zürich", "zip": "8000"},
                "parent": None,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        records.append(record)
        length += len(record) + 1
        index += 1
    return "[" + ",".join(records) + "]"


def json_render(bench: Bench) -> list[Row]:
    """The json view on its largest document (JSON_MAX_CHARS): re-indenting and colouring it
    (format_json) and turning it into terminal text, the cost the display pays at once."""
    size = JSON_MAX_CHARS
    document = api_reply(size - 4096)
    row = Row(
        f"json render: a {len(document) // 1024} KiB document re-indented, coloured, to terminal"
        " text",
        "ratio_min",
        0.1,
        reference_name="json.loads + json.dumps(indent=2)",
    )
    formatter = AnsiFormatter()
    ours: list[float] = []
    theirs: list[float] = []
    rows = 0
    for _ in bench.repetitions(ours, theirs):
        theirs.append(
            len(document) / MB / _timed(lambda: json.dumps(json.loads(document), indent=2))
        )
        began = time.perf_counter()
        formatted = format_json(document)
        assert formatted is not None
        formatter(formatted)
        ours.append(len(document) / MB / (time.perf_counter() - began))
        rows = formatted.plain.count("\n")
    row.measured(ours, theirs, "MB/s")
    row.details = {
        "netrepl_MBps": ours,
        "reference_MBps": theirs,
        "document_chars": len(document),
        "screen_rows": rows,
        "seconds": len(document) / MB / median(ours),
    }
    return [row]
