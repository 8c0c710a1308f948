"""netrepl/websocket.py, the sans-I/O layer: what bytes from a peer make happen, however they
are split; messages past --max-message in pieces; close codes; what a send becomes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netrepl.websocket import (
    OPCODES,
    ControlReceived,
    MessagePiece,
    ProtocolViolated,
    UpgradeAccepted,
    UpgradeRefused,
    WebSocketProtocol,
    check_close_code,
    close_code_name,
    describe_close,
    encode_frame,
    message_type,
)

RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: {accept}\r\n\r\n"
)


def upgraded_client(max_message: int = 1 << 20) -> tuple[WebSocketProtocol, bytes]:
    """A client protocol that sent its request; and the server's 101 for it."""
    import base64
    import hashlib

    protocol = WebSocketProtocol(client=True, max_message=max_message)
    request = protocol.request("example.org", "/chat")
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    return protocol, RESPONSE.replace(b"{accept}", accept)


def feed_in_pieces(protocol: WebSocketProtocol, data: bytes, cuts: list[int]) -> list[object]:
    happened: list[object] = []
    start = 0
    for cut in [*sorted({min(c, len(data)) for c in cuts}), len(data)]:
        happened += protocol.feed(data[start:cut])
        start = cut
    return happened


FRAMES = (
    encode_frame(OPCODES["text"], "héllo".encode(), fin=True, mask=None)
    + encode_frame(OPCODES["binary"], b"\x00\xff", fin=False, mask=None)
    + encode_frame(OPCODES["ping"], b"p", fin=True, mask=None)  # between fragments: allowed
    + encode_frame(OPCODES["continuation"], b"\x01", fin=True, mask=None)
    + encode_frame(OPCODES["close"], (1001).to_bytes(2, "big") + b"bye", fin=True, mask=None)
)


@settings(deadline=None)
@given(cuts=st.lists(st.integers(0, 400), max_size=12))
def test_any_split_of_a_peers_bytes_makes_the_same_things_happen(cuts):
    protocol, response = upgraded_client()
    happened = feed_in_pieces(protocol, response + FRAMES, cuts)
    assert isinstance(happened[0], UpgradeAccepted)
    assert happened[1:] == [
        MessagePiece("héllo".encode(), False),
        ControlReceived("ping", b"p"),
        MessagePiece(b"\x00\xff\x01", True),
        ControlReceived("close", b"", 1001, "bye"),
    ]
    # The pong and the close's answer wait to be written, in that order.
    out = protocol.outgoing()
    assert out[:1] == b"\x8a" and b"\x88" in out[1:]
    assert protocol.close_sent and protocol.close_received


def test_a_message_past_the_bound_comes_in_pieces_and_text_is_cut_between_characters():
    protocol, response = upgraded_client(max_message=4)
    protocol.feed(response)
    text = "añbcdefg".encode()
    happened = protocol.feed(
        encode_frame(OPCODES["text"], "aññb".encode()[:4], fin=False, mask=None)
        + encode_frame(OPCODES["continuation"], "aññb".encode()[4:], fin=False, mask=None)
        + encode_frame(OPCODES["continuation"], text, fin=True, mask=None)
    )
    assert happened[0] == MessagePiece(b"a\xc3\xb1", False, 0, True)  # 3 bytes, not 4
    assert all(piece.more for piece in happened[:-1])
    assert not happened[-1].more
    whole = b"".join(piece.data for piece in happened)
    assert whole == "aññb".encode() + text
    offsets = [piece.offset for piece in happened]
    assert offsets == sorted(offsets) and offsets[0] == 0


def test_a_message_at_the_bound_is_whole():
    protocol, response = upgraded_client(max_message=4)
    protocol.feed(response)
    assert protocol.feed(encode_frame(OPCODES["binary"], b"1234", fin=True, mask=None)) == [
        MessagePiece(b"1234", True)
    ]


def test_a_refused_upgrade_keeps_the_status_line_headers_as_sent_and_the_body():
    protocol = WebSocketProtocol(client=True, max_message=100)
    protocol.request("h", "/")
    happened = protocol.feed(
        b"HTTP/1.1 403 Forbidden\r\nX-Reason: No-Token\r\nContent-Length: 5\r\n\r\nno!\r\n"
    )
    assert happened == [
        UpgradeRefused(
            "HTTP/1.1 403 Forbidden",
            (("X-Reason", "No-Token"), ("Content-Length", "5")),
            b"no!\r\n",
        )
    ]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (encode_frame(OPCODES["text"], b"\xff\xfe", fin=True, mask=None), 1007),
        (b"\xf1\x00", 1002),  # reserved bits
    ],
)
def test_a_frame_rfc_6455_forbids_is_a_violation_answered_with_its_code(frame, code):
    protocol, response = upgraded_client()
    protocol.feed(response)
    happened = protocol.feed(frame)
    assert [type(h) for h in happened] == [ProtocolViolated]
    assert happened[0].code == code
    assert protocol.outgoing()[:1] == b"\x88"  # our close frame (masked: we are the client)


def test_close_codes_are_named_and_checked():
    assert close_code_name(1000) == "normal closure"
    assert close_code_name(1008) == "policy violation"
    assert close_code_name(4001) == "application code"
    assert close_code_name(3000) == "registered code"
    assert close_code_name(2000) == "reserved code"
    assert describe_close(1001, "bye") == "1001 going away: 'bye'"
    assert describe_close(None, "") == "no status code"
    for good in (1000, 1003, 1007, 1014, 3000, 4999):
        check_close_code(good)
    for bad in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000):
        with pytest.raises(ValueError):
            check_close_code(bad)


def test_what_a_send_becomes():
    assert message_type(b"hello", as_hex=False) == "text"
    assert message_type("你好".encode(), as_hex=False) == "text"
    assert message_type(b"\xff", as_hex=False) == "binary"
    assert message_type(b"hello", as_hex=True) == "binary"
