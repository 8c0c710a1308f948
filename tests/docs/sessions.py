"""Every netrepl session shown in README.md and docs/guide.md, declared once.

Each function below is one checked block: its name (underscores as dashes) is the marker
`<!-- session: NAME -->` above the block. It says which loopback peer plays the doc's host,
the command line as the doc shows it, and what is typed or piped; `runner.py` runs it.

    python -m tests.docs.sessions --write       # run every session, rewrite the blocks
    python -m tests.docs.sessions --check       # run every session, show the diffs
    python -m tests.docs.sessions NAME ...      # only these
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.docs import blocks
from tests.docs.blocks import doc_file
from tests.docs.peers import (
    BuiltInDemo,
    BuiltInWebSocketDemo,
    DatagramSender,
    DemoDevice,
    DeviceClient,
    GbkDevice,
    HttpLike,
    JsonDevice,
    ModbusDevice,
    RedisLike,
    SilentDevice,
    TlsIdentity,
    WebSocketDemoDevice,
)
from tests.docs.runner import (
    Await,
    Batch,
    Connect,
    Interactive,
    Interrupt,
    Leave,
    Push,
    Send,
    Session,
    Type,
    Vary,
    run,
)

SESSIONS: dict[str, Callable[[], Session]] = {}

JOBS = 3
"""Sessions run at once: each mostly waits (for netrepl to start, for its screen to settle)."""

EXAMPLE_COM = "93.184.215.14"
"""The address example.com resolves to, as the docs show it."""

READ_10_REGISTERS = "/x 00 01 00 00 00 06 01 03 00 00 00 0a"
"""Modbus/TCP: transaction 1, unit 1, read holding registers 0-9."""


def session(declare: Callable[[], Session]) -> Callable[[], Session]:
    """Register a session under its function's name: a function, so each run gets fresh
    peers."""
    SESSIONS[declare.__name__.replace("_", "-")] = declare
    return declare


# ---- README.md ---------------------------------------------------------------------------------


@session
def readme_demo() -> Session:
    """The opening screen: `netrepl --demo`, a few views and the demo's tricks."""
    return Interactive(
        command="netrepl --demo",
        show_command=False,
        peers=[BuiltInDemo()],
        steps=[
            Type("/gbk"),
            Send("gbk"),
            Type("/hex"),
            Send("binary"),
            Type("/utf8"),
            Send("hostile"),
            Send("prompt"),
        ],
        screen=True,
        unknown=("127.0.0.1:40671", "127.0.0.1:51816"),
    )


@session
def readme_redis() -> Session:
    return Interactive(
        command="netrepl 127.0.0.1 6379",
        peers=[RedisLike("127.0.0.1:6379")],
        steps=[Send("PING")],
        local=("127.0.0.1:50112",),
    )


@session
def readme_http() -> Session:
    return Interactive(
        command="netrepl example.com 80 --eol crlf",
        peers=[HttpLike("example.com:80", resolved=EXAMPLE_COM)],
        steps=[Send("GET / HTTP/1.1"), Send("Host: example.com"), Send("")],
    )


@session
def readme_modbus() -> Session:
    return Interactive(
        command="netrepl 192.168.1.7 502 --view hex",
        peers=[ModbusDevice("192.168.1.7:502")],
        steps=[Send(READ_10_REGISTERS)],
    )


@session
def readme_listen() -> Session:
    return Interactive(
        command="netrepl -l 9000 --view hex          # every interface; -l 127.0.0.1 9000 for one",
        peers=[DeviceClient("192.168.1.50:49152")],
        steps=[Connect("192.168.1.50:49152")],
        listen="*:9000",
    )


# ---- docs/guide.md -----------------------------------------------------------------------------


@session
def guide_screen() -> Session:
    """The screen, with what each part is."""
    return Interactive(
        command="netrepl 127.0.0.1 6379",
        show_command=False,
        peers=[RedisLike("127.0.0.1:6379")],
        steps=[Send("PING")],
        screen=True,
        local=("127.0.0.1:50112",),
        notes={
            "connected to": "status lines are dim",
            "> PING": "what you typed, kept in the scrollback",
            "+PONG": "what arrived, in the current view",
            "> _": "the prompt; arriving data never touches it",
        },
    )


@session
def guide_redis() -> Session:
    return Interactive(
        command="$ netrepl 127.0.0.1 6379",
        peers=[RedisLike("127.0.0.1:6379")],
        steps=[Send("PING"), Send("SET greeting hello"), Send("GET greeting"), Type("/quit")],
        local=("127.0.0.1:50112",),
    )


