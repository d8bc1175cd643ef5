"""The front door of `analytics`: version and help, --json errors, exit status by kind, what
it says when Redis is away or a port is taken, its logs, and the start banner."""

from __future__ import annotations

import ast
import json
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from analytics.cli import cli
from analytics.cli.output import REDIS_DOWN
from analytics.embedded import free_port
from analytics.settings import Settings
from analytics.store import OPERATIONS
from tests.helpers import ANALYTICS, hit, ok_json, run_cli, serving

DOWN = "redis://127.0.0.1:1/0"
CLI_DIR = Path(__file__).resolve().parents[2] / "analytics" / "cli"


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    """A CliRunner; the root logger is put back as it was (the group configures logging)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield CliRunner()
    root.handlers[:] = handlers
    root.setLevel(level)


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def test_version_and_h_for_help_everywhere(runner: CliRunner) -> None:
    shown = runner.invoke(cli, ["--version"])
    assert shown.exit_code == 0 and version("visit-analytics") in shown.output
    every = [(), *commands(cli)]
    assert ("sites", "add") in every and ("history",) in every
    for path in every:
        short = runner.invoke(cli, [*path, "-h"])
        assert short.exit_code == 0, (path, short.output)
        assert short.output == runner.invoke(cli, [*path, "--help"]).output
        assert short.output.startswith(f"Usage: {' '.join(('cli', *path))}")
    assert '{"error"' in runner.invoke(cli, ["-h"]).output.replace("\n", " ")


def test_the_cli_package_has_no_import_cycle() -> None:
    """No module of analytics.cli imports the package itself (its __init__ imports them)."""
    for module in CLI_DIR.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "analytics.cli":
                assert module.name == "__init__.py", f"{module.name} imports analytics.cli"
            if isinstance(node, ast.Import):
                assert all(a.name != "analytics.cli" for a in node.names), module.name


def test_history_takes_json(settings: Settings, client: FlaskClient) -> None:
    hit(client)
    day = ["demo", "--from", "2026-11-26", "--to", "2026-11-26"]
    assert ok_json(settings, "history", *day) == json.loads(
        run_cli(settings, "history", *day, "--format", "json").stdout
    )


def error_of(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    document = json.loads(result.stdout)
    assert set(document) == {"error"} and set(document["error"]) == {"code", "message"}
    error: dict[str, str] = document["error"]
    return error


@pytest.mark.parametrize(
    ("args", "status", "code", "says"),
    [
        (("sites", "show", "nope"), 3, "unknown_site", "site 'nope' is not registered"),
        (("reset", "demo", "--undo", "0123456789abcdef"), 3, "unknown_reset", "no reset"),
        (("sites", "add", "demo"), 4, "conflict", "exists already"),
        (("sites", "add", "x", "--timezone", "Mars/Olympus"), 2, "invalid_request", "timezone"),
        (("offsets", "demo", "--visits", "-1"), 2, "invalid_request", "'offsets.visits'"),
        (("reset", "demo", "--window", "yesterday", "--yes"), 2, "invalid_request", "yesterday"),
        (("sites", "update", "demo"), 2, "invalid_request", "nothing to change"),
        (("reset", "demo", "--all"), 2, "invalid_request", "add --yes"),
    ],
)
def test_with_json_an_error_is_json_on_stdout_and_the_status_says_its_kind(
    settings: Settings,
    client: FlaskClient,
    args: tuple[str, ...],
    status: int,
    code: str,
    says: str,
) -> None:
    result = run_cli(settings, *args, "--json")
    assert result.returncode == status, result
    error = error_of(result)
    assert error["code"] == code and says in error["message"]
    assert result.stderr == ""
    text = run_cli(settings, *args)  # without --json: one line on stderr, as before
    assert text.returncode == status and text.stdout == "" and says in text.stderr


def test_redis_down_says_what_to_check_and_names_no_internals(settings: Settings) -> None:
    as_json = run_cli(settings, "sites", "list", "--json", redis_url=DOWN)
    assert as_json.returncode == 5
    error = error_of(as_json)
    assert error["code"] == "store_unavailable"
    text = run_cli(settings, "sites", "list", redis_url=DOWN)
    assert text.returncode == 5
    (said,) = [line for line in text.stderr.splitlines() if line.startswith("analytics: ")]
    for message in (error["message"], said):
        assert "Redis" in message and "ANALYTICS_REDIS_URL" in message
        assert not any(operation in message for operation in OPERATIONS), message
        assert "(" not in message


def test_admin_commands_print_no_log_lines(settings: Settings, tmp_path: Path) -> None:
    added = run_cli(settings, "sites", "add", "tin-tuc", "--json")
    assert added.returncode == 0 and added.stderr == ""  # no "admin site_created" line
    # Without a Redis URL the command starts an embedded Redis: said in no log line either.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    env["ANALYTICS_DATA_DIR"] = str(tmp_path / "data")
    embedded = subprocess.run(
        [ANALYTICS, "sites", "add", "x", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert embedded.returncode == 0 and embedded.stderr == ""
    assert json.loads(embedded.stdout)["id"] == "x"


def stderr_on_a_terminal(
    *args: str, expect: int = 5, stop_at: str | None = None, **env: str
) -> str:
    """Runs the command with a terminal (a pty) as its stderr; returns what it wrote there.

    With ``stop_at``, a command that runs until stopped gets SIGTERM once it wrote that text.
    """
    main, terminal = os.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    try:
        process = subprocess.Popen(
            [ANALYTICS, *args],
            env={**environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
        )
        os.close(terminal)
        written = b""
        stopped = False
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other end closed: the command is done
                break
            if not chunk:
                break
            written += chunk
            if stop_at is not None and stop_at.encode() in written and not stopped:
                process.send_signal(signal.SIGTERM)  # once, as an operator stops it
                stopped = True
        assert process.wait(60) == expect
    finally:
        os.close(main)
    return written.decode().replace("\r\n", "\n")


# The scheduler logs its start and, with Redis down, a warning per job; it runs until stopped.
SCHEDULER = ("scheduler",)
STARTED = "scheduler running"


def test_logs_are_text_on_a_terminal_and_json_otherwise() -> None:
    down = {"ANALYTICS_REDIS_URL": DOWN}
    lines = stderr_on_a_terminal(*SCHEDULER, expect=0, stop_at="failed", **down).splitlines()
    assert any(f" INFO analytics {STARTED}" in line for line in lines), lines
    assert any(" WARNING analytics.store redis error" in line for line in lines), lines
    assert not any(line.startswith("{") for line in lines)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    piped = subprocess.Popen(
        [ANALYTICS, *SCHEDULER],
        env={**environ, **down},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert piped.stderr is not None
    logged = [json.loads(piped.stderr.readline()) for _ in range(2)]
    piped.send_signal(signal.SIGTERM)
    assert piped.wait(30) == 0
    piped.stderr.close()
    assert ("info", STARTED) in [(e["level"], e["message"]) for e in logged]
    # The setting, when given, wins on a terminal too.
    chosen = stderr_on_a_terminal(
        *SCHEDULER, expect=0, stop_at="failed", ANALYTICS_LOG_FORMAT="json", **down
    )
    assert json.loads(chosen.splitlines()[0])["message"] == STARTED


def test_an_admin_command_on_a_terminal_says_only_what_stopped_it() -> None:
    on_terminal = stderr_on_a_terminal("sites", "list", ANALYTICS_REDIS_URL=DOWN)
    assert [line for line in on_terminal.splitlines() if line.strip()] == [
        f"analytics: {REDIS_DOWN}"
    ]


def test_log_format_in_the_config_file_wins_on_a_terminal_too(tmp_path: Path) -> None:
    config = tmp_path / "analytics.toml"
    config.write_text('log_format = "json"\n', encoding="utf-8")
    from_file = stderr_on_a_terminal(
        *SCHEDULER,
        expect=0,
        stop_at="failed",
        ANALYTICS_REDIS_URL=DOWN,
        ANALYTICS_CONFIG=str(config),
    )
    assert json.loads(from_file.splitlines()[0])["message"] == STARTED
    # The variable, empty, means the default: that one yields to the terminal, over the file.
    emptied = stderr_on_a_terminal(
        *SCHEDULER,
        expect=0,
        stop_at="failed",
        ANALYTICS_REDIS_URL=DOWN,
        ANALYTICS_CONFIG=str(config),
        ANALYTICS_LOG_FORMAT="",
    )
    lines = emptied.splitlines()
    assert any(" WARNING analytics.store redis error" in line for line in lines), lines
    assert not any(line.startswith("{") for line in lines)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def said_once(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("analytics: ")]
    return line


@pytest.mark.slow
def test_a_taken_port_is_one_line_naming_the_option(
    tmp_path: Path, taken_port: int, redis_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    env["ANALYTICS_DATA_DIR"] = str(tmp_path / "data")
    served = subprocess.run(
        [ANALYTICS, "serve", "--port", str(taken_port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = said_once(served)
    assert "--port" in line and str(taken_port) in line and "in use" in line
    scheduled = subprocess.run(
        [ANALYTICS, "scheduler", "--metrics-port", str(taken_port)],
        env={**env, "ANALYTICS_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = said_once(scheduled)
    assert "--metrics-port" in line and str(taken_port) in line


@pytest.mark.slow
def test_the_start_banner_lists_the_admin_page(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port) as process:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        output = process.stdout.read() if process.stdout else ""
    base = f"http://127.0.0.1:{port}"
    assert f"{base}/demo" in output
    assert f"  admin page: {base}/admin (off until ANALYTICS_ADMIN_TOKEN is set)" in output
