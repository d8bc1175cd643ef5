"""One frozen Settings, read once at start from config/analytics.toml and ANALYTICS_* variables.

Each setting is declared once, as a field of ``Settings``: its type is the field's annotation
(``| None`` when it may be unset), its default the field's, and ``spec(...)`` gives its meaning,
its range or choices and any rule of its own. Reading the TOML file and the environment, coercion,
validation, error messages, the README's table of settings and the shipped config file all follow
from that.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import textwrap
import tomllib
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from analytics.errors import SettingsError

ENV_PREFIX = "ANALYTICS_"
KEY_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,32}")
TOKEN = re.compile(r"[\x21-\x7e]{16,512}")
"""A bearer token: what an HTTP header carries unchanged (printable ASCII, no spaces)."""
CONFIG_ENV = "ANALYTICS_CONFIG"
DEFAULT_CONFIG_FILE = Path("config") / "analytics.toml"
REDIS_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)
LOG_FORMATS = ("json", "text")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
RENAMED = {"serve_threads": "threads"}
"""Settings that have had another name: the old name, and the setting it is now. A start that
still uses an old one, in the file or as a variable, stops and says what to use instead."""
REMOVED = {
    "bind": "give the address as `--host` and `--port` of `analytics web` or `analytics serve`",
    "rate_limit_visitor_per_minute": (
        "the limits are per network now, over a window: see `limit_new_visitors`, "
        "`limit_visits`, `limit_pageviews`, `limit_heartbeats` and `limit_window_minutes`"
    ),
    "rate_limit_ip_per_minute": (
        "the limits are per network now, over a window: see `limit_new_visitors`, "
        "`limit_visits`, `limit_pageviews`, `limit_heartbeats` and `limit_window_minutes`"
    ),
}
"""Settings that are gone: the name, and what to do instead. A start that still sets one, in
the file or as a variable, stops and says so."""
# Kubernetes gives every pod variables for each Service of its namespace, named after the
# Service: one named `analytics` brings ANALYTICS_SERVICE_HOST, ANALYTICS_SERVICE_PORT(_NAME)
# and, Docker-link style, ANALYTICS_PORT=tcp://IP:PORT and ANALYTICS_PORT_8000_TCP(_ADDR,
# _PORT, _PROTO). Docker's --link to a container aliased `analytics` sets the same PORT ones,
# ANALYTICS_NAME=/this/analytics and ANALYTICS_ENV_* (the linked container's environment).
# None is a setting, and a pod cannot leave them out, so they are passed over; every other
# unknown ANALYTICS_* variable still stops the start. PORT and NAME, which an operator might
# mean as settings, are passed over only with the values these set.
SERVICE_LINK_NAMES = re.compile(
    r"ANALYTICS_(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?"
    r"|PORT_[0-9]{1,5}_(?:TCP|UDP|SCTP)(?:_(?:ADDR|PORT|PROTO))?|ENV_.+)"
)
SERVICE_LINK_VALUES = {
    "ANALYTICS_PORT": re.compile(r"(?:tcp|udp|sctp)://\S+:[0-9]{1,5}"),
    "ANALYTICS_NAME": re.compile(r"/\S+"),
}
TABLE_START = "<!-- settings:start -->"
TABLE_END = "<!-- settings:end -->"


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may run on, within a container's CPU quota (cgroup v2) if any."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


@dataclass(frozen=True)
class Rule:
    """A check of a setting's value beyond its type, range and choices."""

    says: str
    """The rule in words, for the table of settings."""
    problem: Callable[[Any], str | None]
    """What is wrong with a value (the end of the error message), or None when it is right."""


@dataclass(frozen=True)
class Spec:
    meaning: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    rule: Rule | None = None
    default_says: str = ""
    """The default in words, where its value alone does not tell a reader (unset, computed)."""
    older: tuple[tuple[str, Any], ...] = ()
    """Older spellings of values, still accepted: (spelling, the value it stands for)."""
    left_unset: str = ""
    """Why the shipped config file leaves the key commented out, though its default is a value."""


def spec(
    meaning: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] = (),
    rule: Rule | None = None,
    default_says: str = "",
    older: tuple[tuple[str, Any], ...] = (),
    left_unset: str = "",
) -> dict[str, Spec]:
    """The metadata that makes a field of Settings a setting."""
    return {"setting": Spec(meaning, low, high, choices, rule, default_says, older, left_unset)}


