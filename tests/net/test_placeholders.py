"""Placeholders through a real session: what reaches the peer, and that a bad one sends nothing."""

from __future__ import annotations

import pytest

from netrepl.errors import UsageError
from tests.net.conftest import Harness


@pytest.fixture
def harness(make_session) -> Harness:
    return make_session()


def test_modbus_frame_with_crc_reaches_the_peer(harness, make_peer):
    peer = make_peer()
    harness.session.connect(peer.host, peer.port)
    client = peer.wait_for_client()
    harness.session.submit("/x 01 03 00 00 00 0A {crc16-modbus}")
    assert client.wait_for_size(8) == bytes.fromhex("01 03 00 00 00 0A C5 CD")


def test_counter_counts_sends(harness, make_peer):
    peer = make_peer()
    harness.session.connect(peer.host, peer.port)
    client = peer.wait_for_client()
    for _ in range(3):
        harness.session.submit("n={counter}")
    assert client.wait_for(b"n=3\n") == b"n=1\nn=2\nn=3\n"


def test_file_placeholder_reads_the_file(harness, make_peer, tmp_path):
    (tmp_path / "frame.bin").write_bytes(b"\x01\x02")
    peer = make_peer()
    harness.session.connect(peer.host, peer.port)
    client = peer.wait_for_client()
    harness.session.submit(f"/x AA {{file:{tmp_path / 'frame.bin'}}} {{xor8}}")
    assert client.wait_for_size(4) == b"\xaa\x01\x02\xa9"


def test_bad_placeholder_sends_nothing(harness, make_peer, tmp_path):
    peer = make_peer()
    harness.session.connect(peer.host, peer.port)
    client = peer.wait_for_client()
    for line in ("abc{crc99}", f"/x 01 {{file:{tmp_path / 'missing'}}}", "{sum8:3-}"):
        with pytest.raises(UsageError):
            harness.session.submit(line)
    harness.session.submit("end")
    assert client.wait_for(b"end\n") == b"end\n", "nothing before the good line was sent"
    assert harness.session.sends == 1
