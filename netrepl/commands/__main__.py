"""`python -m netrepl.commands` prints docs/commands.md, generated from the registry."""

from netrepl.commands.registry import reference_markdown

print(reference_markdown(), end="")
