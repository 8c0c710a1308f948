"""options: every named check of the command line, each with a command line that breaks its
rule and the one-line error it gives, alone and as the first error of the whole parse; and
every check concerns options that are declared (the declarations are the single source).

The usage-error tables in test_cli.py and tests/net/test_cli_transports.py check the same
messages through `parse_options` and the real program; this table is keyed by check, so a
check added without a case here fails `test_every_check_has_a_case`.
"""

from __future__ import annotations

import pytest

from netrepl.errors import UsageError
from netrepl.options import parse_options, program
from netrepl.records import replace
from netrepl.transport import registry

CASES = {
    # check name: (command line, the error's words, also the whole parse's first error)
    "demo_starts_its_own_peer": (
        "--demo -u",
        "--demo starts its own peer: give no HOST, PORT, -l, -u or --unix",
        True,
    ),
    "demo_speaks_plain_tcp": (
        "--demo --ws --tls",
        "--demo speaks plain TCP (or --ws): drop --tls",
        True,
    ),
    "demo_connects_directly": (
        "--demo --proxy socks5://127.0.0.1",
        "--demo connects to its own peer directly: drop --proxy",
        True,
    ),
    "proxy_is_for_clients": (
        "-l 1 --proxy socks5://127.0.0.1",
        "--proxy is for clients and a relay's upstream (-l PORT --relay HOST:PORT --proxy URL)",
        True,
    ),
    "proxy_needs_a_kind_it_carries": (
        "-u --proxy socks5://127.0.0.1 h 1",
        "--proxy is for TCP and WebSocket connections, not UDP",
        True,
    ),
    # Every kind there is can listen: tests/net/test_transport_plugin.py adds one that cannot.
    "listen_needs_a_kind_that_listens": None,
    "tls_options_need_tls": ("--sni x h 1", "--sni needs --tls", True),
    "tls_listener_needs_cert": (
        "-l 8443 --tls",
        "a TLS listener needs --cert FILE (and --key FILE)",
        True,
    ),
    "tcp_socket_options_need_tcp": ("--unix p --nodelay", "--nodelay is for TCP connections", True),
    "udp_carries_neither_tls_nor_unix": (
        "-u --tls h 1",
        "-u (UDP) goes with neither --tls nor --unix",
        True,
    ),
    "relay_tls_needs_an_upstream_that_carries_it": (
        "-u -l 1 --relay 127.0.0.1:2 --relay-tls",
        "--relay-tls goes over TCP, not UDP (a UDP relay's upstream is UDP)",
        True,
    ),
    "relay_idle_is_for_a_udp_relay": (
        "-l 1 --relay 127.0.0.1:2 --relay-idle 5",
        "--relay-idle is for a UDP relay (-u -l PORT --relay HOST:PORT)",
        True,
    ),
    "websocket_options_need_ws": (
        "--subprotocol chat h 1",
        "--subprotocol is for WebSocket (a ws:// URL, or -l PORT --ws)",
        True,
    ),
    "request_options_are_for_clients": (
        "-l 1 --ws --origin x",
        "--origin is for a WebSocket client's request, not -l",
        True,
    ),
    "broadcast_is_for_udp": ("--broadcast h 1", "--broadcast is for UDP (-u)", True),
    "rcvbuf_is_for_udp": (
        "--rcvbuf 4M h 1",
        "--rcvbuf is for UDP (-u): streams size their buffers themselves",
        True,
    ),
    "listener_options_need_listen": ("--once h 1", "--once is for listen mode (-l)", True),
    "reconnect_is_for_clients": (
        "-l 1 --reconnect 5",
        "--reconnect is for clients, not listen mode (-l)",
        True,
    ),
    "source_is_for_clients": (
        "-l 9000 --source 127.0.0.1",
        "--source is for clients: a listener binds the HOST it is given",
        True,
    ),
    "only_connecting_clients_are_counted": (
        "-u -l 1 --once",
        "--once is for TCP, unix and WebSocket listeners, not UDP",
        True,
    ),
    "a_path_takes_no_host_or_port": ("--unix p h 1", "--unix PATH takes no HOST or PORT", True),
    "source_and_family_need_an_ip_address": (
        "--unix p -6",
        "--source, -4 and -6 are for TCP, UDP and WebSocket, not --unix",
        True,
    ),
    "listener_needs_a_port": ("-u -l", "give the PORT to listen on (-l [HOST] PORT)", True),
    "relay_listens": (
        "h 1 --relay 127.0.0.1:2",
        "--relay needs -l: netrepl -l [HOST] PORT --relay HOST:PORT",
        True,
    ),
    # Every kind there is can relay: test_a_kind_whose_listener_cannot_relay_is_refused
    # takes UDP's relay away to see the check refuse it.
    "relay_needs_a_kind_that_relays": None,
    "relay_options_need_relay": ("-l 1 --relay-tls", "--relay-tls needs --relay HOST:PORT", True),
    "relay_key_needs_cert": (
        "-l 1 --relay h:2 --relay-tls --relay-key k",
        "--relay-key goes with --relay-cert FILE",
        True,
    ),
    "client_needs_host_and_port": ("h", "give HOST and PORT (or --demo; -l PORT to listen)", True),
    # With the kinds there are, an earlier check says it first (-u's own): these two are for
    # kinds to come (see tests/net/test_transport_plugin.py), checked here on their own.
    "one_transport_kind": (
        "-u --unix p",
        "-u and --unix are different transports: give one",
        False,
    ),
    "layers_need_a_kind_that_carries_them": (
        "-u --tls h 1",
        "--tls goes over TCP, unix and WebSocket, not UDP",
        False,
    ),
}


