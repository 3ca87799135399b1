"""Subcommands of `deepdrummer-live` beyond the sound core; each module has `register(sub)`."""
