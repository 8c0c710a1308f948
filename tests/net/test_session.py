"""Session + Display + Renderer in-process against real loopback peers.

What the peer receives is checked byte for byte; what the user sees is read back from a batch
StreamSink writing into memory. Peer data is pushed only after the previous piece has been
posted by the connection, so "before" and "after" a command are well defined without sleeping.
"""

from __future__ import annotations

import re

import pytest

from netrepl.demo import HOSTILE
from netrepl.errors import SendError, UsageError
from netrepl.events import Sent, ViewChanged
from netrepl.view import View
from tests.net.conftest import WAIT, Harness, hexdump_line
from tests.peers import Peer, PeerClient

# Raw control characters (but tab and newline), DEL and C1: none may reach the output.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def connect(harness: Harness, peer: Peer, nth_client: int = 1) -> PeerClient:
    harness.session.connect(peer.host, peer.port)
    return peer.wait_for_client(nth_client)


def push(harness: Harness, client: PeerClient, data: bytes) -> None:
    """Send `data` from the peer and wait until the connection has posted all of it."""
    already = len(harness.tap.received_bytes(harness.conn))
    client.send(data)
    harness.tap.wait_received(already + len(data), harness.conn)


@pytest.fixture
def harness(make_session) -> Harness:
    return make_session()


# ---- what a line sends ------------------------------------------------------------------------


def test_text_line_sends_text_and_lf(harness, echo_peer):
    client = connect(harness, echo_peer)
    harness.session.submit("hello")
    assert client.wait_for(b"hello\n") == b"hello\n"
    sent = harness.tap.of_type(Sent)
    assert sent == [Sent(harness.conn, b"hello\n", as_hex=False)]
    transport = harness.session.transport
    assert transport.wait_for(lambda: transport.sent == 6, WAIT), "sent counts what was written"


@pytest.mark.parametrize(
    ("eol", "expected"),
    [("crlf", b"PING\r\n"), ("cr", b"PING\r"), ("none", b"PING"), ("lf", b"PING\n")],
)
def test_eol_setting(harness, make_peer, eol, expected):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit(f"/eol {eol}")
    harness.session.submit("PING")
    harness.session.submit("//MARK")
    eol_bytes = expected.removeprefix(b"PING")
    whole = expected + b"/MARK" + eol_bytes
    assert client.wait_for_size(len(whole)) == whole


