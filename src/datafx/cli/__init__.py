"""The ``datafx`` command-line tool (``datafx --help``, ``python -m datafx``)."""

from datafx.cli.main import cli, main

__all__ = ["cli", "main"]