def _redis_url_problem(value: str) -> str | None:
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme.endswith("+sentinel"):
        # The Sentinel form is checked whole here, so a start stops on it before connecting.
        from analytics.store.connection import parse_sentinel_url

        try:
            parse_sentinel_url(value)
        except ValueError as err:
            return str(err)
    if scheme in REDIS_SCHEMES:
        return None
    schemes = ", ".join(x + "://" for x in REDIS_SCHEMES)
    # The value without its credentials: a mistyped scheme must not print the password.
    shown = re.sub(r"(?<=://).*@", "***@", value)
    return f"must start with one of {schemes}; got {shown!r}"


def _token_problem(value: str) -> str | None:
    if TOKEN.fullmatch(value):
        return None
    return "must be at least 16 printable ASCII characters, without spaces"


def _file_problem(value: Path) -> str | None:
    return None if value.is_file() else f"no such file {str(value)!r}"


def _key_prefix_problem(value: str) -> str | None:
    return None if KEY_PREFIX.fullmatch(value) else "must be 1 to 32 of A-Z a-z 0-9 _ . -"


REDIS_URL = Rule(
    "a "
    + ", ".join(f"`{scheme}://`" for scheme in REDIS_SCHEMES[:-1])
    + f" or `{REDIS_SCHEMES[-1]}://` URL",
    _redis_url_problem,
)
BEARER_TOKEN = Rule("16 to 512 printable ASCII characters, no spaces", _token_problem)
EXISTING_FILE = Rule("the path of an existing file", _file_problem)
PREFIX = Rule("1 to 32 of `A-Z a-z 0-9 _ . -`", _key_prefix_problem)


