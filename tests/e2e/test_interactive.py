"""The interactive REPL in a real pty against real loopback peers, typed as a person types.
Waits are on the emulated (pyte) screen, with a timeout; the raw pty bytes prove what never
reached the terminal."""

from __future__ import annotations

import re
import stat

import pytest

from netrepl.demo import BINARY_FRAME, BINARY_INTRO, GBK_LINE, GREETING, HELP, HOSTILE
from tests.net.conftest import hexdump_line
from tests.peers import Peer, PeerClient, free_port, has_ipv6_loopback
from tests.terminal import Terminal

NOT_CONNECTED = "not connected (/reconnect or /connect HOST PORT)"


def rows(*lines: str) -> str:
    """A regex for consecutive whole screen lines, given literally (screen lines are
    right-stripped, so an empty prompt `> ` is `>`)."""
    return "(?m)^" + r"\n".join(re.escape(line) for line in lines) + "$"


def unwrapped(text: str) -> str:
    """Messages as one line each again: netrepl wraps a long one at spaces, its continuation
    rows indented by two (a line without columns)."""
    return re.sub(r"\n  (?=\S)", " ", text)


def address(peer: Peer) -> str:
    return f"[{peer.host}]:{peer.port}" if ":" in peer.host else f"{peer.host}:{peer.port}"


def toolbar(peer: Peer, state: str = "connected") -> str:
    """A regex for the start of the toolbar line; append to it to check more fields."""
    return rf"(?m)^ TCP {re.escape(address(peer))}  {state}  │  "


def ready(terminal: Terminal) -> None:
    """Wait until the prompt is drawn whole. prompt_toolkit draws the toolbar once the terminal
    has answered its cursor-position query; keys typed before that answer make it arrive late,
    at the next prompt, which then draws itself too low and scrolls lines off the screen."""
    terminal.expect_screen(r"(?m)^ TCP \S+  (?:connected|closed)  │  view .*  tx [\d,]+ B$")


def enter(terminal: Terminal, line: str = "") -> None:
    ready(terminal)
    terminal.enter(line)


def keys(terminal: Terminal, text: str) -> None:
    ready(terminal)
    terminal.type(text)


def answer(terminal: Terminal, client: PeerClient, typed: str, data: bytes) -> None:
    """The peer answers the line `typed` with `data` once the next prompt is up. An answer that
    arrives while no prompt runs hits the race of test_output_never_lands_on_the_prompt_line."""
    terminal.expect_screen(rows(f"> {typed}", ">"))
    ready(terminal)
    client.send(data)


def start(spawn, peer: Peer, *options: str) -> tuple[Terminal, PeerClient]:
    """netrepl against `peer`, with its prompt drawn (typing earlier would go to a cooked tty),
    and the peer's side of the new connection."""
    clients = len(peer.clients)
    terminal = spawn(*peer.args, *options)
    terminal.expect_screen(toolbar(peer))
    return terminal, peer.wait_for_client(clients + 1)


# ---- 1. greeting, toolbar, sending, echo ---------------------------------------------------------


def test_greeting_toolbar_send_and_echo(spawn, make_peer):
    greeting = b"hello from the peer\r\n"
    peer = make_peer(greeting=greeting)
    terminal, client = start(spawn, peer)

    terminal.expect_screen(
        rf"(?m)^connected to {re.escape(address(peer))} from 127\.0\.0\.1:\d+\n"
        r"hello from the peer$"
    )
    terminal.expect_screen(
        toolbar(peer) + rf"view utf-8  input text  eol lf  │  rx {len(greeting)} B  tx 0 B$"
    )

    enter(terminal, "line")
    assert client.wait_for(b"line\n") == b"line\n"
    answer(terminal, client, "line", b"line\n")
    terminal.expect_screen(rows("> line", "line", ">"))
    enter(terminal, "second")
    assert client.wait_for(b"second\n") == b"line\nsecond\n"
    answer(terminal, client, "second", b"second\n")
    # The typed lines stay in the scrollback, in order with what the peer sent back.
    terminal.expect_screen(rows("hello from the peer", "> line", "line", "> second", "second"))
    terminal.expect_screen(toolbar(peer) + rf".*│  rx {len(greeting) + 12} B  tx 12 B$")


