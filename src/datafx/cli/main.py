"""The ``datafx`` command group, its global options and error reporting."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import click

from datafx import __version__
from datafx.cli.demo import SECTIONS, demo
from datafx.cli.demo_orders import ORDERS_SECTION
from datafx.cli.kv_commands import kv
from datafx.cli.queue_commands import queue, stream
from datafx.cli.session import Settings, run_with_connection
from datafx.connfx.connection import Connection
from datafx.connfx.errors import DataError, UnsupportedProtocolError
from datafx.connfx.registry import BUILTIN_ADAPTERS, LazyFactory, Registry

__all__ = ["DEFAULT_DSN", "cli", "main"]

DEFAULT_DSN = "sqlite:///datafx.db"


class DatafxGroup(click.Group):
    """A click group that prints library errors as one line and exits with 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (DataError, ValueError) as exc:
            # ValueError covers the argument checks of the data layer
            # (an empty key, a TTL below one millisecond).
            raise click.ClickException(str(exc)) from exc


@click.group(cls=DatafxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dsn",
    envvar="DATAFX_DSN",
    default=DEFAULT_DSN,
    show_default=True,
    show_envvar=True,
    metavar="DSN",
    help=(
        "Where the data lives, as a DSN such as memory://, sqlite:///data.db "
        "or redis://127.0.0.1:6379/0. The default is the SQLite file datafx.db "
        "in the working directory."
    ),
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show progress bars on stderr for long work (only on a terminal).",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log to stderr: -v for connection events, -vv for debug detail.",
)
@click.version_option(__version__, prog_name="datafx")
@click.pass_context
def cli(ctx: click.Context, dsn: str, progress: bool, verbose: int) -> None:
    """Store, read, import and export data with datafx from the shell."""
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    ctx.obj = Settings(dsn=dsn, progress=progress)


@cli.command()
@click.pass_obj
def health(settings: Settings) -> None:
    """Check that the backend responds, and print its state and latency."""

    async def check(conn: Connection) -> bool:
        status = await conn.health_check()
        click.echo(f"location: {conn.target.masked_location()}")
        click.echo(f"protocol: {conn.protocol}")
        click.echo(f"state:    {status.state.value}")
        click.echo(f"latency:  {status.latency * 1000:.2f} ms")
        click.echo(f"message:  {status.message}")
        for name, value in status.details.items():
            click.echo(f"{name}: {value}")
        return status.healthy

    if not run_with_connection(settings, check):
        raise click.ClickException("the backend did not pass the health check")


@cli.command()
def protocols() -> None:
    """List the built-in protocols and whether their drivers are installed."""
    registry = Registry.with_defaults()
    rows = [("PROTOCOL", "STATUS", "INSTALL")]
    for protocol in registry.list_registered_protocols():
        rows.append((protocol, *_protocol_status(protocol)))
    width = max(len(row[0]) for row in rows)
    status_width = max(len(row[1]) for row in rows)
    for name, status, install in rows:
        click.echo(f"{name:<{width}}  {status:<{status_width}}  {install}".rstrip())


def _protocol_status(protocol: str) -> tuple[str, str]:
    """Return the status text and the install hint of one built-in protocol."""
    module, extra = BUILTIN_ADAPTERS.get(protocol, ("", None))
    install = f'pip install "datafx[{extra}]"' if extra else "(included)"
    if not module:
        return "registered by the application", ""
    if importlib.util.find_spec(module) is None:
        return "not available in this version", ""
    try:
        LazyFactory(protocol, module, extra).load()
    except UnsupportedProtocolError:
        return "driver not installed", install
    except AttributeError:
        # The adapter package exists but defines no module-level ``factory``.
        return "not available in this version", ""
    return "installed", install


def main() -> None:
    """Run the ``datafx`` command (the console script's entry point)."""
    cli(prog_name="datafx")


cli.add_command(kv)
cli.add_command(demo)
cli.add_command(queue)
cli.add_command(stream)
SECTIONS.append(ORDERS_SECTION)
