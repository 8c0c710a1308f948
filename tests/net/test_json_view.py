"""The json view in batch mode and in replay: the real program against real loopback peers (TCP,
UDP), stdout a pipe, so documents come out indented with no colour codes, and text as text."""

from __future__ import annotations

import socket
import threading

from netrepl.events import Closed, Connected, Received
from tests.net.conftest import run_netrepl
from tests.net.test_offline import write_transcript

# Reads as a device might send them: a document cut inside a multi-byte character, CR LF
# ends, a text line, a hostile string (C1 CSI and a bidi override, raw; ESC as a JSON escape),
# and a last document with no newline before the peer closes.
GREETING = [
    b'{"op":"pong","data":{"n":1,"s":"\xe4',
    b'\xb8\xad"}}\r\n',
    b"plain line \x1b[2J\n",
    b'["\xc2\x9b\xe2\x80\xae\\u001b", 1.10, null, true]\n',
    b'{"last":',
    b"[]}",
]
SHOWN = (
    "{\n"
    '  "op": "pong",\n'
    '  "data": {\n'
    '    "n": 1,\n'
    '    "s": "中"\n'
    "  }\n"
    "}\n"
    "plain line \\x1b[2J\n"
    "[\n"
    '  "\\x9b\\u202e\\u001b",\n'
    "  1.10,\n"
    "  null,\n"
    "  true\n"
    "]\n"
    "{\n"
    '  "last": []\n'
    "}\n"
)


def test_batch_json_view_over_tcp_indents_documents_without_colour(make_peer):
    peer = make_peer(greeting=GREETING, close_after_greeting=True)
    result = run_netrepl(*peer.args, "--view", "json", "-q", stdin=b"")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == SHOWN
    assert b"\x1b" not in result.stdout


def test_batch_json_view_decodes_in_the_views_encoding(make_peer):
    greeting = '{"状态":"正常"}\r\n'.encode("gbk")
    peer = make_peer(greeting=greeting, close_after_greeting=True)
    result = run_netrepl(*peer.args, "--view", "json", "--encoding", "gbk", "-q", stdin=b"")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == '{\n  "状态": "正常"\n}\n'


class JsonUdpPeer:
    """Answers each datagram with a JSON reply naming it, then a datagram that is not JSON."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)  # bounded: the thread ends if netrepl never sends
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._answer, daemon=True)
        self.thread.start()

    def _answer(self) -> None:
        try:
            data, sender = self.sock.recvfrom(65536)
        except OSError:
            return
        self.sock.sendto(b'{"reply":{"to":' + data.rstrip(b"\n") + b"}}", sender)
        self.sock.sendto(b"bye", sender)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=10)


def test_batch_json_view_over_udp_indents_each_datagram():
    peer = JsonUdpPeer()
    try:
        result = run_netrepl(
            "-u", "127.0.0.1", str(peer.port), "--view", "json", "-q", "--linger", "1",
            stdin=b'{"op":"ping"}\n',
        )  # fmt: skip
    finally:
        peer.close()
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.decode().split("── ")
    assert blocks[0] == ""
    assert blocks[1].splitlines()[1:] == [
        "{",
        '  "reply": {',
        '    "to": {',
        '      "op": "ping"',
        "    }",
        "  }",
        "}",
    ]
    assert blocks[2].splitlines()[1:] == ["bye"]


def test_replay_in_json_view(tmp_path):
    path = tmp_path / "t.jsonl"
    write_transcript(
        path,
        [
            (1.0, Connected(1, "127.0.0.1:9000", "127.0.0.1:40000")),
            (1.1, Received(1, b'{"a":')),
            (1.15, Received(1, b'[1,2]}\nok\n{"b":')),
            (1.2, Received(1, b"null}")),
            (1.3, Closed(1, "connection closed by peer", 28, 0)),
        ],
    )
    result = run_netrepl("replay", str(path), "--view", "json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == ('{\n  "a": [\n    1,\n    2\n  ]\n}\nok\n{\n  "b": null\n}\n')
