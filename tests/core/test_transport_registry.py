"""transport/registry.py: the kinds and the TLS layer are registered once each, with distinct
names and options and one default; `/connect HOST PORT` readdresses through the kind; and the
declarations import no transport implementation (so `--help` and `--completion` stay light)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netrepl.options import program
from netrepl.transport import Endpoint, TlsOptions, open_transport, registry

TLS = TlsOptions(cafile="ca.pem")


def test_the_kinds_and_layers_there_are():
    assert [kind.name for kind in registry.kinds()] == ["tcp", "udp", "unix", "ws"]
    assert [layer.name for layer in registry.layers()] == ["tls"]
    assert registry.default_kind().name == "tcp"
    assert [k.name for k in registry.kinds() if k.selector is None] == ["tcp"]


def test_every_flag_is_declared_once():
    flags = [flag for option in program().options for flag in option.flags]
    assert len(flags) == len(set(flags)), sorted(f for f in flags if flags.count(f) > 1)


def test_a_kinds_selector_is_its_first_option():
    for kind in registry.kinds():
        if kind.selector is not None:
            assert kind.options[0] is kind.selector, kind.name
    for layer in registry.layers():
        assert layer.options[0] is layer.selector, layer.name


def test_layers_are_carried_by_the_stream_kinds_only():
    carriers = {kind.name for kind in registry.kinds() if "tls" in kind.layers}
    assert carriers == {"tcp", "unix", "ws"}


@pytest.mark.parametrize(
    ("endpoint", "host", "port", "expected"),
    [
        (Endpoint(host="a", port=1), "b", 2, Endpoint(host="b", port=2)),
        (Endpoint(host="a", port=1, tls=TLS), "b", "https", Endpoint(host="b", port=443, tls=TLS)),
        (Endpoint(port=9000, listen=True), "b", 2, Endpoint(host="b", port=2)),
        (
            Endpoint("udp", "a", 1, broadcast=True),
            "b",
            "domain",
            Endpoint("udp", "b", 53, broadcast=True),
        ),
        (Endpoint("unix", path="/tmp/s", tls=TLS), "b", 2, Endpoint(host="b", port=2, tls=TLS)),
        (Endpoint("unix", path="/tmp/s", listen=True), "b", "http", Endpoint(host="b", port=80)),
        (  # /connect in relay mode connects, as a client, and relays nothing
            Endpoint(port=5020, listen=True, upstream=Endpoint(host="plc", port=502)),
            "b",
            2,
            Endpoint(host="b", port=2),
        ),
    ],
)
def test_connect_readdresses_through_the_kind(endpoint, host, port, expected):
    assert registry.readdress(endpoint, host, port) == expected


def test_an_unregistered_kind_is_named():
    with pytest.raises(ValueError, match="no transport kind 'carrier-pigeon'"):
        open_transport(Endpoint(protocol="carrier-pigeon"), lambda event: None, iter(range(9)))


def test_describe_names_a_kind_with_its_layer():
    assert registry.describe(Endpoint(host="h", port=1)) == "TCP"
    assert registry.describe(Endpoint(host="h", port=1, tls=TLS)) == "TLS"
    assert registry.describe(Endpoint("unix", path="p", tls=TLS)) == "unix+TLS"


def test_the_declarations_import_no_transport_implementation():
    code = (
        "import sys; from netrepl.options import program; from netrepl.transport import registry;"
        " program().parser(); registry.checks();"
        " print(' '.join(sorted(m for m in sys.modules if m.startswith(('netrepl', 'ssl')))))"
    )
    loaded = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=30)
        .stdout.decode()
        .split()
    )
    heavy = {"ssl"} | {
        f"netrepl.transport.{name}"
        for name in ("base", "client", "server", "udp", "stream", "tls", "loop", "delivery")
    }
    assert not heavy & set(loaded), sorted(heavy & set(loaded))
    assert "netrepl.transport.kinds.udp" in loaded, "the import list was not read"
