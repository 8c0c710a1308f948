"""Fixtures for tests/e2e: the real netrepl in a pty, with the test's private state directory.

Every netrepl a test starts is killed and its pty closed at teardown, whatever the test did.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.terminal import Terminal, terminal_env

if TYPE_CHECKING:
    from tests.e2e.test_flood import Flooder


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


@pytest.fixture
def flood() -> Iterator[Callable[..., Flooder]]:
    """flood(sock, data=... | pattern=..., close=False) -> a running Flooder (see
    tests/e2e/test_flood.py), stopped at teardown."""
    from tests.e2e.test_flood import Flooder

    flooders: list[Flooder] = []

    def make(sock: socket.socket, **options: object) -> Flooder:
        flooder = Flooder(sock, **options)  # type: ignore[arg-type]
        flooders.append(flooder)
        return flooder

    yield make
    for flooder in flooders:
        flooder.stop()
