"""A transport kind added as a new one would be, touching nothing outside its declaration: a
`dev` kind (a device node: here a unix socket file stands in for a serial port), with its own
option (`--baud`), its own check, an endpoint of its own making, a label, and a transport
written against `Transport` alone. Registered (one entry, as transport/kinds/__init__.py
lists the others), it is parsed, checked, documented and completed, opened through
`open_transport`, run by a Session (sent to, received from, named on the toolbar), and left
by `/connect HOST PORT` for TCP, all through the registry.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from netrepl.cmdline import check, option
from netrepl.errors import ConnectError, UsageError
from netrepl.events import Closed, Connected, Received
from netrepl.manual import completion_script, man_page, options_markdown
from netrepl.options import build_parser, parse_options, program
from netrepl.records import replace
from netrepl.transport import Endpoint, PeerInfo, SessionLink, Target, describe_os_error, registry
from netrepl.transport.base import Transport
from netrepl.transport.delivery import ChannelDelivery
from netrepl.transport.stream import StreamChannel
from tests.net.conftest import WAIT

# ---- the kind, declared as transport/kinds/dev.py would declare it ---------------------------


@dataclass(frozen=True)
class DevSettings:
    baud: int | None


DEV = option("--dev", metavar="DEVICE", completes="file", help="a device node (a serial port)")
BAUD = option("--baud", type=int, metavar="N", help="the line speed, in bits per second")


@check("--baud", "--dev")
def _baud_is_for_dev(args: argparse.Namespace) -> None:
    """--baud is for a device (--dev)."""
    if args.baud is not None and args.dev is None:
        raise UsageError("--baud is for a device (--dev)")


class DevTransport(Transport):
    """One device, opened by its path; written against `Transport`'s declared members only."""

    def __init__(self, endpoint: Endpoint, link: SessionLink) -> None:
        super().__init__(endpoint, link)
        self.channel: StreamChannel | None = None

    def _open(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.endpoint.path or "")
        except OSError as error:
            sock.close()
            raise ConnectError(
                f"cannot open {self.endpoint.label}: {describe_os_error(error)}"
            ) from None
        self.loop.start()
        conn = next(self._ids)
        self.channel = StreamChannel(
            self.loop, sock, conn, self.post, peer=self.address, local="", cancel=self.cancel
        )
        self.post(Connected(conn, self.address, "", "dev", at=time.time()))
        self.channel.start()

    @property
    def state(self) -> str:
        return "open" if self.is_open else "closed"

    @property
    def is_open(self) -> bool:
        return self.channel is not None and self.channel.is_open

    @property
    def can_send(self) -> bool:
        return self.channel is not None and self.channel.can_send

    @property
    def received(self) -> int:
        return self.channel.received if self.channel else 0

    @property
    def sent(self) -> int:
        return self.channel.sent if self.channel else 0

    @property
    def last_activity(self) -> float:
        return self.channel.last_activity if self.channel else self.started_at

    def peers(self) -> list[PeerInfo]:
        channel = self.channel
        if channel is None or not channel.is_open:
            return []
        age = time.monotonic() - channel.opened_at
        return [PeerInfo(channel.id, self.address, age, channel.received, channel.sent, "open")]

    def send(self, data: bytes, target: Target, *, as_hex: bool) -> None:
        assert self.channel is not None
        delivery = ChannelDelivery([(self.channel, self.address)], self.cancel)
        delivery.write(data, as_hex=as_hex, settle=True)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.loop.stop()


def _open(endpoint: Endpoint, link: SessionLink) -> Transport:
    return DevTransport.open(endpoint, link)


def _build(args: argparse.Namespace, endpoint: Endpoint) -> Endpoint:
    return replace(endpoint, path=args.dev, kind_settings=DevSettings(args.baud))


KIND = registry.Kind(
    name="dev",
    title="device",
    open=_open,
    build=_build,
    heading="devices (--dev)",
    selector=DEV,
    options=(DEV, BAUD),
    checks=(_baud_is_for_dev,),
    synopsis=("[options] --dev DEVICE", "a device node"),
    listens=False,
    label=lambda endpoint: f"dev:{endpoint.path}",
)


@pytest.fixture
def dev_kind(monkeypatch) -> Iterator[registry.Kind]:
    """The registry with the dev kind after the others: the one entry a new kind adds."""
    found = registry.registered()
    with_dev = replace(found, kinds=(*found.kinds, KIND))
    monkeypatch.setattr(registry, "registered", lambda: with_dev)
    program.cache_clear()
    yield KIND
    program.cache_clear()


