"""The slash commands: importing this package declares every one of them in `REGISTRY`.

Handlers act only through the Session, so every command works the same typed at the prompt,
piped into batch mode, or run from a script. The registry itself (parameters, help, the
generated reference) is `netrepl.commands.registry`; regenerate the reference with
`python -m netrepl.commands > docs/commands.md`.
"""

# Each group's module declares its commands when imported.
from netrepl.commands import connection, general, log, relay, script, send, view  # noqa: F401
from netrepl.commands.registry import REGISTRY

__all__ = ["REGISTRY"]
