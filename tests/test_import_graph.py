"""No import cycles between the project's modules (the acting layer's guardrail, issue 11).

Static: the import statements of every module of d2f_core, d2f_plugins and d2f_conformance are
read with ``ast`` (no import runs). Two rules:

* module-level imports form no cycle anywhere;
* no two plugin modules import each other, even lazily inside functions (a plugin family reuses
  another's code through a shared module, never by mutual imports: e.g. the Deoxys Franka and the
  robosuite arms share the Panda kinematics module).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"d2f_core": "d2f_core", "d2f_plugins": "plugins", "d2f_conformance": "conformance_tests"}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, folder in PACKAGES.items():
        for f in (ROOT / folder).rglob("*.py"):
            parts = [pkg, *f.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def _targets(mods: dict[str, Path], mod: str, node: ast.AST) -> set[str]:
    names = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            pkg = mod.split(".") if mods[mod].name == "__init__.py" else mod.split(".")[:-1]
            pkg = pkg[:len(pkg) - node.level + 1]
            base = ".".join(pkg + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
    out = set()
    for n in names:
        while n and n not in mods:
            n = n.rpartition(".")[0]
        if n and n != mod:
            out.add(n)
    return out


def _graph(module_level: bool) -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for m, f in mods.items():
        tree = ast.parse(f.read_text())
        nodes = tree.body if module_level else list(ast.walk(tree))
        graph[m] = set().union(*[_targets(mods, m, n) for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))])
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    g = _graph(module_level=True)
    assert "d2f_core.pipeline" in g["d2f_core.acting.evaluate"] or "d2f_core.pipeline" in _graph(False)[
        "d2f_core.acting.evaluate"]
    assert "d2f_core.protocols" in g["d2f_core.registry"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_level_import_cycle():
    assert _cycles(_graph(module_level=True)) == []


def test_no_two_plugin_modules_import_each_other():
    g = _graph(module_level=False)
    plugins = {m: {d for d in deps if d.startswith("d2f_plugins.") and not (ROOT / "plugins").joinpath(
        *d.split(".")[1:], "__init__.py").is_file()} for m, deps in g.items() if m.startswith("d2f_plugins.")}
    plugins = {m: d & set(plugins) for m, d in plugins.items()}
    assert _cycles(plugins) == []
