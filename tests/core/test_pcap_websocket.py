"""pcap: WebSocket records (`upgraded`, messages, `control`) as the frames they were, for
records a real session rarely logs: a close without a code, a message in three pieces, a log
that starts after the upgrade. tests/net/test_pcap_websocket.py exports real sessions."""

from __future__ import annotations

from wsproto.frame_protocol import FrameProtocol, Opcode

from netrepl.events import Connected, Received, Sent, Signalled, Upgraded
from netrepl.pcap import export_pcap
from tests.core.test_pcap import check_conversation, entries, read_pcap

PEER, LOCAL = "127.0.0.1:8765", "127.0.0.1:50000"
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
RESPONSE = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"


def streams(*timed_events, client: tuple[str, int] = ("127.0.0.1", 50000)) -> dict[str, bytes]:
    packets = read_pcap(export_pcap(entries(*timed_events)))
    return check_conversation(packets, client, handshake=client[0] == "127.0.0.1")


def decoded(data: bytes, *, from_client: bool) -> list[tuple[Opcode, object, bool, bool]]:
    reader = FrameProtocol(client=not from_client, extensions=[])
    reader.receive_bytes(data)
    return [
        (
            f.opcode,
            bytes(f.payload) if isinstance(f.payload, bytearray) else f.payload,
            f.frame_finished,
            f.message_finished,
        )
        for f in reader.received_frames()
    ]


def test_a_close_without_a_code_is_an_empty_close_frame():
    ways = streams(
        (1.0, Connected(1, PEER, LOCAL, "ws")),
        (1.1, Upgraded(1, "/", None, REQUEST, RESPONSE)),
        (1.2, Signalled(1, "close", False, code=None)),
        (1.3, Signalled(1, "close", True, code=None)),
    )
    assert ways["s2c"] == RESPONSE + b"\x88\x00"
    assert ways["c2s"][: len(REQUEST)] == REQUEST
    (frame,) = decoded(ways["c2s"][len(REQUEST) :], from_client=True)
    assert frame[0] is Opcode.CLOSE


def test_a_message_in_three_pieces_is_three_frames_of_one_message():
    ways = streams(
        (1.0, Connected(1, PEER, LOCAL, "ws")),
        (1.1, Upgraded(1, "/", None, REQUEST, RESPONSE)),
        (1.2, Received(1, b"abc", message="binary", more=True)),
        (1.3, Received(1, b"def", message="binary", offset=3, more=True)),
        (1.4, Received(1, b"g", message="binary", offset=6)),
    )
    frames = ways["s2c"][len(RESPONSE) :]
    assert frames == b"\x02\x03abc" + b"\x00\x03def" + b"\x80\x01g"
    assert [piece[3] for piece in decoded(frames, from_client=False)] == [False, False, True]


def test_a_log_that_starts_after_the_upgrade_still_gives_frames():
    ways = streams(
        (1.0, Sent(1, "中".encode(), False, message="text")),
        (1.1, Signalled(1, "ping", False, b"p")),
        client=("10.0.0.1", 49153),  # made up: see PcapExport
    )
    assert decoded(ways["c2s"], from_client=True) == [(Opcode.TEXT, "中", True, True)]
    assert ways["s2c"] == b"\x89\x01p"


def test_the_same_log_gives_the_same_file():
    log = entries(
        (1.0, Connected(1, PEER, LOCAL, "ws")),
        (1.1, Upgraded(1, "/", None, REQUEST, RESPONSE)),
        (1.2, Sent(1, b"x" * 300, False, message="binary")),
    )
    assert export_pcap(log) == export_pcap(log)
