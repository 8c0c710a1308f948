"""Fixtures for tests/e2e: the real netrepl in a pty, with the test's private state directory.

Every netrepl a test starts is killed and its pty closed at teardown, whatever the test did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.terminal import Terminal, terminal_env


@pytest.fixture
def spawn(private_state) -> Iterator[Callable[..., Terminal]]:
    """spawn(*args, timeout=10.0) -> a running `python -m netrepl ARGS` in a pty."""
    terminals: list[Terminal] = []

    def start(*args: str, timeout: float = 10.0) -> Terminal:
        terminal = Terminal(list(args), terminal_env(str(private_state)), timeout=timeout)
        terminals.append(terminal)
        return terminal

    yield start
    for terminal in terminals:
        terminal.close()
        terminal.child.close(force=True)
