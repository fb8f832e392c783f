"""Terminal output of the ``datafx`` command: results, notes and progress bars.

Results go to stdout so they can be piped. Progress bars, summaries and
errors go to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

__all__ = [
    "ProgressReporter",
    "echo_json",
    "note",
    "progress",
    "rate",
]


class ProgressReporter(Protocol):
    """A progress sink: ``update(n)`` adds ``n`` finished units of work."""

    def update(self, n_steps: int) -> None: ...


class _SilentProgress:
    def update(self, n_steps: int) -> None:
        return None


def echo_json(value: Any) -> None:
    """Print ``value`` as one line of JSON on stdout, keeping non-ASCII text."""
    click.echo(json.dumps(value, ensure_ascii=False))


def note(message: str) -> None:
    """Print a status line on stderr."""
    click.echo(message, err=True)


def rate(count: int, seconds: float) -> str:
    """Format ``count`` items in ``seconds`` as a rate such as ``"41,302/s"``."""
    if seconds <= 0:
        return "n/a"
    return f"{count / seconds:,.0f}/s"


@contextmanager
def progress(
    length: int | None, label: str, *, enabled: bool = True
) -> Iterator[ProgressReporter]:
    """Show a progress bar on stderr for ``length`` units of work.

    ``enabled=False`` (or stderr not being a terminal) shows nothing, so
    piped and scripted runs stay quiet.
    """
    if not enabled or not sys.stderr.isatty():
        yield _SilentProgress()
        return
    bar: ProgressBar[int]
    with click.progressbar(
        length=length,
        label=label,
        file=sys.stderr,
        show_pos=True,
        show_percent=True,
        show_eta=True,
    ) as bar:
        yield bar
