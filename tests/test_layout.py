"""The layout tells where things happen: each module says on its first line what it owns, the
file names lead to where a hit is counted and a period closes, and no module imports itself back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "analytics"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every module of the package that ``name`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            if submodules <= MODULES.keys():
                # ``from analytics import filters`` imports the module analytics.filters.
                found |= submodules
            else:
                found.add(node.module)
    return {target for target in found if target in MODULES and target != name}


def test_every_module_says_on_its_first_line_what_it_owns() -> None:
    for name, path in MODULES.items():
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert docstring, f"{name} has no docstring"
        first = docstring.splitlines()[0]
        assert len(first.split()) >= 4, f"{name}: {first!r} says too little"


def test_no_module_imports_itself_back() -> None:
    graph = {name: imports_of(name) for name in MODULES}
    # The package's __init__ modules import what they wire or re-export; a cycle through one of
    # them is still a cycle, so they stay in the graph.
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for target in sorted(graph[name]):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_a_newcomer_finds_where_a_hit_is_counted_and_a_period_closes() -> None:
    counting = (PACKAGE / "counting.py").read_text(encoding="utf-8")
    assert "def count(self, hit: Hit) -> Outcome:" in counting
    housekeeping = (PACKAGE / "housekeeping.py").read_text(encoding="utf-8")
    assert "def close_periods(self)" in housekeeping
    assert "def build_scheduler(" in (PACKAGE / "scheduler.py").read_text(encoding="utf-8")
    assert "class Housekeeper" not in (PACKAGE / "scheduler.py").read_text(encoding="utf-8")
    assert (PACKAGE / "store" / "lua" / "hit.lua").is_file()
    assert (PACKAGE / "store" / "lua" / "close.lua").is_file()


def test_routes_are_given_their_services_and_never_look_them_up() -> None:
    for name, path in MODULES.items():
        if name.startswith("analytics.web"):
            source = path.read_text(encoding="utf-8")
            assert "current_app" not in source, name


def test_pure_rules_import_neither_flask_nor_redis() -> None:
    for name in ("periods", "identity", "filters", "sites", "render", "clock", "errors"):
        imported = set()
        for node in ast.walk(ast.parse(MODULES[f"analytics.{name}"].read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & {"flask", "redis", "werkzeug"}, name