# ---- 2. hex view ---------------------------------------------------------------------------------


def test_hex_view_shows_hexdump_with_stream_offsets(spawn, make_peer):
    peer = make_peer(greeting=b"hi\n")
    terminal, client = start(spawn, peer)
    terminal.expect_screen(rows("hi"))

    enter(terminal, "/hex")
    terminal.expect_screen(toolbar(peer) + r"view hex \(utf-8\)  input text")
    data = b"ABCDEFGHIJKLMNOP\x00\xff\x1b\n"
    client.send(data)

    # Offsets count from the start of the connection: the 3 greeting bytes shown as text.
    terminal.expect_screen(
        rows(
            hexdump_line(3, data[:16]).rstrip("\n"),
            hexdump_line(19, data[16:]).rstrip("\n"),
        )
    )
    assert "00000003  41 42 43 44 45 46 47 48  49 4a 4b" in terminal.screen_text()


# ---- 3. GBK --------------------------------------------------------------------------------------


def test_gbk_view_shows_chinese_and_sends_gbk(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)

    enter(terminal, "/gbk")
    terminal.expect_screen(toolbar(peer) + "view gbk  input text")
    client.send("设备说中文，温度 25℃\r\n".encode("gbk"))
    terminal.expect_screen(rows("设备说中文，温度 25℃"))

    enter(terminal, "你好")
    assert client.wait_for("你好\n".encode("gbk")) == b"\xc4\xe3\xba\xc3\n"
    terminal.expect_screen(rows("> 你好"))


# ---- 4. a hostile peer ---------------------------------------------------------------------------


def test_hostile_escape_sequences_never_reach_the_terminal(spawn, make_peer):
    peer = make_peer(greeting=b"this line must survive\n")
    terminal, client = start(spawn, peer)
    terminal.expect_screen(rows("this line must survive"))

    client.send(HOSTILE)
    shown = r"\x1b[2J\x1b[H\x1b[31mred?\x1b]0;pwned\x07\x1b[0m\x07\x9b6n done"
    terminal.expect_screen(rows(HOSTILE.split(b"\r\n")[0].decode(), shown))

    raw = bytes(terminal.raw)
    # The peer's own sequences; prompt_toolkit's and rich's CSI codes are different ones.
    for sequence in (b"\x1b[2J", b"\x1b[H\x1b[31m", b"\x1b[31mred", b"\x1b]0;", b"\x1b[0m\x07"):
        assert sequence not in raw, sequence
    assert b"\x07" not in raw, "a BEL reached the terminal"
    # 0x9b may be part of a UTF-8 character; as the character U+009B it is a C1 CSI.
    assert "\x9b" not in raw.decode("utf-8"), "a C1 CSI reached the terminal"
    assert b"\x9b6n" not in raw

    assert terminal.screen.title == "", "the window title changed"
    # The screen was neither cleared nor recoloured by the peer.
    lines = terminal.screen_lines()
    assert "this line must survive" in lines
    y = next(i for i, line in enumerate(lines) if line.startswith("\\x1b[2J"))
    x = lines[y].index("red?")
    assert all(terminal.screen.buffer[y][x + i].fg == "default" for i in range(4))
    # The escapes are shown in a colour of their own, so they stand out from the data.
    assert terminal.screen.buffer[y][0].fg != "default"


# ---- 5. the line being typed survives arriving data ----------------------------------------------


def test_partly_typed_line_is_kept_while_data_arrives(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)

    keys(terminal, "abc")
    terminal.expect_screen(rows("> abc"))
    client.send(b"one\n")
    client.send(b"two\nthree\n")
    terminal.expect_screen(rows("one", "two", "three", "> abc"))

    enter(terminal)
    assert client.wait_for(b"abc\n") == b"abc\n"
    terminal.expect_screen(rows("one", "two", "three", "> abc", ">"))


