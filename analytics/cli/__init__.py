"""The ``analytics`` command: the click group, its commands, and ``main``."""

from __future__ import annotations

import sys

import click

from analytics.cli.admin import ADMIN_COMMANDS
from analytics.cli.output import exit_code
from analytics.cli.serve import Stop, build_server, handle_stop_signals, scheduler, serve
from analytics.errors import AnalyticsError
from analytics.logs import configure_logging
from analytics.metrics import single_process
from analytics.settings import Settings

__all__ = ["Stop", "build_server", "cli", "handle_stop_signals", "main"]


@click.group()
def cli() -> None:
    """visit-analytics: a self-hosted visit counter."""
    single_process()
    configure_logging(log_format())


for command in (serve, scheduler, *ADMIN_COMMANDS):
    cli.add_command(command)


def log_format() -> str:
    """The configured log format; "json" when the settings are broken (the command says why)."""
    try:
        return Settings.load().log_format
    except AnalyticsError:
        return "json"


def main() -> None:
    try:
        cli(standalone_mode=True)
    except AnalyticsError as err:
        click.echo(f"analytics: {err.message}", err=True)
        sys.exit(exit_code(err))
