"""The package's layout as docs/development.md draws it: no import circles among the data modules, counting
the imports inside functions too (a circle there still means two modules own each other's ideas)."""

import ast
from pathlib import Path

import vampkeras

PACKAGE = Path(vampkeras.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every vampkeras module that ``path`` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vampkeras"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("vampkeras"))
    return names


def test_the_data_modules_import_each_other_without_a_circle():
    modules = {f"vampkeras.data.{path.stem}": path for path in (PACKAGE / "data").glob("*.py")
               if path.stem != "__init__"}
    graph = {name: sorted(imported_modules(path) & set(modules) - {name}) for name, path in modules.items()}
    assert "vampkeras.data.user_data" in graph["vampkeras.data.registry"]          # the registry dispatches to it
    assert "vampkeras.data.registry" not in graph["vampkeras.data.user_data"]
    state = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "import circle: " + " -> ".join(trail + [name])
        state[name] = "open"
        for other in graph[name]:
            visit(other, trail + [name])
        state[name] = "done"

    for name in graph:
        visit(name, [])
