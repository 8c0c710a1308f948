"""websocket.encode_frame: each frame it writes is decoded by wsproto (the library netrepl
speaks WebSocket with, written by others) as the frame it was meant to be, at every payload
length whose header differs (0, 125, 126, 65535, 65536 bytes), masked or not."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode

from netrepl.websocket import OPCODES, encode_frame

MASK = b"\x37\xfa\x21\x3d"
SIZES = (0, 1, 125, 126, 127, 65535, 65536, 70000)


def decoded(wire: bytes, *, from_client: bool) -> list[tuple[Opcode, bytes | str, bool, bool]]:
    """(opcode, payload, frame_finished, message_finished) of each frame, as the other end's
    wsproto reads them (a server reads a client's frames, which must be masked)."""
    reader = FrameProtocol(client=not from_client, extensions=[])
    reader.receive_bytes(wire)
    out = []
    for frame in reader.received_frames():
        payload = frame.payload
        if isinstance(payload, bytearray):
            payload = bytes(payload)
        out.append((frame.opcode, payload, frame.frame_finished, frame.message_finished))
    return out


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mask", [None, MASK], ids=["server", "client"])
def test_a_binary_frame_of_every_header_size(size, mask):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    wire = encode_frame(OPCODES["binary"], payload, mask=mask)
    assert decoded(wire, from_client=mask is not None) == [(Opcode.BINARY, payload, True, True)]
    header = 2 + (0 if size < 126 else 2 if size < 65536 else 8) + (4 if mask else 0)
    assert len(wire) == header + size


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=70_000),
    mask=st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
)
def test_any_binary_payload_any_key(payload, mask):
    wire = encode_frame(OPCODES["binary"], payload, mask=mask)
    assert decoded(wire, from_client=mask is not None) == [(Opcode.BINARY, payload, True, True)]


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=2000), masked=st.booleans())
def test_a_text_frame(text, masked):
    wire = encode_frame(OPCODES["text"], text.encode(), mask=MASK if masked else None)
    assert decoded(wire, from_client=masked) == [(Opcode.TEXT, text, True, True)]


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(min_size=1, max_size=300),
    cuts=st.lists(st.integers(min_value=0, max_value=1200), min_size=1, max_size=4),
    masked=st.booleans(),
)
def test_a_message_in_pieces_is_a_first_frame_and_continuations(text, cuts, masked):
    """Cut anywhere (mid-character too): one text message once the frames are put together."""
    data = text.encode()
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    pieces = [data[start:end] for start, end in itertools.pairwise(points)] or [b""]
    mask = MASK if masked else None
    wire = b"".join(
        encode_frame(
            OPCODES["text"] if index == 0 else OPCODES["continuation"],
            piece,
            fin=index == len(pieces) - 1,
            mask=mask,
        )
        for index, piece in enumerate(pieces)
    )
    frames = decoded(wire, from_client=masked)
    assert "".join(str(payload) for _, payload, _, _ in frames) == text
    # wsproto names a continuation frame by its message's opcode, and refuses a continuation
    # with no message begun, or a new message before the last one ended.
    assert all(opcode is Opcode.TEXT for opcode, _, _, _ in frames)
    assert [finished for _, _, _, finished in frames] == [False] * (len(frames) - 1) + [True]


@pytest.mark.parametrize("masked", [False, True])
def test_control_frames(masked):
    mask = MASK if masked else None
    close = (1000).to_bytes(2, "big") + "再见 bye".encode()
    wire = (
        encode_frame(OPCODES["ping"], b"are you there", mask=mask)
        + encode_frame(OPCODES["pong"], b"yes", mask=mask)
        + encode_frame(OPCODES["close"], close, mask=mask)
    )
    assert decoded(wire, from_client=masked) == [
        (Opcode.PING, b"are you there", True, True),
        (Opcode.PONG, b"yes", True, True),
        (Opcode.CLOSE, (CloseReason.NORMAL_CLOSURE, "再见 bye"), True, True),
    ]


def test_a_server_frame_is_unmasked_and_a_client_frame_masked_with_its_key():
    assert encode_frame(1, b"hi") == b"\x81\x02hi"
    assert encode_frame(1, b"hi", mask=b"\x01\x02\x03\x04") == b"\x81\x82\x01\x02\x03\x04ik"
    assert encode_frame(0, b"", fin=False) == b"\x00\x00"


@pytest.mark.parametrize(("opcode", "mask"), [(16, None), (-1, None), (1, b"abc"), (1, b"abcde")])
def test_what_no_frame_can_carry_is_refused(opcode, mask):
    with pytest.raises(ValueError):
        encode_frame(opcode, b"", mask=mask)