@dataclass(frozen=True)
class Settings:
    """Every setting; each one ``name`` is overridden by the variable ``ANALYTICS_NAME``."""

    redis_url: str | None = field(
        default=None,
        metadata=spec(
            "the Redis to count in; `redis+cluster://host:port` for a Redis Cluster, "
            "`redis+sentinel://host:port,host:port/name` for the primary that Sentinels name",
            rule=REDIS_URL,
            default_says="unset: embedded Redis",
        ),
    )
    data_dir: Path = field(
        default=Path("data"),
        metadata=spec(
            "where the embedded Redis of `analytics serve` and the spool (`spool/`) keep their "
            "files"
        ),
    )
    spool_max_bytes: int = field(
        default=256 << 20,
        metadata=spec(
            "how much the spool may hold on disk: hits kept while Redis cannot take them; "
            "past it a hit answers 503",
            low=1 << 20,
            high=1 << 40,
        ),
    )
    admin_token: str | None = field(
        default=None,
        metadata=spec(
            "the bearer token of the admin API and `/admin`",
            rule=BEARER_TOKEN,
            default_says="unset: admin API off",
        ),
    )
    trusted_proxies: int = field(
        default=0,
        metadata=spec("how many reverse proxies in front set `X-Forwarded-For`", low=0, high=10),
    )
    sites_file: Path | None = field(
        default=None,
        metadata=spec(
            "a TOML file of `[[site]]` tables registered or updated at start",
            rule=EXISTING_FILE,
            default_says="unset: the site `demo`",
        ),
    )
    key_prefix: str = field(
        default="va", metadata=spec("the prefix of every Redis key", rule=PREFIX)
    )
    limit_window_minutes: int = field(
        default=10,
        metadata=spec(
            "the window of the limits below, in minutes: what one network (an IPv4 address, an "
            "IPv6 /64) may add to one site within any such window",
            low=1,
            high=1440,
        ),
    )
    limit_new_visitors: int = field(
        default=60,
        metadata=spec(
            "new visitors one network may add to a site in the window, and how many it keeps "
            "online at once",
            low=1,
            high=10_000_000,
        ),
    )
    limit_visits: int = field(
        default=60,
        metadata=spec(
            "visits one network may start on a site in the window", low=1, high=10_000_000
        ),
    )
    limit_pageviews: int = field(
        default=600,
        metadata=spec(
            "pageviews one network may add to a site in the window", low=1, high=10_000_000
        ),
    )
    limit_heartbeats: int = field(
        default=600,
        metadata=spec(
            "heartbeats one network may send to a site in the window", low=1, high=10_000_000
        ),
    )
    max_pages: int = field(
        default=10_000,
        metadata=spec(
            "pages a site's list keeps per period; past it the least viewed gives way",
            low=10,
            high=1_000_000,
        ),
    )
    max_referrers: int = field(
        default=1_000,
        metadata=spec(
            "referrer hosts a site's list keeps per period; past it the least seen gives way",
            low=10,
            high=1_000_000,
        ),
    )
    duplicate_window_seconds: int = field(
        default=10,
        metadata=spec("a reload of the same page within this counts once", low=0, high=3600),
    )
    read_cache_seconds: float = field(
        default=1.0, metadata=spec("how old a counters answer may be", low=0, high=2)
    )
    site_cache_seconds: float = field(
        default=5.0, metadata=spec("how long a process keeps a site's settings", low=0, high=300)
    )
    threads: int = field(
        default=8,
        metadata=spec(
            "worker threads of each web worker process of `analytics serve` and `analytics web`",
            low=1,
            high=256,
        ),
    )
    workers: int = field(
        default_factory=usable_cpus,
        metadata=spec(
            "web worker processes of `analytics serve` and `analytics web` (`--workers` overrides)",
            low=1,
            high=1024,
            default_says="one per CPU this process may use, within a container's CPU quota",
        ),
    )
    header_timeout_seconds: int = field(
        default=10,
        metadata=spec(
            "seconds a client of `analytics serve` and `analytics web` has to send a request's "
            "headers, from when it connects or its previous answer ends (so also how long an "
            "idle kept-alive connection stays open); then the connection is closed unanswered",
            low=1,
            high=60,
        ),
    )
    body_timeout_seconds: int = field(
        default=10,
        metadata=spec(
            "seconds a client of `analytics serve` and `analytics web` has to send a request's "
            "whole body once its headers are in; then it is answered 408 and the connection "
            "closed",
            low=1,
            high=60,
        ),
    )
    access_log: bool = field(
        default=False,
        metadata=spec(
            "whether the web workers log a line per request, without the client's address (a "
            "line per beacon costs CPU, and the counts are in `/metrics`)",
            # What turned the access log on before access_log was a setting.
            older=(("-", True),),
        ),
    )
    period_retention_days: int = field(
        default=62,
        metadata=spec(
            "days a period's live keys stay after it ends; the frozen history stays for ever",
            # 62 days keep last_month whole on its last day.
            low=62,
            high=36500,
        ),
    )
    housekeeping_interval_seconds: float = field(
        default=60.0, metadata=spec("how often the housekeeping jobs run", low=1, high=3600)
    )
    close_grace_seconds: int = field(
        default=300,
        metadata=spec("how long after its end a period is closed", low=0, high=3600),
    )
    metrics_token: str | None = field(
        default=None,
        metadata=spec(
            "a bearer token that `/metrics` asks for",
            rule=BEARER_TOKEN,
            default_says="unset: `/metrics` open",
        ),
    )
    metrics_max_sites: int = field(
        default=100,
        metadata=spec(
            "how many sites (the first by id) get per-site gauges in `/metrics`; 0: none",
            low=0,
            high=10_000,
        ),
    )
    metrics_site_gauges: bool | None = field(
        default=None,
        metadata=spec(
            "whether `/metrics` has the per-site gauges, which list site ids with their live "
            "counts; set, it holds whatever the token",
            default_says="unset: on when `ANALYTICS_METRICS_TOKEN` is set, else off",
        ),
    )
    log_format: str = field(
        default="json",
        metadata=spec(
            "log lines: one JSON object per line, or plain text",
            choices=LOG_FORMATS,
            left_unset=(
                "Left unset, the `analytics` command writes text to a terminal and JSON "
                "elsewhere; set here or by ANALYTICS_LOG_FORMAT, it holds on a terminal too."
            ),
        ),
    )
    # Not a setting: where each configured value came from (a file's key or a variable), for
    # error messages and for a default that yields to circumstance (log_format on a terminal).
    # A setting left at its default, absent or empty, has none.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for declared in DECLARED:
            problem = declared.problem(getattr(self, declared.name))
            if problem is not None:
                raise SettingsError(declared.name, problem)

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: Path | None = None,
    ) -> Settings:
        """Defaults, then the config file, then the environment; validated before returning."""
        env = os.environ if environ is None else environ
        raw: dict[str, tuple[Any, str]] = {}
        path = config_file or _config_path(env)
        if path is not None:
            source = CONFIG_ENV if config_file is None and env.get(CONFIG_ENV) else "config file"
            for name, value in read_toml(path, source).items():
                if name not in BY_NAME:
                    raise SettingsError(f"{path}: {name}", _unknown(name))
                raw[name] = (value, f"{path}: {name}")
        for var in sorted(env):
            if var.startswith(ENV_PREFIX) and var != CONFIG_ENV:
                name = var.removeprefix(ENV_PREFIX).lower()
                if name not in BY_NAME or var != BY_NAME[name].variable:
                    if service_link(var, env[var]):
                        continue
                    raise SettingsError(var, _unknown(name, ENV_PREFIX))
                raw[name] = (env[var], var)
        values = {name: BY_NAME[name].parse(value, src) for name, (value, src) in raw.items()}
        sources = {name: src for name, (value, src) in raw.items() if value not in (None, "")}
        try:
            return cls(**values, sources=sources)
        except SettingsError as err:
            raise SettingsError(sources.get(err.setting, err.setting), _problem(err)) from None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Declared:
    """A setting as declared: its name, type, default and Spec."""

    name: str
    kind: type
    optional: bool
    spec: Spec
    declaration: dataclasses.Field[Any]

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def default(self) -> Any:
        if self.declaration.default_factory is not dataclasses.MISSING:
            return self.declaration.default_factory()
        return self.declaration.default

    def parse(self, raw: Any, source: str) -> Any:
        """The value of ``raw`` (a TOML value, or an environment variable's text); an empty
        one means the default."""
        if raw is None or raw == "":
            return self.default()
        for spelling, meant in self.spec.older:
            if isinstance(raw, str) and raw.strip() == spelling:
                return meant
        value = _COERCE[self.kind](raw)
        if value is None:
            raise SettingsError(source, f"must be {self.what()}, got {raw!r}")
        return value

    def what(self) -> str:
        return {
            int: "a whole number",
            float: "a number",
            bool: "true or false",
            str: "text",
            Path: "a path",
        }[self.kind]

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of the right type, or None."""
        spec = self.spec
        if value is None:
            return None if self.optional else "must be set"
        if spec.low is not None and spec.high is not None and not spec.low <= value <= spec.high:
            return f"must be between {spec.low} and {spec.high}, got {value}"
        if spec.choices and value not in spec.choices:
            return f"must be one of {', '.join(spec.choices)}"
        return spec.rule.problem(value) if spec.rule is not None else None


def _int(raw: Any) -> int | None:
    if isinstance(raw, bool | float):
        return None
    if isinstance(raw, int):
        return raw
    try:
        return int(raw.strip()) if isinstance(raw, str) else None
    except ValueError:
        return None


def _float(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    try:
        return float(raw.strip()) if isinstance(raw, str) else None
    except ValueError:
        return None


def _bool(raw: Any) -> bool | None:
    if isinstance(raw, bool):
        return raw
    word = raw.strip().lower() if isinstance(raw, str) else None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


_COERCE: dict[type, Callable[[Any], Any]] = {
    int: _int,
    float: _float,
    bool: _bool,
    str: lambda raw: raw if isinstance(raw, str) else None,
    Path: lambda raw: Path(raw) if isinstance(raw, str) else None,
}


def _declarations() -> tuple[Declared, ...]:
    hints = get_type_hints(Settings)
    declared = []
    for f in fields(Settings):
        spec = f.metadata.get("setting")
        if spec is None:
            continue
        hint = hints[f.name]
        kinds = set(hint.__args__) if isinstance(hint, types.UnionType) else {hint}
        optional = type(None) in kinds
        (kind,) = kinds - {type(None)}
        declared.append(Declared(f.name, kind, optional, spec, f))
    return tuple(declared)


DECLARED = _declarations()
BY_NAME = {d.name: d for d in DECLARED}


def _unknown(name: str, prefix: str = "") -> str:
    """What to say of a name that is no setting: what replaced it, or the setting it is close
    to (names as in the file, or with ``prefix`` as variables)."""

    def named(setting: str) -> str:
        return prefix + setting.upper() if prefix else setting

    if name in RENAMED:
        return f"renamed: use {named(RENAMED[name])} instead"
    if name in REMOVED:
        return f"removed: {REMOVED[name]}"
    close = difflib.get_close_matches(name, list(BY_NAME), n=1, cutoff=0.6)
    return "unknown setting" + (f"; did you mean {named(close[0])}?" if close else "")


def _problem(err: SettingsError) -> str:
    return err.message.split(": ", 1)[1]


def service_link(variable: str, value: str) -> bool:
    """Whether a variable is one that Kubernetes or Docker sets for a service or a link named
    `analytics` (see SERVICE_LINK_NAMES), not a setting."""
    if SERVICE_LINK_NAMES.fullmatch(variable):
        return True
    shape = SERVICE_LINK_VALUES.get(variable)
    return shape is not None and shape.fullmatch(value) is not None


def _config_path(env: Mapping[str, str]) -> Path | None:
    if env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
        if not path.is_file():
            raise SettingsError(CONFIG_ENV, f"no such file {str(path)!r}")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def read_toml(path: Path, source: str) -> dict[str, Any]:
    """The tables of a TOML file; a SettingsError naming ``source`` when it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise SettingsError(source, f"cannot read {str(path)!r}: {err}") from None


