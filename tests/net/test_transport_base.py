"""transport/base.py: `Transport` declares everything the session, batch mode and the REPL ask
of a transport (abstract where each kind must say, with a default where there is one right
answer), and those front ends ask for nothing else: no `getattr` probing of a transport."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from netrepl.transport import PeerInfo
from netrepl.transport.base import Transport
from netrepl.transport.client import StreamClient
from netrepl.transport.server import StreamServer
from netrepl.transport.udp import DatagramTransport

ROOT = Path(__file__).resolve().parents[2]
FRONT_ENDS = ("session.py", "batch.py", "repl.py")
# `transport.X`, `self.transport.X`, `session.transport.X`: what a front end asks of one.
ASKED = re.compile(r"(?<!netrepl\.)\btransport\.([a-z_]\w*)")


def test_transport_is_abstract_with_what_each_kind_must_say():
    assert inspect.isabstract(Transport)
    assert Transport.__abstractmethods__ == {
        "_open",
        "state",
        "is_open",
        "can_send",
        "received",
        "sent",
        "last_activity",
        "peers",
        "send",
        "close",
    }


@pytest.mark.parametrize("kind", [StreamClient, StreamServer, DatagramTransport])
def test_every_transport_says_all_of_it(kind):
    assert not inspect.isabstract(kind)


def test_no_member_is_a_stub():
    source = inspect.getsource(Transport)
    assert "NotImplementedError" not in source


@pytest.mark.parametrize("module", FRONT_ENDS)
def test_front_ends_ask_transports_only_for_declared_members(module):
    text = (ROOT / "netrepl" / module).read_text(encoding="utf-8")
    assert not re.search(r"getattr\([^,]*transport", text), f"{module} probes a transport"
    asked = set(ASKED.findall(text))
    assert asked, f"{module}: nothing found (has the pattern gone stale?)"
    undeclared = sorted(
        name
        for name in asked
        if not hasattr(Transport, name) and name not in ("endpoint", "loop", "cancel", "started_at")
    )
    assert not undeclared, f"{module} asks transports for undeclared {undeclared}"


def test_instance_attributes_the_front_ends_use_are_set_by_the_base():
    # endpoint and loop are set in Transport.__init__ for every kind, not by a subclass.
    source = inspect.getsource(Transport.__init__)
    for name in ("endpoint", "loop", "cancel"):
        assert f"self.{name} =" in source, name


@pytest.mark.parametrize(
    ("state", "remark"),
    [("open", ""), ("udp", ""), ("half-closed", "half-closed"), ("closing", "closing")],
)
def test_clients_lists_a_peer_state_only_when_it_is_out_of_the_ordinary(
    state: str, remark: str
) -> None:
    assert PeerInfo(1, "127.0.0.1:9", 1.0, 0, 0, state).remark == remark
