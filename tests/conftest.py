"""Shared fixtures: loopback peers started per test, and a private state directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from netrepl.demo import DemoPeer
from tests.peers import Peer


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    """Keep history and state of every netrepl started by a test out of the user's home."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    # And no config file of the user's: defaults and presets come from the test alone.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return state


@pytest.fixture
def make_peer() -> Iterator[Callable[..., Peer]]:
    """make_peer(greeting=..., echo=..., close_after_greeting=..., host=...) -> started Peer."""
    peers: list[Peer] = []

    def make(**options: object) -> Peer:
        peer = Peer(**options).start()  # type: ignore[arg-type]
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.stop()


@pytest.fixture
def echo_peer(make_peer) -> Peer:
    return make_peer(echo=True)


@pytest.fixture
def demo_peer() -> Iterator[DemoPeer]:
    with DemoPeer() as peer:
        yield peer