@session
def guide_redis_batch() -> Session:
    # The Redis of the session above, where `greeting` was set.
    return Batch(
        command="$ printf 'PING\\nGET greeting\\n' | netrepl 127.0.0.1 6379",
        peers=[RedisLike("127.0.0.1:6379", {b"greeting": b"hello"})],
    )


@session
def guide_http() -> Session:
    return Interactive(
        command="$ netrepl example.com 80 --eol crlf",
        peers=[HttpLike("example.com:80", resolved=EXAMPLE_COM)],
        steps=[
            Send("GET / HTTP/1.1"),
            Send("Host: example.com"),
            Send("Connection: close"),
            Send(""),
            Type("/reconnect", connects=1),
        ],
    )


@session
def guide_modbus() -> Session:
    return Interactive(
        command="$ netrepl 192.168.1.7 502 --view hex",
        peers=[ModbusDevice("192.168.1.7:502")],
        steps=[Send(READ_10_REGISTERS)],
    )


@session
def guide_modbus_hex_input() -> Session:
    """The session above, going on with `/input hex`."""
    return Interactive(
        command="$ netrepl 192.168.1.7 502 --view hex",
        show_command=False,
        peers=[ModbusDevice("192.168.1.7:502")],
        steps=[
            Send(READ_10_REGISTERS),
            Type("/input hex"),
            Send("00 02 00 00 00 06 01 03 00 00 00 01"),
        ],
        start_at="> /input hex",
    )


@session
def guide_gbk() -> Session:
    return Interactive(
        command="$ netrepl 10.0.0.5 9000",
        peers=[GbkDevice("10.0.0.5:9000")],
        steps=[Type("/gbk"), Send("查询")],
    )


@session
def guide_json() -> Session:
    return Interactive(
        command="$ netrepl 10.0.0.7 7000",
        peers=[JsonDevice("10.0.0.7:7000")],
        steps=[Send('{"op":"status"}'), Type("/json"), Send('{"op":"status"}')],
    )


@session
def guide_listen() -> Session:
    return Interactive(
        command="$ netrepl -l 9000 --view hex",
        peers=[DeviceClient("192.168.1.50:49152")],
        steps=[
            Connect("192.168.1.50:49152"),
            Push("192.168.1.50:49152", bytes.fromhex("68 01 00 12 34 56 16")),
        ],
        listen="*:9000",
    )


@session
def guide_listen_two() -> Session:
    """The session above, when a second device connects."""
    return Interactive(
        command="$ netrepl -l 9000 --view hex",
        show_command=False,
        peers=[DeviceClient("192.168.1.50:49152"), DeviceClient("192.168.1.51:50211")],
        steps=[
            Connect("192.168.1.50:49152"),
            Push("192.168.1.50:49152", bytes.fromhex("68 01 00 12 34 56 16")),
            Connect("192.168.1.51:50211"),
            Push("192.168.1.51:50211", bytes.fromhex("68 02 00 12 34 56 16")),
            Push("192.168.1.50:49152", bytes.fromhex("68 01 00 12 34 57 16")),
        ],
        listen="*:9000",
        start_at="#2 connected",
    )


@session
def guide_udp() -> Session:
    return Interactive(
        command="$ netrepl -u -l 5000 --view hex          # receive from anyone",
        peers=[DatagramSender("192.168.1.60:40000")],
        steps=[Push("192.168.1.60:40000", b"dgram one")],
        listen="*:5000",
    )


@session
def guide_tls() -> Session:
    certificate = TlsIdentity(
        "example.com",
        "www.example.org",
        common_name="www.example.org",
        days_left=96,
        doc_expiry="2026-03-01 00:00 UTC",
    )
    return Interactive(
        command="$ netrepl example.com 443 --tls --eol crlf",
        peers=[HttpLike("example.com:443", resolved=EXAMPLE_COM, tls=certificate)],
        steps=[Send("GET / HTTP/1.1"), Send("Host: example.com"), Send("")],
    )


@session
def guide_tls_failure() -> Session:
    return Batch(
        command="netrepl 10.0.0.9 8883 --tls",
        show_command=False,
        show=("stderr",),
        exit_status=1,
        peers=[SilentDevice("10.0.0.9:8883", tls=TlsIdentity(self_signed=True))],
    )


@session
def guide_time_delta() -> Session:
    return Interactive(
        command="netrepl 192.168.1.7 502 --view hex",
        show_command=False,
        peers=[ModbusDevice("192.168.1.7:502", rtu=True)],
        steps=[Type("/time delta"), Send("/x 01 03 00 00 00 0A {crc16-modbus}")],
        start_at="> /time delta",
        # The device's response time: whatever it was in this run.
        vary=[Vary(r"^── (\+\d+\.\d{3}s) ←", ["+0.012s"])],
    )