# -- the table of settings in the README --------------------------------------------------


def _values(declared: Declared) -> str:
    spec = declared.spec
    if spec.choices:
        return " or ".join(f"`{choice}`" for choice in spec.choices)
    if spec.rule is not None:
        return spec.rule.says
    if declared.kind is bool:
        return "`true` or `false`"
    if spec.low is not None and spec.high is not None:
        return f"{declared.what()} from {_shown(spec.low)} to {_shown(spec.high)}"
    return declared.what()


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}" if value >= 10_000 else str(value)
    return str(value)


def _meaning(declared: Declared) -> str:
    older = "; ".join(
        f"`{spelling}`, an older spelling, means `{_shown(meant)}`"
        for spelling, meant in declared.spec.older
    )
    return f"{declared.spec.meaning}; {older}" if older else declared.spec.meaning


def _default(declared: Declared) -> str:
    if declared.spec.default_says:
        return declared.spec.default_says
    return f"`{_shown(declared.default())}`"


def settings_table(declared: Iterable[Declared] = DECLARED) -> str:
    """The README's table of settings, in markdown."""
    lines = [
        "| variable | meaning | values | default |",
        "| --- | --- | --- | --- |",
        *(f"| `{d.variable}` | {_meaning(d)} | {_values(d)} | {_default(d)} |" for d in declared),
    ]
    return "\n".join(lines) + "\n"