def test_escapes_become_bytes_and_can_be_turned_off(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit(r"a\tb\x00\xff\r\\")
    harness.session.submit("/escapes off")
    harness.session.submit(r"c:\temp\x41")
    expected = b"a\tb\x00\xff\r\\\n" + b"c:\\temp\\x41\n"
    assert client.wait_for_size(len(expected)) == expected


def test_double_slash_sends_a_line_starting_with_slash(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("//x")
    harness.session.submit("//")
    assert client.wait_for_size(5) == b"/x\n/\n"


def test_slash_x_sends_hex_without_eol_and_echoes_as_hex(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("/x 01 03 0a")
    harness.session.submit("/x 0x01,0x03")
    harness.session.submit(r"/x \xff\x00")
    harness.session.submit("/x DE:AD-be;ef")
    expected = b"\x01\x03\x0a" + b"\x01\x03" + b"\xff\x00" + b"\xde\xad\xbe\xef"
    assert client.wait_for_size(len(expected)) == expected
    sent = harness.tap.of_type(Sent)
    assert [event.data for event in sent] == [
        b"\x01\x03\x0a",
        b"\x01\x03",
        b"\xff\x00",
        b"\xde\xad\xbe\xef",
    ]
    assert all(event.as_hex for event in sent)


def test_hex_input_mode(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("/input hex")
    harness.session.submit("48 49 0d 0a")
    harness.session.submit("/input text")
    harness.session.submit("48")
    assert client.wait_for_size(7) == b"HI\r\n48\n"
    assert [event.as_hex for event in harness.tap.of_type(Sent)] == [True, False]


def test_text_is_sent_in_the_view_encoding(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("中文")
    harness.session.submit("/gbk")
    harness.session.submit("中文")
    harness.session.submit("/auto")
    harness.session.submit("中")
    expected = "中文\n".encode() + "中文\n".encode("gbk") + "中\n".encode()
    assert client.wait_for_size(len(expected)) == expected


@pytest.mark.parametrize(
    "line",
    [
        "/x 0g",
        "/x 012",
        "/x",
        "/x 0x",
        "/nosuch",
        "/hexx",
        r"bad \q escape",
        r"bad \x4 escape",
        "/eol weird",
        "/hex now",
        "/input binary",
        "/encoding nosuch-codec",
        "/encoding hex",
        "/view raw",
        "/view nosuch",
        "/connect onlyhost",
        "/connect 127.0.0.1 0",
        "/connect 127.0.0.1 nosuchservice",
        "/close now",
    ],
)
def test_bad_line_raises_usage_error_and_sends_nothing(harness, make_peer, line):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("before")
    client.wait_for(b"before\n")

    with pytest.raises(UsageError):
        harness.session.submit(line)

    assert harness.session.connected, "a bad line must not touch the connection"
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == b"before\nMARK\n"
    assert peer.clients == [client], "a bad line must not open another connection"


def test_bad_hex_in_hex_input_sends_nothing(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("/input hex")
    with pytest.raises(UsageError, match="column"):
        harness.session.submit("01 02 zz")
    harness.session.submit("4d")
    assert client.wait_for(b"M") == b"M"


def test_unencodable_text_sends_nothing(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("/gbk")
    with pytest.raises(UsageError, match="cannot encode"):
        harness.session.submit("ok 😀")
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == b"MARK\n"


def test_empty_line_with_no_eol_is_a_usage_error(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("")  # an empty line sends just the end of line
    harness.session.submit("/eol none")
    with pytest.raises(UsageError, match="nothing to send"):
        harness.session.submit("")
    harness.session.submit("M")
    assert client.wait_for(b"M") == b"\nM"


# ---- connection state ------------------------------------------------------------------------


def test_not_connected(harness):
    assert harness.session.state == "not connected"
    with pytest.raises(SendError, match="not connected"):
        harness.session.submit("hello")
    with pytest.raises(SendError, match="not connected"):
        harness.session.submit("/x 01")
    with pytest.raises(UsageError, match="nothing to reconnect"):
        harness.session.submit("/reconnect")
    with pytest.raises(UsageError, match="not connected"):
        harness.session.submit("/close")
    assert harness.tap.of_type(Sent) == []


def test_close_then_reconnect(harness, make_peer):
    peer = make_peer()
    first = connect(harness, peer)
    harness.session.submit("one")
    first.wait_for(b"one\n")

    harness.session.submit("/close")
    assert first.wait_closed() == b"one\n"
    closed = harness.tap.wait_closed(1)
    assert closed.reason == "connection closed" and not closed.failed
    assert harness.session.state == "closed"
    with pytest.raises(SendError, match="not connected"):
        harness.session.submit("two")

    harness.session.submit("/reconnect")
    second = peer.wait_for_client(2)
    assert harness.session.state == "connected"
    assert harness.conn == 2
    harness.session.submit("three")
    assert second.wait_for(b"three\n") == b"three\n"
    assert bytes(first.received) == b"one\n"

    _, stderr = harness.finish()
    assert stderr.count(f"netrepl: connected to 127.0.0.1:{peer.port} from 127.0.0.1:") == 2
    assert "netrepl: connection closed (0 bytes received, 4 sent)\n" in stderr
    assert "netrepl: connection closed (0 bytes received, 6 sent)\n" in stderr


def test_connect_to_a_second_peer(harness, make_peer):
    one = make_peer(greeting=b"one here\n")
    two = make_peer(greeting=b"two here\n")
    first = connect(harness, one)
    harness.output.wait_stdout("one here\n")

    harness.session.submit(f"/connect 127.0.0.1 {two.port}")
    second = two.wait_for_client()
    assert first.wait_closed() == b"", "the first connection is closed on /connect"
    harness.session.submit("hello two")
    assert second.wait_for(b"hello two\n") == b"hello two\n"
    assert harness.session.address_label == f"TCP 127.0.0.1:{two.port}"

    stdout, stderr = harness.finish()
    assert stdout == "one here\ntwo here\n"
    assert f"connected to 127.0.0.1:{two.port}" in stderr


def test_peer_closing_leaves_session_closed(harness, make_peer):
    peer = make_peer(greeting=b"bye\n", close_after_greeting=True)
    connect(harness, peer)
    closed = harness.tap.wait_closed()
    assert not closed.failed
    assert harness.session.state == "closed"
    with pytest.raises(SendError, match="not connected"):
        harness.session.submit("anyone?")
    stdout, stderr = harness.finish()
    assert stdout == "bye\n"
    assert "netrepl: connection closed by peer (4 bytes received, 0 sent)\n" in stderr


def test_status_lines_on_stderr_and_quiet(make_session, make_peer):
    peer = make_peer(greeting=b"hi\n")
    loud, quiet = make_session(), make_session(quiet=True)
    for harness in (loud, quiet):
        connect(harness, peer, nth_client=1 if harness is loud else 2)
        harness.output.wait_stdout("hi\n")
    loud_out, loud_err = loud.finish()
    quiet_out, quiet_err = quiet.finish()
    assert loud_out == quiet_out == "hi\n"
    lines = loud_err.splitlines()
    assert len(lines) == 2 and all(line.startswith("netrepl: ") for line in lines), lines
    assert quiet_err == ""


def test_setting_commands_without_argument_tell_the_setting(harness):
    for line in ("/eol", "/view", "/encoding", "/input", "/escapes"):
        harness.session.submit(line)
    harness.session.submit("/gbk")
    harness.session.submit("/view")
    _, stderr = harness.finish()
    assert stderr.splitlines() == [
        "eol lf",
        "view utf-8",
        "encoding utf-8",
        "input text",
        "escapes on",
        "view gbk",
    ]


# ---- views -------------------------------------------------------------------------------------


def test_view_switch_applies_only_to_bytes_arriving_after_it(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    gbk = "中文\n".encode("gbk")

    push(harness, client, gbk)  # shown as UTF-8: invalid bytes become escapes
    harness.session.submit("/gbk")
    push(harness, client, gbk)
    harness.session.submit("/hex")
    push(harness, client, b"\x00\x01AB")
    harness.session.submit("/utf8")
    push(harness, client, "café\n".encode())

    stdout, _ = harness.finish()
    assert stdout == ("\\xd6\\xd0\\xce\\xc4\n中文\n" + hexdump_line(10, b"\x00\x01AB") + "café\n")
    assert [event.view for event in harness.tap.of_type(ViewChanged)] == [
        View("text", "gbk"),
        View("hex", "gbk"),
        View("text", "utf-8"),
    ]


def test_encoding_command_and_auto(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("/encoding big5")
    push(harness, client, "中文\n".encode("big5"))
    with pytest.raises(UsageError, match="nosuch"):
        harness.session.submit("/encoding nosuch")
    push(harness, client, "繁體\n".encode("big5"))  # still big5 after the bad command
    harness.session.submit("/auto")
    push(harness, client, "中".encode() + "文".encode("gbk") + b"\xff\n")

    stdout, _ = harness.finish()
    assert stdout == "中文\n繁體\n中文\\xff\n"


def test_hex_view_offsets_run_over_the_stream(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("/hex")
    push(harness, client, b"0123456789")
    # Shown once the peer has been quiet a moment; the next read then starts a line of its own.
    harness.output.wait_stdout(hexdump_line(0, b"0123456789"))
    push(harness, client, bytes(range(20)))
    stdout, _ = harness.finish()
    assert stdout == (
        hexdump_line(0, b"0123456789")
        + hexdump_line(10, bytes(range(16)))
        + hexdump_line(26, bytes(range(16, 20)))
    )


def test_hex_offsets_restart_on_a_new_connection(harness, make_peer):
    one, two = make_peer(), make_peer()
    first = connect(harness, one)
    harness.session.submit("/hex")
    push(harness, first, b"abc")
    second = connect(harness, two)
    push(harness, second, b"xyz")
    stdout, _ = harness.finish()
    assert stdout == hexdump_line(0, b"abc") + hexdump_line(0, b"xyz")


def test_utf8_character_split_across_reads_shows_whole(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    whole = "split: 中文\n".encode()
    cut = whole.index("中".encode()) + 2  # two of the three bytes of 中

    push(harness, client, whole[:cut])
    harness.output.wait_stdout("split: ")
    push(harness, client, whole[cut:])

    stdout, _ = harness.finish()
    assert stdout == "split: 中文\n"


def test_character_split_across_a_view_switch_shows_whole(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    push(harness, client, b"x\xe4")
    harness.session.submit("/auto")
    push(harness, client, b"\xb8\xad\n")
    stdout, _ = harness.finish()
    assert stdout == "x中\n"


def test_held_back_bytes_are_shown_when_switching_to_hex(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    push(harness, client, b"ab\xe4")
    harness.session.submit("/hex")
    push(harness, client, b"\xb8")
    stdout, _ = harness.finish()
    # The hexdump starts on a line of its own and keeps the stream offset of the held byte.
    assert stdout == "ab\n" + hexdump_line(2, b"\xe4") + hexdump_line(3, b"\xb8")


def test_cr_lf_split_across_reads_is_one_newline(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    push(harness, client, b"one\r")
    push(harness, client, b"\ntwo\rthree\r\n")
    stdout, _ = harness.finish()
    assert stdout == "one\ntwo\nthree\n"


def test_text_without_newline_is_written_at_once(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    client.send(b"login: ")
    assert harness.output.wait_stdout("login: ") == "login: "
    assert harness.session.connected
    stdout, _ = harness.finish()
    assert stdout == "login: \n", "the open line is ended when the connection closes"


@pytest.mark.parametrize("view", ["/utf8", "/gbk", "/auto", "/encoding latin-1", "/hex"])
def test_hostile_bytes_never_reach_the_output_raw(harness, make_peer, view):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit(view)
    hostile = HOSTILE + "\u202eevil\u200f\n".encode() + b"\x1b]52;c;Zm9v\x07\x90\x9d\x00\x7f\n"
    push(harness, client, hostile)
    stdout, stderr = harness.finish()
    assert RAW_CONTROL.search(stdout) is None, repr(stdout)
    assert "\u202e" not in stdout and "\u200f" not in stdout
    assert RAW_CONTROL.search(stderr) is None, repr(stderr)
    if view != "/hex":
        assert "\\x1b[2J" in stdout and "red?" in stdout and "done" in stdout


def test_raw_view_in_batch_writes_bytes_unchanged(make_session, make_peer):
    harness = make_session(batch=True)
    peer = make_peer()
    client = connect(harness, peer)
    push(harness, client, b"text\n")
    harness.session.submit("/view raw")
    every_byte = bytes(range(256)) + HOSTILE
    push(harness, client, every_byte)
    harness.session.submit("/utf8")
    push(harness, client, b"\x1bafter\n")
    harness.stop()
    assert harness.output.stdout_bytes() == b"text\n" + every_byte + b"\\x1bafter\n"


def test_raw_view_is_refused_interactively(harness):
    with pytest.raises(UsageError, match="batch mode only"):
        harness.session.submit("/view raw")
    assert harness.session.settings.view == View()
