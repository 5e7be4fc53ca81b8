"""The layout keeps the architecture readable (issue 15): in guardrails/ and detectors/ no import cycle
(module-level or inside functions), no module imports another module's underscore names, and no module
is over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("guardrails", "detectors")
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for base in PACKAGES:
        for p in (ROOT / base).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = p
    return mods


def _imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """Edges module -> imported module (TYPE_CHECKING blocks excluded), and underscore imports."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private: list[tuple[str, str, str]] = []
    for m, p in mods.items():
        is_pkg = p.name == "__init__.py"

        def walk(nodes: list[ast.stmt], m: str = m, is_pkg: bool = is_pkg) -> None:
            for n in nodes:
                if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
                    continue
                if isinstance(n, ast.ImportFrom):
                    if n.level:
                        parts = m.split(".") if is_pkg else m.split(".")[:-1]
                        parts = parts[:len(parts) - n.level + 1]
                        base = ".".join(parts + ([n.module] if n.module else []))
                    else:
                        base = n.module or ""
                    for a in n.names:
                        if a.name.startswith("_") and base in mods:
                            private.append((m, base, a.name))
                        target = f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                        if target in mods and target != m:
                            edges[m].add(target)
                elif isinstance(n, ast.Import):
                    for a in n.names:
                        if a.name in mods and a.name != m:
                            edges[m].add(a.name)
                for field in ("body", "orelse", "finalbody", "handlers"):
                    sub = getattr(n, field, None)
                    if isinstance(sub, list):
                        walk(sub)

        walk(ast.parse(p.read_text()).body)
    return edges, private


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycles() -> None:
    edges, _ = _imports(_modules())
    assert sum(len(v) for v in edges.values()) > 100  # the scan sees the real graph
    assert _cycle(edges) is None


def test_no_private_names_imported_across_modules() -> None:
    _, private = _imports(_modules())
    assert private == []


def test_no_module_over_600_lines() -> None:
    sizes = {name: len(p.read_text().splitlines()) for name, p in _modules().items()}
    assert len(sizes) > 50
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