def _renamed() -> str:
    return "".join(
        f"Renamed: `{ENV_PREFIX}{old.upper()}` (`{old}` in the file) is now "
        f"`{BY_NAME[new].variable}` (`{new}`); the old name stops the start and says so.\n"
        for old, new in RENAMED.items()
    ) + "".join(
        f"Removed: `{ENV_PREFIX}{old.upper()}` (`{old}` in the file): {instead}; the old name "
        "stops the start and says so.\n"
        for old, instead in REMOVED.items()
    )


def readme_section() -> str:
    """What stands between the README's markers: the table and how to read it."""
    return (
        f"{TABLE_START}\n"
        "The key `name` of the file is the variable `ANALYTICS_NAME`. An empty value means\n"
        "the default. A variable `ANALYTICS_...` that is none of these (nor `ANALYTICS_CONFIG`)\n"
        "stops the start too, except those that Kubernetes sets for a Service named\n"
        "`analytics`, and Docker for a link of that name, which are passed over:\n"
        "`ANALYTICS_SERVICE_HOST`, `ANALYTICS_SERVICE_PORT...`, `ANALYTICS_PORT=tcp://...`,\n"
        "`ANALYTICS_PORT_8000_TCP...`, `ANALYTICS_NAME=/...` and `ANALYTICS_ENV_...`.\n"
        f"{_renamed()}\n"
        f"{settings_table()}"
        f"{TABLE_END}"
    )


# -- the shipped config file ------------------------------------------------------------------

CONFIG_WIDTH = 92
CONFIG_HEADER = f"""\
visit-analytics settings, read at start from {DEFAULT_CONFIG_FILE} relative to the working \
directory, or from the file named by {CONFIG_ENV}. Each key is overridden by the variable \
{ENV_PREFIX}<KEY IN CAPITALS>, e.g. {ENV_PREFIX}TRUSTED_PROXIES=1. An empty value means the \
default; a key that is no setting stops the start.

Every setting is here with its built-in default; a key whose default no value can show \
(unset, or computed at start) is commented out. Generated from the declarations in \
analytics/settings.py (config_file_text), and a test keeps the two the same."""


def _comment(*paragraphs: str) -> list[str]:
    """Paragraphs as TOML comment lines; an empty one is a line of its own."""
    lines = [line for text in paragraphs for line in textwrap.wrap(text, CONFIG_WIDTH - 2) or [""]]
    return ["# " + line if line else "#" for line in lines]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _key(declared: Declared) -> str:
    value = declared.declaration.default
    if value is None or value is dataclasses.MISSING:
        return f'# {declared.name} = ""'
    line = f"{declared.name} = {_toml(value)}"
    return f"# {line}" if declared.spec.left_unset else line


def config_file_text(declared: Iterable[Declared] = DECLARED) -> str:
    """config/analytics.toml as shipped: each setting's meaning, values and default, and its
    key set to the default (commented out when the default is unset or computed)."""
    lines = _comment(*CONFIG_HEADER.split("\n"))
    for d in declared:
        meaning = _meaning(d)
        about = [
            f"{meaning[0].upper()}{meaning[1:]}.",
            f"Values: {_values(d)}. Default: {_default(d)}.",
        ]
        if d.spec.left_unset:
            about.append(d.spec.left_unset)
        lines += ["", *_comment(*about), _key(d)]
    return "\n".join(lines) + "\n"
