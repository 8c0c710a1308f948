"""`netrepl export --pcap` of a real WebSocket session: netrepl logs a session with the demo
peer's WebSocket endpoint (as a client) or with a `websockets` client (as a server), the log
is exported, and the capture is read back as the two ends would read it: the TCP streams
reassembled, the upgrade heads first, then frames that wsproto decodes, masked from the
client only, one for each message and control record of the log, in its order."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.sync.client import connect
from wsproto.frame_protocol import FrameProtocol, Opcode

from netrepl.demo import WS_GREETING, WS_HELP, WS_SPLIT, DemoPeer
from netrepl.events import Connected, Received, Sent, Signalled, Upgraded
from netrepl.transcript import Entry
from tests.core.test_pcap import check_conversation, read_pcap
from tests.net.conftest import WAIT, run_netrepl
from tests.transcripts import entries

pytestmark = pytest.mark.timeout(90)

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Frame:
    opcode: Opcode
    payload: object
    """bytes; str for text; (code, reason) for a close."""
    message_finished: bool


def read_log(log: Path) -> list[Entry]:
    return entries(log)


@dataclass
class Exported:
    log: Path
    pcap: Path
    streams: dict[str, bytes]
    """The TCP payload each way: 'c2s' (from the WebSocket client) and 's2c'."""


def export(log: Path, client: tuple[str, int] | None = None) -> Exported:
    pcap = log.with_suffix(".pcap")
    result = run_netrepl("export", str(log), "--pcap", str(pcap))
    assert result.returncode == 0, result.stderr
    packets = read_pcap(pcap.read_bytes())
    if client is None:  # netrepl was the client: the SYN's sender
        client = (packets[0].src, packets[0].sport)
    return Exported(log, pcap, check_conversation(packets, client))


def split_head(stream: bytes) -> tuple[bytes, bytes]:
    end = stream.index(b"\r\n\r\n") + 4
    return stream[:end], stream[end:]


def frames(data: bytes, *, from_client: bool) -> list[Frame]:
    """The frames as the receiving end's wsproto decodes them: a server refuses unmasked
    frames, a client masked ones."""
    reader = FrameProtocol(client=not from_client, extensions=[])
    reader.receive_bytes(data)
    out = []
    for frame in reader.received_frames():
        payload = frame.payload
        if isinstance(payload, bytearray):
            payload = bytes(payload)
        if frame.opcode is Opcode.CLOSE:
            code, reason = payload
            payload = (int(code), reason)
        out.append(Frame(frame.opcode, payload, frame.message_finished))
    return out


def logged_frames(log: Path, *, from_netrepl: bool) -> list[Frame]:
    """What the log says went one way, as frames: each message record one (a piece of a large
    one a frame of its own), each control record one."""
    out = []
    for entry in read_log(log):
        event = entry.event
        if isinstance(event, Sent) and from_netrepl and event.message:
            out.append(_data_frame(event.message, event.data, True))
        elif isinstance(event, Received) and not from_netrepl and event.message:
            out.append(_data_frame(event.message, event.data, not event.more))
        elif isinstance(event, Signalled) and event.outgoing == from_netrepl:
            if event.opcode == "close":
                payload: object = (event.code, event.reason)
            else:
                payload = event.payload
            out.append(Frame(Opcode[event.opcode.upper()], payload, True))
    return out


def _data_frame(message: str, data: bytes, finished: bool) -> Frame:
    if message == "text":
        return Frame(Opcode.TEXT, data.decode(), finished)
    return Frame(Opcode.BINARY, data, finished)


def check_handshake(streams: dict[str, bytes], upgraded: Upgraded) -> tuple[bytes, bytes]:
    request, c2s = split_head(streams["c2s"])
    response, s2c = split_head(streams["s2c"])
    assert (request, response) == (upgraded.request, upgraded.response)
    assert request.startswith(f"GET {upgraded.target} HTTP/1.1\r\n".encode())
    assert response.startswith(b"HTTP/1.1 101 ")
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
    headers = [line.split(b":", 1) for line in response.split(b"\r\n")[1:] if b":" in line]
    assert [b"sec-websocket-accept", accept] in [[n.lower(), v.strip()] for n, v in headers]
    return c2s, s2c


def upgraded_record(log: Path) -> Upgraded:
    return next(e.event for e in read_log(log) if isinstance(e.event, Upgraded))


def text_of(found: list[Frame]) -> str:
    return "".join(f.payload for f in found if isinstance(f.payload, str))


# ---- netrepl the client, the demo peer the server


@pytest.fixture
def client_session(tmp_path) -> Exported:
    """`netrepl ws://demo/ --log`: messages both ways, a message in pieces (--max-message 10
    and the demo's `split`), pings both ways, and the demo's close."""
    log = tmp_path / "client.jsonl"
    typed = b"help\n/x 00 ff 80\nsplit\n/ping hi\nping\nbye\n"
    with DemoPeer(upgrade_wait=None) as demo:
        result = run_netrepl(
            f"ws://127.0.0.1:{demo.port}/",
            "--log",
            str(log),
            "--max-message",
            "10",
            "--linger",
            "30",
            stdin=typed,
        )
    assert result.returncode == 0, result.stderr
    return export(log)


def test_a_client_session_exports_as_the_upgrade_then_frames_as_on_the_wire(client_session):
    c2s, s2c = check_handshake(client_session.streams, upgraded_record(client_session.log))
    ours = frames(c2s, from_client=True)
    theirs = frames(s2c, from_client=False)
    assert ours == logged_frames(client_session.log, from_netrepl=True)
    assert theirs == logged_frames(client_session.log, from_netrepl=False)

    assert [f.payload for f in ours if f.opcode is not Opcode.PONG][:5] == [
        "help",
        b"\x00\xff\x80",
        "split",
        b"hi",
        "ping",
    ]
    assert Frame(Opcode.PONG, b"demo", True) in ours  # the answer to the demo's ping
    assert ours[-1] == Frame(Opcode.CLOSE, (1000, ""), True)  # echoing the demo's code
    assert theirs[-1] == Frame(Opcode.CLOSE, (1000, "bye"), True)
    assert Frame(Opcode.PONG, b"hi", True) in theirs
    assert Frame(Opcode.PING, b"demo", True) in theirs
    # Longer than --max-message 10: logged, and so exported, as frames of 10 bytes or less.
    assert theirs[0] == Frame(Opcode.TEXT, WS_GREETING.decode()[:3], False)
    assert text_of(theirs).startswith(WS_GREETING.decode())
    assert WS_HELP.decode() in text_of(theirs)
    assert WS_SPLIT.decode() in text_of(theirs)


def test_a_message_logged_in_pieces_is_one_message_of_several_frames(client_session):
    """The demo's `split` came in three frames, past --max-message 10: logged as its first
    10 bytes (`more`), then the rest in pieces (`offset`), exported as a text frame with FIN
    clear and continuation frames, the last with FIN set, which a client puts together."""
    pieces = [e.event for e in read_log(client_session.log) if getattr(e.event, "offset", 0)]
    assert any(not piece.more for piece in pieces)  # a message's last piece
    _, s2c = check_handshake(client_session.streams, upgraded_record(client_session.log))
    on_wire = wire_frames(s2c)
    first = on_wire.index(("0", "1", "0"))  # FIN clear, text, unmasked
    following = on_wire[first + 1 :]
    last = following.index(("1", "0", "0"))  # FIN, continuation
    assert set(following[:last]) <= {("0", "0", "0")}  # continuations between
    reader = FrameProtocol(client=True, extensions=[])
    reader.receive_bytes(s2c)
    texts, text = [], ""
    for frame in reader.received_frames():
        if frame.opcode is Opcode.TEXT:
            text += frame.payload
            if frame.message_finished:
                texts.append(text)
                text = ""
    assert WS_SPLIT.decode() in texts


# ---- netrepl the server, a `websockets` client


def test_a_server_session_masks_the_clients_frames_not_ours(tmp_path, start_netrepl):
    log = tmp_path / "server.jsonl"
    netrepl = start_netrepl("-l", "127.0.0.1", "0", "--ws", "--log", str(log), "--linger", "30")
    port = netrepl.listening_port("WebSocket")
    with connect(f"ws://127.0.0.1:{port}/chat", open_timeout=WAIT) as client:
        client.send("hello from the client")
        client.send(b"\x01\x02")
        netrepl.wait_stderr(b"upgraded to WebSocket: /chat")
        netrepl.write(b"hello from netrepl\n")
        assert client.recv(timeout=WAIT) == "hello from netrepl"
        client.close(4000, "done")
    netrepl.wait_stderr(b"4000 application code")
    assert netrepl.finish().returncode == 0

    connected = next(e.event for e in read_log(log) if isinstance(e.event, Connected))
    host, _, client_port = connected.peer.rpartition(":")
    exported = export(log, client=(host, int(client_port)))
    c2s, s2c = check_handshake(exported.streams, upgraded_record(log))
    theirs = frames(c2s, from_client=True)
    ours = frames(s2c, from_client=False)
    assert theirs == logged_frames(log, from_netrepl=False)
    assert ours == logged_frames(log, from_netrepl=True)
    assert [f.payload for f in theirs] == ["hello from the client", b"\x01\x02", (4000, "done")]
    assert [f.payload for f in ours] == ["hello from netrepl", (4000, "")]


# ---- Wireshark


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_dissects_the_export_as_websocket(client_session):
    pcap = str(client_session.pcap)
    # One row per packet, a field's values for the frames in it joined by commas.
    fields = ["tcp.srcport", "websocket.fin", "websocket.opcode", "websocket.mask"]
    fields += ["websocket.payload.close.status_code"]
    command = ["tshark", "-r", pcap, "-o", "tcp.check_checksum:TRUE", "-Y", "websocket"]
    command += ["-T", "fields", "-E", "separator=|"]
    for field in fields:
        command += ["-e", field]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen: dict[bool, list[tuple[str, str, str]]] = {True: [], False: []}
    codes = []
    client_port = str(read_pcap(client_session.pcap.read_bytes())[0].sport)
    for row in result.stdout.splitlines():
        port, fins, opcodes, masks, code = row.split("|")
        from_client = port == client_port
        seen[from_client] += zip(fins.split(","), opcodes.split(","), masks.split(","), strict=True)
        codes += [c for c in code.split(",") if c]
    for from_client, way in ((True, "c2s"), (False, "s2c")):
        _, stream = split_head(client_session.streams[way])
        assert seen[from_client] == wire_frames(stream)
        assert {mask for _, _, mask in seen[from_client]} == {"1" if from_client else "0"}
    assert codes == ["1000", "1000"]  # the demo's close, and ours echoing it
    texts = ["tshark", "-r", pcap, "-Y", "websocket", "-T", "fields"]
    texts += ["-e", "websocket.payload.text", "-e", "websocket.payload.close.reason"]
    result = subprocess.run(texts, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "split" in result.stdout and "bye" in result.stdout
    assert "messages I understand" in result.stdout
    http = ["tshark", "-r", pcap, "-Y", "http", "-T", "fields"]
    http += ["-e", "http.request.method", "-e", "http.response.code"]
    result = subprocess.run(http, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["GET", "101"]


def wire_frames(stream: bytes) -> list[tuple[str, str, str]]:
    """(FIN, opcode, mask) bits of each frame in a stream of frames, as tshark writes them."""
    found = []
    position = 0
    while position < len(stream):
        first, second = stream[position], stream[position + 1]
        size = second & 0x7F
        extra = {126: 2, 127: 8}.get(size, 0)
        if extra:
            size = int.from_bytes(stream[position + 2 : position + 2 + extra], "big")
        masked = second & 0x80
        found.append((str(first >> 7), str(first & 0x0F), str(second >> 7)))
        position += 2 + extra + (4 if masked else 0) + size
    return found
