"""netrepl: an interactive terminal for talking to a socket by hand.

This package root holds only the version, so that `netrepl --version` imports nothing else.
"""

__version__ = "0.1.0"
