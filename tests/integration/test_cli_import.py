"""`analytics import SITE FILE.csv` and `analytics history --all`: the real command, in a process
of its own, on real Redis. The command reads the system clock, so the test's clock is moved to
now: "today" is the same day on both sides."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from analytics.clock import FixedClock
from analytics.services import Services
from analytics.settings import Settings
from tests.helpers import clear_of_day_change, counters, hit, ok_json, run_cli

FIXTURES = Path(__file__).parent.parent / "fixtures"
PLAUSIBLE = FIXTURES / "plausible_visitors.csv"
# Plausible's visitors.csv of a dashboard shown by month (12 months), and by week (a range from
# Thursday 1 February 2024: its first row is that day, the others Mondays).
MONTHLY = FIXTURES / "plausible_visitors_monthly.csv"
WEEKLY = FIXTURES / "plausible_visitors_weekly.csv"
HCM = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture(autouse=True)
def now(clock: FixedClock) -> FixedClock:
    """The app's clock at the real time, which the command reads: not just before a day change."""
    clear_of_day_change()
    clock.set(datetime.now(UTC))
    return clock


def today() -> date:
    return datetime.now(HCM).date()


def csv_days(settings: Settings, *args: str) -> list[str]:
    result = run_cli(settings, "history", "demo", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_a_plausible_export_imports_by_its_header(
    settings: Settings, client: FlaskClient, services: Services
) -> None:
    result = run_cli(settings, "import", "demo", str(PLAUSIBLE))
    assert result.returncode == 0, result.stderr
    assert "imported 10 days from 2024-02-26 to 2024-03-06 into 'demo'" in result.stdout
    assert csv_days(settings, "--from", "2024-02-28", "--to", "2024-03-05") == [
        "date,pageviews,visits,visitors",
        "2024-02-28,1530,589,455",
        "2024-02-29,1391,552,430",
        "2024-03-01,1104,471,377",
        "2024-03-02,498,233,201",
        "2024-03-03,455,214,188",
        "2024-03-04,1611,602,467",
        "2024-03-05,0,0,0",
    ]
    total = counters(client)["windows"]["total"]
    assert (total["pageviews"], total["visits"], total["visitors"]) == (10880, 4333, 3417)
    entry = services.admin.audit(1)[0]
    assert entry.action == "history_imported" and entry.ip.startswith("cli:")
    assert entry.change == {"days": 10, "first": "2024-02-26", "last": "2024-03-06"}
    # Run twice, it counts once.
    assert run_cli(settings, "import", "demo", str(PLAUSIBLE)).returncode == 0
    assert counters(client)["windows"]["total"]["pageviews"] == 10880


def test_export_wipe_import_gives_the_same_history(
    settings: Settings, client: FlaskClient, services: Services, clock: FixedClock, tmp_path: Path
) -> None:
    assert run_cli(settings, "import", "demo", str(PLAUSIBLE)).returncode == 0
    # Live days too: one closed into the history, yesterday's live, today's.
    now = clock()
    for back, ip in ((5, "198.51.100.1"), (1, "198.51.100.2"), (0, "198.51.100.3")):
        clock.set(now - timedelta(days=back))
        hit(client, ip=ip)
        hit(client, url="https://example.vn/2", ip=ip)
    clock.set(now)
    services.housekeeper.run_all()
    exported = csv_days(settings, "--all")
    assert exported[0] == "date,pageviews,visits,visitors"
    assert exported[1] == "2024-02-26,1387,538,412"  # the first day with any count
    assert exported[-1] == f"{today()},2,1,1"
    assert f"{today() - timedelta(days=5)},2,1,1" in exported
    assert len(exported) == 1 + (today() - date(2024, 2, 26)).days + 1
    saved = tmp_path / "export.csv"
    saved.write_text("\n".join(exported) + "\n", encoding="utf-8")

    wiped = run_cli(settings, "sites", "delete", "demo", "--confirm", "demo")
    assert wiped.returncode == 0, wiped.stderr
    assert run_cli(settings, "sites", "add", "demo").returncode == 0
    again = ok_json(settings, "import", "demo", str(saved))
    assert again["days"] == len(exported) - 2  # all but the header and today
    assert again["skipped"] == {"line": len(exported), "date": str(today())}
    # Every day but today (counted live, and wiped) is as it was.
    assert csv_days(settings, "--all")[:-1] == exported[:-1]
    assert csv_days(settings, "--all")[-1] == f"{today()},0,0,0"


def test_history_all_of_a_site_without_counts_is_today_alone(
    settings: Settings, client: FlaskClient
) -> None:
    assert csv_days(settings, "--all") == ["date,pageviews,visits,visitors", f"{today()},0,0,0"]
    both = run_cli(settings, "history", "demo", "--all", "--from", "2026-01-01")
    assert both.returncode == 2 and "--all takes no --from or --to" in both.stderr
    neither = run_cli(settings, "history", "demo")
    assert neither.returncode == 2 and "--from and --to, or --all" in neither.stderr


def test_headers_in_any_case_a_bom_other_columns_and_a_dry_run(
    settings: Settings, client: FlaskClient, tmp_path: Path
) -> None:
    path = tmp_path / "excel.csv"
    path.write_text(
        "\ufeff Date , PageViews ,note,VISITORS\r\n"
        '2025-01-02,30,"a, b",7\r\n'
        "\r\n"
        "2025-01-01,20,,5\r\n",
        encoding="utf-8",
    )
    dry = ok_json(settings, "import", "demo", str(path), "--dry-run")
    assert dry == {
        "site": "demo",
        "imported": 0,
        "days": 2,
        "first": "2025-01-01",
        "last": "2025-01-02",
        "dry_run": True,
    }
    assert counters(client)["windows"]["total"]["pageviews"] == 0
    assert ok_json(settings, "import", "demo", str(path))["imported"] == 2
    assert csv_days(settings, "--from", "2025-01-01", "--to", "2025-01-02")[1:] == [
        "2025-01-01,20,0,5",
        "2025-01-02,30,0,7",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("day,pageviews\n2025-01-01,1\n", "names no column 'date'"),
        ("date,visitors\n2025-01-01,1\n", "names no column 'pageviews'"),
        ("date,pageviews\n2025-01-01,1\n2025-01-02,-3\n", "line 3: 'pageviews'"),
        ("date,pageviews\n2025-01-01,1\n\n01/02/2025,3\n", "line 4: 'date' must be a date"),
        ("date,pageviews,visits\n2025-01-01,1\n", "line 2: 2 columns"),
        ("date,pageviews\n2025-01-01,1.5\n", "line 2: 'pageviews' must be a whole number"),
        ("date,pageviews\n2025-01-01,1\n2025-01-01,2\n", "line 3: 2025-01-01 is on line 2"),
        ("date,pageviews\n2999-01-01,1\n", "line 2: 'date' must be a day from"),
    ],
)
def test_a_bad_file_is_refused_naming_its_line_and_imports_nothing(
    settings: Settings, client: FlaskClient, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    result = run_cli(settings, "import", "demo", str(path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert counters(client)["windows"]["total"]["pageviews"] == 0


@pytest.mark.parametrize(
    ("sample", "said"),
    [(MONTHLY, "one row a month (dated the 1st)"), (WEEKLY, "one row a week (7 days apart)")],
    ids=["monthly", "weekly"],
)
def test_an_export_by_month_or_week_is_refused_unless_gaps_are_allowed(
    settings: Settings, client: FlaskClient, sample: Path, said: str
) -> None:
    for extra in ((), ("--dry-run",)):
        result = run_cli(settings, "import", "demo", str(sample), *extra)
        assert result.returncode == 2, result.stderr
        assert f"the file holds {said}, not one a day" in result.stderr
        assert "export with a daily interval" in result.stderr
        assert "--allow-gaps" in result.stderr
    as_json = run_cli(settings, "import", "demo", str(sample), "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["error"]["code"] == "invalid_request"
    assert counters(client)["windows"]["total"]["pageviews"] == 0
    # A file that truly holds only those days goes in with --allow-gaps.
    rows = sample.read_text(encoding="utf-8").splitlines()[1:]
    allowed = ok_json(settings, "import", "demo", str(sample), "--allow-gaps")
    assert allowed["imported"] == len(rows)
    first = rows[0].split(",")
    assert allowed["first"] == first[0]
    assert csv_days(settings, "--from", first[0], "--to", first[0])[1:] == [
        f"{first[0]},{first[2]},{first[3]},{first[1]}"
    ]
    pageviews = sum(int(row.split(",")[2]) for row in rows)
    assert counters(client)["windows"]["total"]["pageviews"] == pageviews


def test_a_daily_file_with_missing_days_is_not_taken_for_a_monthly_one(
    settings: Settings, client: FlaskClient, tmp_path: Path
) -> None:
    path = tmp_path / "daily.csv"
    path.write_text(
        "date,pageviews\n2025-01-31,5\n2025-02-01,6\n2025-02-03,7\n2025-03-01,8\n",
        encoding="utf-8",
    )
    assert ok_json(settings, "import", "demo", str(path))["imported"] == 4


def test_a_big_file_goes_in_calls_of_3660_days(
    settings: Settings, client: FlaskClient, services: Services, tmp_path: Path
) -> None:
    start = date(2000, 1, 1)
    lines = ["date,pageviews,visits,visitors"]
    lines += [f"{start + timedelta(days=n)},1,1,1" for n in range(4000)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    result = ok_json(settings, "import", "demo", str(path))
    assert result["imported"] == 4000
    assert [e.change for e in services.admin.audit(2)] == [
        {"days": 340, "first": "2010-01-08", "last": "2010-12-13"},
        {"days": 3660, "first": "2000-01-01", "last": "2010-01-07"},
    ]
    assert counters(client)["windows"]["total"]["pageviews"] == 4000


def test_an_unknown_site_or_file_is_said(settings: Settings, client: FlaskClient) -> None:
    unknown = run_cli(settings, "import", "nope", str(PLAUSIBLE))
    assert unknown.returncode == 3 and "site 'nope' is not registered" in unknown.stderr
    missing = run_cli(settings, "import", "demo", "/nonexistent/file.csv")
    assert missing.returncode == 2 and "/nonexistent/file.csv" in missing.stderr