# ---- a device (a unix socket file) that echoes -------------------------------------------


class EchoDevice:
    def __init__(self, path: str) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen()
        self.listener.settimeout(WAIT)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(WAIT)
            try:
                while data := sock.recv(4096):
                    sock.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)


@pytest.fixture
def device(tmp_path) -> Iterator[EchoDevice]:
    echo = EchoDevice(str(tmp_path / "ttyFAKE0"))
    yield echo
    echo.close()


# ---- the command line --------------------------------------------------------------------


def test_the_command_line_builds_its_endpoint(dev_kind):
    endpoint = parse_options(["--dev", "/dev/ttyUSB0", "--baud", "9600"]).endpoint
    assert endpoint == Endpoint(
        protocol="dev", path="/dev/ttyUSB0", kind_settings=DevSettings(9600)
    )
    assert (endpoint.label, endpoint.kind) == ("dev:/dev/ttyUSB0", "device")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--baud 9600 h 1", "--baud is for a device (--dev)"),
        ("--dev /dev/x h 1", "--dev DEVICE takes no HOST or PORT"),
        ("--dev /dev/x -4", "--source, -4 and -6 are for TCP, UDP and WebSocket, not --dev"),
        ("--dev /dev/x --keepalive", "--keepalive is for TCP connections"),
        ("--dev /dev/x --tls", "--tls goes over TCP, unix and WebSocket, not device"),
        ("--dev /dev/x -u", "-u and --dev are different transports: give one"),
        ("--dev /dev/x --unix /tmp/s", "--unix and --dev are different transports: give one"),
        (
            "--demo --dev /dev/x",
            "--demo starts its own peer: give no HOST, PORT, -l, -u, --unix or --dev",
        ),
        ("-l --dev /dev/x", "--dev cannot listen (-l)"),
    ],
)
def test_the_shared_checks_check_it_as_it_declares_itself(dev_kind, line, message):
    with pytest.raises(UsageError) as error:
        parse_options(line.split())
    assert str(error.value) == message


def test_the_kinds_there_were_are_unchanged(dev_kind):
    assert parse_options(["-u", "h", "1"]).endpoint == Endpoint("udp", "h", 1)
    with pytest.raises(UsageError, match="goes with neither --tls nor --unix"):
        parse_options(["-u", "--unix", "p"])


def test_help_docs_man_page_and_completion_have_it(dev_kind):
    help_text = build_parser().format_help()
    assert "devices (--dev):" in help_text and "--baud N" in help_text
    assert "netrepl [options] --dev DEVICE" in help_text  # the usage line
    assert "listen: [HOST] PORT, or --unix PATH\n" in help_text  # a device cannot listen
    assert (
        "## Devices (--dev)" in options_markdown()
        and "--baud is for a device" in options_markdown()
    )
    assert "\\-\\-baud" in man_page()
    assert "--baud" in completion_script("bash") and "-l baud" in completion_script("fish")


# ---- opened, run by a session, left for TCP ---------------------------------------------------


def test_a_session_opens_it_sends_receives_and_names_it(dev_kind, device, make_session, make_peer):
    harness = make_session(batch=True)
    endpoint = parse_options(["--dev", device.path, "--baud", "115200"]).endpoint
    harness.session.open(endpoint)
    connected = harness.tap.of_type(Connected)[0]
    assert connected.protocol == "dev" and connected.peer == f"dev:{device.path}"
    assert harness.session.address_label == f"device dev:{device.path}"

    harness.session.submit("hello device")
    assert harness.tap.wait_received(len(b"hello device\n"), connected.conn) == b"hello device\n"
    assert isinstance(harness.tap.of_type(Received)[0], Received)
    assert harness.session.state == "open" and harness.session.connected

    # /connect HOST PORT: a kind addressed by a path gives way to TCP, keeping the rest
    # but its own settings.
    peer = make_peer(greeting=b"tcp here\n")
    harness.session.connect(peer.host, peer.port)
    harness.tap.wait_closed(connected.conn)
    assert harness.session.endpoint == Endpoint(host=peer.host, port=peer.port)
    assert harness.session.address_label.startswith("TCP ")
    harness.tap.wait_until(lambda: b"tcp here\n" in harness.tap.received_bytes(), "the greeting")
    stdout, _ = harness.finish()
    assert "hello device" in stdout and "tcp here" in stdout
    assert any(isinstance(event, Closed) for event in harness.tap.snapshot())
