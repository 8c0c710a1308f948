"""Listen mode: when the client chosen with /to N leaves, a line says so, the prompt shows it,
and typed lines fail with a reason instead of going to everyone else."""

from __future__ import annotations

from tests.e2e.test_interactive import rows
from tests.e2e.test_listen import clients, enter, listening_port  # noqa: F401 (fixture)


def test_lines_for_a_client_that_left_are_refused_not_broadcast(spawn, clients):  # noqa: F811
    terminal = spawn("-l", "127.0.0.1", "0")
    port = listening_port(terminal, "TCP")
    first, _ = clients(port)
    terminal.expect_screen(r"(?m)^#1 connected from")
    second, _ = clients(port)
    terminal.expect_screen(r"(?m)^#2 connected from")

    enter(terminal, "/to 2")
    terminal.expect_screen(rows("> /to 2", "#2>"))
    second.close()
    terminal.expect_screen(
        r"(?m)^#2 has left: typed lines go nowhere until you choose \(/to all, or /to N;"
    )
    terminal.expect_screen(r"(?m)^#2 \(left\)>$")

    enter(terminal, "meant for the second")
    terminal.expect_screen(r"(?m)^#2 has left: nothing sent \(/to all, or /to N;")
    enter(terminal, "/to 3")
    terminal.expect_screen(r"(?m)^/to: no client #3 \(/clients lists them\)$")

    enter(terminal, "/to all")
    terminal.expect_screen(rows("#2 (left)> /to all", "all>"))
    enter(terminal, "marker")
    # The first client got the marker and nothing that was meant for the second.
    assert first.wait_for(b"marker\n") == b"marker\n"