# ---- docs/guide.md: the relay ------------------------------------------------------------------

DEMO = "127.0.0.1:7000"
"""`python -m netrepl.demo 7000`: the device netrepl relays to, on the reader's machine."""
NC = "127.0.0.1:43210"
"""`nc 127.0.0.1 5020`: the client, from an ephemeral port."""
RELAY = "$ netrepl -l 127.0.0.1 5020 --relay 127.0.0.1:7000"
RELAY_LISTEN = "127.0.0.1:5020"
RELAY_LOCAL = ("127.0.0.1:43212",)
"""netrepl's end of its connection to the demo peer."""
CLOCK = r"^── (\d\d:\d\d:\d\d\.\d{3}) "


def clocks(*shown: str) -> Vary:
    """`--time on`'s clock in each block header, as the doc shows it."""
    return Vary(CLOCK, shown)


@session
def guide_relay_watch() -> Session:
    return Interactive(
        command=f"{RELAY} --time on",
        peers=[DemoDevice(DEMO), DeviceClient(NC)],
        steps=[Connect(NC), Push(NC, b"temp\n"), Push(NC, b"hello\n"), Type("/flows")],
        listen=RELAY_LISTEN,
        local=RELAY_LOCAL,
        vary=[
            clocks("14:03:07.250", "14:03:09.811", "14:03:09.812", "14:03:12.004", "14:03:12.004"),
            # The flow's age in /flows: right-aligned in 7 columns after a blank.
            Vary(r"^ +#1 +\S+ +\S+ +?( {0,6}\d+s) ", ["      9s"]),
        ],
    )


@session
def guide_relay_inject() -> Session:
    """The session above, going on: what you type goes to a side of the flow."""
    return Interactive(
        command=f"{RELAY} --time on",
        show_command=False,
        peers=[DemoDevice(DEMO), DeviceClient(NC)],
        steps=[
            Connect(NC),
            Type("/to client"),
            Send("hello from netrepl"),
            Type("/to upstream"),
            Send("temp"),
        ],
        listen=RELAY_LISTEN,
        local=RELAY_LOCAL,
        start_at="> /to client",
        screen=True,
        vary=[clocks("14:03:07.250", "14:03:20.533", "14:03:31.090", "14:03:31.091")],
    )


@session
def guide_relay_hold() -> Session:
    return Interactive(
        command=RELAY,
        show_command=False,
        peers=[DemoDevice(DEMO), DeviceClient(NC)],
        steps=[
            Connect(NC),
            Type("/frame line"),
            Type("/hold client"),
            Push(NC, b"temp\n"),
            Type("/forward"),
            Push(NC, b"close\n"),
            Type("/drop"),
            Type("/hold off"),
        ],
        listen=RELAY_LISTEN,
        local=RELAY_LOCAL,
        start_at="> /frame line",
    )


@session
def guide_relay_rewrite() -> Session:
    return Interactive(
        command=RELAY,
        show_command=False,
        peers=[DemoDevice(DEMO), DeviceClient(NC)],
        steps=[
            Connect(NC),
            Type("/frame line"),
            Type(r"/rewrite upstream ^temperature [\d.]+ -> temperature 99.9"),
            Push(NC, b"temp\n"),
            Type("/frame raw"),
            Type("/hex"),
            Type(
                "/rewrite-hex upstream 01 03 04 00 2a 01 00 da 6b"
                " -> 01 03 04 00 63 01 00 {crc16-modbus}"
            ),
            Push(NC, b"binary\n"),
        ],
        listen=RELAY_LISTEN,
        local=RELAY_LOCAL,
        start_at="> /frame line",
    )


@session
def guide_relay_mock() -> Session:
    return Interactive(
        command=RELAY,
        show_command=False,
        peers=[DemoDevice(DEMO), DeviceClient(NC)],
        steps=[
            Connect(NC),
            Type("/frame line"),
            Type(r"/rewrite client ^temp\r?\n ->"),
            Type(r"/when ^temp$ -> temperature 20.0 C"),
            Push(NC, b"temp\n"),
            Push(NC, b"hello\n"),
        ],
        listen=RELAY_LISTEN,
        local=RELAY_LOCAL,
        start_at="> /frame line",
    )


