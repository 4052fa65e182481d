"""Handlers of the ``robustgate`` subcommands, grouped by who uses them."""
