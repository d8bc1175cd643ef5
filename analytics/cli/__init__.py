"""The ``analytics`` command: the click group, its commands, and ``main``."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from analytics.cli.admin import ADMIN_COMMANDS
from analytics.cli.output import fail, print_error
from analytics.cli.serve import Stop, build_server, handle_stop_signals, scheduler, serve, web
from analytics.errors import AnalyticsError
from analytics.logs import configure_logging
from analytics.metrics import single_process
from analytics.settings import Settings

__all__ = ["Stop", "build_server", "cli", "handle_stop_signals", "main"]

SERVICE_COMMANDS = ("serve", "web", "scheduler")
"""The long-running commands, which log their work; the others log warnings and errors only."""


class Analytics(click.Group):
    """The group, answering every error of its commands one way: a line on stderr, or with
    ``--json`` a JSON error document on stdout; the exit status says the kind either way."""

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in (argv[: argv.index("--")] if "--" in argv else argv)
        try:
            result = super().main(argv, prog_name, complete_var, False, **extra)
        except AnalyticsError as err:
            fail(err, as_json)
        except click.ClickException as err:
            if not as_json:
                err.show()
                sys.exit(err.exit_code)
            code = "invalid_request" if isinstance(err, click.UsageError) else "failed"
            print_error(code, err.format_message(), as_json=True)
            sys.exit(err.exit_code)
        except click.Abort:
            print_error("declined", "declined: nothing was done", as_json=as_json)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(
    cls=Analytics,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Exit status: 0 done, 1 declined or failed, 2 invalid input, 3 unknown site or reset, "
        "4 conflict, 5 Redis unavailable. With --json, a command prints an error as JSON on "
        'stdout too, as the HTTP API does: {"error": {"code": ..., "message": ...}}.'
    ),
)
@click.version_option(package_name="visit-analytics", prog_name="analytics")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """visit-analytics: a self-hosted visit counter."""
    single_process()
    configure_logging(log_format())
    if ctx.invoked_subcommand not in SERVICE_COMMANDS:
        # An admin command says itself what stopped it; the store's warning before that line
        # (a Redis error, with its operation) would only repeat it.
        logging.getLogger().setLevel(logging.ERROR)


for command in (serve, web, scheduler, *ADMIN_COMMANDS):
    cli.add_command(command)


def log_format() -> str:
    """The setting log_format when it is set (in the config file or by ANALYTICS_LOG_FORMAT);
    else readable text when stderr is a terminal, and JSON, as a log collector wants it,
    otherwise."""
    terminal = sys.stderr.isatty()
    try:
        settings = Settings.load()
    except AnalyticsError:  # the command stops on it and says why
        return "text" if terminal else "json"
    if terminal and "log_format" not in settings.sources:
        return "text"
    return settings.log_format


def main() -> None:
    cli.main(prog_name="analytics")