def test_typed_line_survives_a_flood(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    keys(terminal, "abc")
    terminal.expect_screen(rows("> abc"))

    flood = b"".join(b"line %05d\n" % i for i in range(5000))
    client.send(flood)
    terminal.expect_screen(rows("line 04998", "line 04999", "> abc"))
    terminal.expect_screen(toolbar(peer) + rf".*│  rx {len(flood):,} B  tx 0 B$")

    enter(terminal)
    assert client.wait_for(b"abc\n") == b"abc\n"


# ---- 6. text without a newline -------------------------------------------------------------------


def test_text_without_newline_shows_before_the_newline(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)

    client.send(b"login: ")
    terminal.expect_screen(rows("login:", ">"))
    keys(terminal, "root")
    terminal.expect_screen(rows("login:", "> root"))

    enter(terminal)
    assert client.wait_for(b"root\n") == b"root\n"
    answer(terminal, client, "root", b"root\n")
    terminal.expect_screen(rows("login:", "> root", "root", ">"))
    assert terminal.screen_text().count("login:") == 1, terminal.screen_text()


def test_hexdump_after_an_open_line_follows_the_echo_directly(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    client.send(b"login: ")
    terminal.expect_screen(rows("login:", ">"))

    enter(terminal, "/hex")
    terminal.expect_screen(toolbar(peer) + "view hex")
    client.send(b"\x01\x02")
    line = hexdump_line(7, b"\x01\x02").rstrip()
    terminal.expect_screen(rows(line))
    screen = terminal.screen_text()
    assert re.search(rows("login:", "> /hex", line), screen), screen


# ---- 7. the peer closes; /reconnect --------------------------------------------------------------


def test_peer_close_then_reconnect(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)

    client.close()
    terminal.expect_screen(rows("connection closed by peer (0 bytes received, 0 sent)"))
    terminal.expect_screen(toolbar(peer, "closed"))

    enter(terminal, "hello")
    terminal.expect_screen(rows("> hello", NOT_CONNECTED, ">"))

    enter(terminal, "/reconnect")
    second = peer.wait_for_client(2)
    # Not anchored at the line start: see test_output_never_lands_on_the_prompt_line.
    terminal.expect_screen(
        rf"(?m)connected to {re.escape(address(peer))} from 127\.0\.0\.1:{second.address[1]}$"
    )
    terminal.expect_screen(toolbar(peer, "connected"))

    enter(terminal, "again")
    # Only the new line: the one typed while closed was dropped, not queued.
    assert second.wait_for(b"again\n") == b"again\n"
    answer(terminal, second, "again", b"again\n")
    terminal.expect_screen(rows("> again", "again", ">"))


def test_output_never_lands_on_the_prompt_line(spawn, make_peer):
    peer = make_peer()
    terminal, _ = start(spawn, peer)
    status = rf"connected to {re.escape(address(peer))} from 127\.0\.0\.1:(\d+)"
    for _ in range(30):
        enter(terminal, "/reconnect")
        port = terminal.expect(status).group(1)
        terminal.expect(r"connected  │  view")  # the next prompt is drawn, the toolbar last
        line = next(line for line in terminal.screen_lines() if line.endswith(f":{port}"))
        assert line.startswith("connected to "), "\n".join(terminal.screen_lines())


def test_close_then_connect_elsewhere(spawn, make_peer):
    first = make_peer()
    other = make_peer(greeting=b"the other peer\n")
    terminal, client = start(spawn, first)

    enter(terminal, "/close")
    assert client.wait_closed() == b""
    terminal.expect_screen(toolbar(first, "closed"))

    enter(terminal, f"/connect {other.host} {other.port}")
    terminal.expect_screen(toolbar(other, "connected"))
    # Not anchored at the line start: see test_output_never_lands_on_the_prompt_line.
    terminal.expect_screen(r"(?m)the other peer$")
    enter(terminal, "ping")
    other_client = other.wait_for_client()
    assert other_client.wait_for(b"ping\n") == b"ping\n"
    answer(terminal, other_client, "ping", b"pong\n")
    terminal.expect_screen(rows("> ping", "pong", ">"))


# ---- 8. leaving, and Ctrl-C ----------------------------------------------------------------------


def test_quit_exits_0_and_closes_the_connection(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/quit")
    assert terminal.wait_exit() == 0
    assert client.wait_closed() == b""


def test_ctrl_d_on_an_empty_line_exits_0(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    keys(terminal, "\x04")
    assert terminal.wait_exit() == 0
    assert client.wait_closed() == b""


def test_ctrl_c_clears_the_line_and_sends_nothing(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)

    keys(terminal, "partial")
    terminal.expect_screen(rows("> partial"))
    keys(terminal, "\x03")
    terminal.expect_screen(rows(">"))
    keys(terminal, "ok")
    terminal.expect_screen(rows("> ok"))
    enter(terminal)

    assert client.wait_for(b"ok\n") == b"ok\n"
    answer(terminal, client, "ok", b"ok\n")
    terminal.expect_screen(rows("> ok", "ok", ">"))
    assert "partial" not in terminal.screen_text()
    assert terminal.child.isalive()


# ---- 9. command errors and /x --------------------------------------------------------------------


def test_command_errors_send_nothing_and_x_sends_bytes(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)

    enter(terminal, "/nosuch")
    terminal.expect_screen(
        rows("> /nosuch", "unknown command /nosuch (/help lists the commands)", ">")
    )
    enter(terminal, "/x 01 0")
    terminal.expect_screen(rows("> /x 01 0", "odd number of hex digits in '0' at column 7", ">"))

    enter(terminal, "/x 01 03 0a")
    terminal.expect_screen(rows("> /x 01 03 0a", hexdump_line(0, b"\x01\x03\n").rstrip()))
    enter(terminal, "end")
    # Everything the peer ever got: the bad lines sent nothing, /x added no end of line.
    assert client.wait_for(b"end\n") == b"\x01\x03\nend\n"
    terminal.expect_screen(toolbar(peer) + r".*│  rx 0 B  tx 7 B$")


def test_hex_echo_is_followed_by_the_prompt_without_a_blank_line(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/x 01")
    assert client.wait_for_size(1) == b"\x01"
    terminal.expect_screen(rows("> /x 01", hexdump_line(0, b"\x01").rstrip()))
    enter(terminal, "/x 02")
    assert client.wait_for_size(2) == b"\x01\x02"
    terminal.expect_screen(rows(hexdump_line(1, b"\x02").rstrip()))
    # The README shows consecutive echoes with nothing between them.
    screen = terminal.screen_text()
    assert re.search(rows("> /x 01", hexdump_line(0, b"\x01").rstrip(), "> /x 02"), screen), screen


def test_hex_input_mode(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)

    enter(terminal, "/input hex")
    terminal.expect_screen(toolbar(peer) + "view utf-8  input hex")
    terminal.expect_screen(rows("hex>"))
    enter(terminal, "de ad be ef")
    assert client.wait_for_size(4) == b"\xde\xad\xbe\xef"
    terminal.expect_screen(rows("hex> de ad be ef", hexdump_line(0, b"\xde\xad\xbe\xef").rstrip()))


# ---- 10. tab completion --------------------------------------------------------------------------


def test_tab_completes_commands_and_arguments(spawn, make_peer):
    peer = make_peer()
    terminal, _ = start(spawn, peer)

    keys(terminal, "/he")
    terminal.expect_screen(r"(?m)^\s+/help\s+list the commands, or explain one$")
    terminal.expect_screen(r"(?m)^\s+/hex\s+show received bytes as a hexdump")
    keys(terminal, "\t")
    terminal.expect_screen(rows("> /help"))
    keys(terminal, "\t")
    terminal.expect_screen(rows("> /hex"))
    keys(terminal, "\x03")
    terminal.expect_screen(rows(">"))

    keys(terminal, "/view ")
    terminal.expect_screen(
        r"(?m)^\s+hex\s*\n\s+text\s*\n\s+utf8\s*\n\s+gbk\s*\n\s+auto\s*\n\s+json\s*\n\s+raw$"
    )
    keys(terminal, "\t\t")
    terminal.expect_screen(rows("> /view text"))
    keys(terminal, "\t\t")
    terminal.expect_screen(rows("> /view gbk"))
    enter(terminal)
    terminal.expect_screen(toolbar(peer) + "view gbk  input text")


# ---- 11. history ---------------------------------------------------------------------------------


def test_history_recalls_and_persists(spawn, make_peer, private_state):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "first line")
    client.wait_for(b"first line\n")
    terminal.expect_screen(rows("> first line", ">"))
    keys(terminal, "\x1b[A")
    terminal.expect_screen(rows("> first line", "> first line"))
    keys(terminal, "\x03")
    terminal.expect_screen(rows("> first line", ">"))
    enter(terminal, "/quit")
    assert terminal.wait_exit() == 0

    history = private_state / "netrepl" / "history"
    assert "first line" in history.read_text()
    assert stat.S_IMODE(history.stat().st_mode) == 0o600

    terminal, client = start(spawn, peer)
    keys(terminal, "\x1b[A")
    terminal.expect_screen(rows("> /quit"))
    keys(terminal, "\x1b[A")
    terminal.expect_screen(rows("> first line"))
    enter(terminal)
    assert client.wait_for(b"first line\n") == b"first line\n"


# ---- 12. the demo --------------------------------------------------------------------------------


def test_demo(spawn):
    terminal = spawn("--demo")
    terminal.expect_screen(r"(?m)^demo peer on 127\.0\.0\.1:\d+: type help and press Enter")
    terminal.expect_screen(rows(*GREETING.decode().splitlines()))
    terminal.expect_screen(r"(?m)^ TCP 127\.0\.0\.1:\d+  connected  │  view utf-8")

    enter(terminal, "help")
    terminal.expect_screen(rows("> help", *HELP.decode().splitlines()))

    enter(terminal, "/gbk")
    terminal.expect_screen(r"(?m)^ TCP 127\.0\.0\.1:\d+  connected  │  view gbk")
    enter(terminal, "gbk")
    terminal.expect_screen(rows("> gbk", GBK_LINE.decode("gbk").rstrip()))

    enter(terminal, "/hex")
    terminal.expect_screen(r"(?m)^ TCP 127\.0\.0\.1:\d+  connected  │  view hex")
    enter(terminal, "binary")
    offset = len(GREETING + GBK_LINE + BINARY_INTRO + BINARY_FRAME + b"\r\n" + HELP + GBK_LINE)
    terminal.expect_screen(rows("> binary", hexdump_line(offset, BINARY_FRAME).rstrip()))
    assert f"{offset:08x}  01 03 04 00 2a 01 00 da  6b" in terminal.screen_text()

    enter(terminal, "/quit")
    assert terminal.wait_exit() == 0


# ---- 13. connection refused ----------------------------------------------------------------------


def test_connection_refused_exits_1_with_one_line(spawn):
    port = free_port()
    terminal = spawn("127.0.0.1", str(port))
    assert terminal.wait_exit() == 1
    assert terminal.plain == f"netrepl: cannot connect to 127.0.0.1:{port}: connection refused\n"


def test_raw_view_is_refused_in_a_terminal(spawn, make_peer):
    peer = make_peer()
    terminal = spawn(*peer.args, "--view", "raw")
    assert terminal.wait_exit() == 2
    assert terminal.plain == "netrepl: --view raw is for batch mode (stdin not a terminal)\n"
    assert peer.clients == [], "it must refuse before connecting"


# ---- 14. IPv6 ------------------------------------------------------------------------------------


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback(spawn, make_peer):
    peer = make_peer(host="::1", greeting=b"over ipv6\n")
    terminal, client = start(spawn, peer)
    terminal.expect_screen(rf"(?m)^connected to \[::1\]:{peer.port} from \[::1\]:\d+\nover ipv6$")
    enter(terminal, "six")
    assert client.wait_for(b"six\n") == b"six\n"
    answer(terminal, client, "six", b"six\n")
    terminal.expect_screen(rows("> six", "six", ">"))