@session
def guide_relay_fault() -> Session:
    """A fault-injection test: the client asks three times, the third answer is dropped."""
    script = "drop-third-reply.nrs"
    return Batch(
        command=f"{RELAY} --once --script {script} < /dev/null > traffic.txt",
        peers=[DemoDevice(DEMO), DeviceClient(NC)],
        files={script: doc_file(script)},
        steps=[
            Await("holding what the upstream sends"),  # the script is in place: start the client
            Connect(NC),
            Await("forwarded frames 1-5"),
            Push(NC, b"temp\n"),
            Await("forwarded frame 6"),
            Push(NC, b"temp\n"),
            Await("forwarded frame 7"),
            Push(NC, b"temp\n"),
            Await("holding nothing any more"),
            Leave(NC),
        ],
        show=("stderr",),
        listen=RELAY_LISTEN,
        local=RELAY_LOCAL,
    )


@session
def guide_relay_log() -> Session:
    """A logging relay in batch mode, then its log as a capture for Wireshark."""
    return Batch(
        command=f"{RELAY} --time on --log relay.jsonl < /dev/null > traffic.txt",
        peers=[DemoDevice(DEMO), DeviceClient(NC)],
        steps=[Connect(NC), Push(NC, b"temp\n"), Interrupt()],
        show=("stderr", "traffic.txt"),
        then=["$ netrepl export relay.jsonl --pcap relay.pcap"],
        listen=RELAY_LISTEN,
        local=RELAY_LOCAL,
        vary=[clocks("14:03:07.250", "14:03:09.811", "14:03:09.812")],
    )


# ---- docs/guide.md: WebSocket ------------------------------------------------------------------

WS_DEMO = "127.0.0.1:8765"
"""`python -m netrepl.demo 8765`: the demo peer on its own, speaking WebSocket too."""
WS_LOCAL = ("127.0.0.1:50112",)


@session
def guide_ws_demo() -> Session:
    return Interactive(
        command="$ netrepl --demo --ws",
        peers=[BuiltInWebSocketDemo()],
        steps=[
            Type("/json"),
            Send('{"op":"ping","id":1}'),
            Type("/ping hi"),
            Send("ping"),
            Type("/close 1000 bye"),
        ],
        unknown=("127.0.0.1:40671", "127.0.0.1:51816"),
        vary=[Vary(r"pong 'hi' in (\S+ ms)$", ["0.31 ms"])],
    )


@session
def guide_ws_batch() -> Session:
    return Batch(
        command="""$ printf '{"op":"ping"}\\n' | netrepl ws://127.0.0.1:8765/""",
        peers=[WebSocketDemoDevice(WS_DEMO)],
        local=WS_LOCAL,
    )


@session
def guide_ws_log() -> Session:
    return Batch(
        command="$ printf 'gbk\\nbye\\n' | netrepl ws://127.0.0.1:8765/ --log ws.jsonl > ws.txt",
        peers=[WebSocketDemoDevice(WS_DEMO)],
        show=("stderr",),
        local=WS_LOCAL,
        then=["$ netrepl replay ws.jsonl --view auto", "$ netrepl export ws.jsonl --pcap ws.pcap"],
    )


# ---- running them ------------------------------------------------------------------------------


def shown(name: str) -> list[str]:
    """Run the session `name`; its block's lines."""
    return run(SESSIONS[name]())


def diff(name: str, documented: list[str], actual: list[str], where: str) -> str:
    return "\n".join(
        difflib.unified_diff(
            documented,
            actual,
            f"{where} (the doc)",
            f"session {name} (what netrepl prints)",
            lineterm="",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.docs.sessions", description=__doc__)
    parser.add_argument("names", nargs="*", help="sessions to run (default: all)")
    parser.add_argument("--write", action="store_true", help="rewrite the doc blocks")
    parser.add_argument("--check", action="store_true", help="show diffs (the default)")
    parser.add_argument("--jobs", type=int, default=JOBS, help="sessions run at once")
    options = parser.parse_args(argv)
    names = options.names or list(SESSIONS)
    unknown = [name for name in names if name not in SESSIONS]
    if unknown:
        parser.error(f"no such session: {', '.join(unknown)} (known: {', '.join(SESSIONS)})")
    with ThreadPoolExecutor(max(1, options.jobs)) as pool:
        results = dict(zip(names, pool.map(shown, names), strict=True))
    documented = {block.session: block for block in blocks.checked_blocks()}
    differ = 0
    for name, lines in results.items():
        block = documented.get(name)
        if block is None:
            print(f"{name}: no block is marked <!-- session: {name} -->", file=sys.stderr)
            differ += 1
        elif list(block.lines) != lines:
            differ += 1
            print(diff(name, list(block.lines), lines, block.where))
    if options.write:
        for path in blocks.DOCS:
            if blocks.rewrite(path, results):
                print(f"rewrote {path.relative_to(blocks.ROOT)}", file=sys.stderr)
        return 0
    print(f"{differ} of {len(results)} sessions differ from their doc block", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
