"""The layering rule of ``toogreen/__init__.py``, checked on the source: what imports what."""

from __future__ import annotations

import ast
from pathlib import Path

from toogreen import PROJECT_ROOT

PROCESS_PACKAGES = ("streams", "sinks", "api", "connectors")
ENGINE_PACKAGES = ("faust", "aiokafka", "confluent_kafka", "duckdb", "fastapi", "httpx", "mode")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports inside functions count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _sources(package: str) -> list[Path]:
    return sorted((PROJECT_ROOT / package).rglob("*.py"))


def test_toogreen_imports_no_process_package_outside_its_composition_root() -> None:
    offenders = [
        f"{_module_name(path)} imports {name}"
        for path in _sources("toogreen")
        if not _module_name(path).startswith("toogreen.app")
        for name in _imports(path)
        if name.split(".")[0] in PROCESS_PACKAGES
    ]
    assert offenders == []


def test_the_domain_imports_no_engine_and_nothing_above_it() -> None:
    offenders = [
        f"{_module_name(path)} imports {name}"
        for path in _sources("toogreen/domain")
        for name in _imports(path)
        if name.split(".")[0] in ENGINE_PACKAGES + PROCESS_PACKAGES
        or name.startswith(("toogreen.app", "toogreen.kafka", "toogreen.evaluation"))
    ]
    assert offenders == []


def test_no_import_circle_in_the_domain() -> None:
    modules = {_module_name(path): path for path in _sources("toogreen/domain")}
    graph = {
        name: {imported for imported in _imports(path) if imported in modules and imported != name}
        for name, path in modules.items()
    }
    visiting: list[str] = []
    done: set[str] = set()
    circles: list[list[str]] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            circles.append([*visiting[visiting.index(name) :], name])
            return
        visiting.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert circles == []