def checks():
    return {declared.name: declared for declared in program().checks}


def test_every_check_has_a_case():
    assert sorted(checks()) == sorted(CASES)


def test_check_names_are_unique():
    names = [declared.name for declared in program().checks]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", sorted(name for name, case in CASES.items() if case))
def test_each_check_refuses_its_case_with_one_line(name):
    line, message, first = CASES[name]
    args = program().parser().parse_args(line.split())
    with pytest.raises(UsageError) as error:
        checks()[name].run(args)
    assert str(error.value) == message
    if first:
        with pytest.raises(UsageError) as whole:
            parse_options(line.split())
        assert str(whole.value) == message


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_check_passes_a_command_line_that_keeps_its_rule(name):
    args = program().parser().parse_args(["127.0.0.1", "1"])
    checks()[name].run(args)  # raises nothing


def test_checks_concern_declared_options():
    declared = {flag for option in program().options for flag in option.flags}
    for check in program().checks:
        assert check.concerned, check.name
        unknown = [flag for flag in check.concerned if flag not in declared]
        assert not unknown, f"{check.name} concerns undeclared {unknown}"


def test_every_check_states_its_rule():
    for check in program().checks:
        assert check.run.__doc__, f"{check.name} has no rule (docstring)"
        assert "\n" not in check.rule and check.rule.endswith("."), check.name


def test_checks_that_fit_run_before_checks_that_complete():
    # `-u -l --tls 5000`: the UDP/TLS conflict is the mistake, not the missing --cert.
    with pytest.raises(UsageError, match="goes with neither"):
        parse_options(["-u", "-l", "--tls", "5000"])
    stages = [check.stage for check in program().ordered_checks()]
    assert stages == sorted(stages, key=lambda stage: stage != "together")


def test_a_kind_whose_listener_cannot_relay_is_refused(monkeypatch):
    found = registry.registered()
    no_udp_relay = tuple(
        replace(kind, relay=None, upstream_kind=None) if kind.name == "udp" else kind
        for kind in found.kinds
    )
    monkeypatch.setattr(registry, "registered", lambda: replace(found, kinds=no_udp_relay))
    args = program().parser().parse_args(["-u", "-l", "1", "--relay", "127.0.0.1:2"])
    with pytest.raises(UsageError) as error:
        checks()["relay_needs_a_kind_that_relays"].run(args)
    assert str(error.value) == "--relay is for TCP and unix listeners, not UDP"
    with pytest.raises(UsageError) as whole:
        parse_options(["-u", "-l", "1", "--relay", "127.0.0.1:2"])
    assert str(whole.value) == str(error.value)


def test_a_udp_relay_is_a_relay_with_an_idle_time():
    options = parse_options(
        ["-u", "-l", "127.0.0.1", "0", "--relay", "[::1]:53", "--relay-idle", "2.5"]
    )
    endpoint = options.endpoint
    assert endpoint.protocol == "udp" and endpoint.listen
    assert endpoint.upstream is not None and endpoint.upstream.protocol == "udp"
    assert endpoint.upstream.label == "[::1]:53"
    assert endpoint.kind_settings.idle == 2.5
    default = parse_options(["-u", "-l", "0", "--relay", "127.0.0.1:53"]).endpoint
    assert default.kind_settings.idle == 120.0
    assert parse_options(["-u", "-l", "0"]).endpoint.kind_settings is None
