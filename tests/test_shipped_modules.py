"""Shipped plugin modules hold no test machinery: no HTTP server (the service stand-ins live in
d2f_conformance.standins), no test-only manifest fields (conformance settings live in
d2f_conformance), and ``d2f plugins`` loads none of it."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"

TO_CONVERT: dict[str, str] = {}
"""Modules of folders still to convert, allowed the deprecated check_options / check_skip until then
(move their values to d2f_conformance/builtin.py and drop the entry here)."""

SERVER_MODULES = ("http.server", "socketserver", "wsgiref")
SERVER_BASES = re.compile(r"(HTTPServer|HTTPRequestHandler|StandInServer|TCPServer|WSGIServer)$")
TEST_FIELDS = re.compile(r"\b(check_options|check_skip)\b")


def _modules() -> list[Path]:
    return sorted(p for p in PLUGINS.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _base_names(cls: ast.ClassDef) -> list[str]:
    return [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in cls.bases]


def test_no_plugin_module_defines_or_imports_an_http_server():
    found = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(), rel)
        found += [f"{rel}: imports {m}" for m in sorted(_imports(tree))
                  if any(m == s or m.startswith(s + ".") for s in SERVER_MODULES)]
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            bases = [b for b in _base_names(cls) if SERVER_BASES.search(b)]
            if bases or cls.name.endswith(("StandIn", "StandInServer")):
                found.append(f"{rel}:{cls.lineno}: class {cls.name}({', '.join(_base_names(cls))})")
    assert not found, ("test machinery in shipped plugin modules (move it to d2f_conformance.standins or "
                       "tests/):\n" + "\n".join(found))


def test_no_plugin_module_carries_test_only_manifest_fields():
    found = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        if rel in TO_CONVERT:
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if TEST_FIELDS.search(line):
                found.append(f"{rel}:{i}: {line.strip()}")
    assert not found, ("test-only metadata in shipped plugin modules; put it in d2f_conformance/builtin.py "
                       "(built-in) or a dream2flow.conformance entry point (third party):\n" + "\n".join(found))


def test_the_stand_ins_live_in_d2f_conformance():
    from d2f_conformance.standins import KlingStandIn, StandInServer, VeoStandIn

    assert issubclass(VeoStandIn, StandInServer) and issubclass(KlingStandIn, StandInServer)
    assert VeoStandIn.__module__ == "d2f_conformance.standins.veo"
    assert KlingStandIn.__module__ == "d2f_conformance.standins.kling"
    import d2f_plugins.video.kling as kling
    import d2f_plugins.video.veo as veo
    for mod in (kling, veo):
        assert not [n for n in vars(mod) if "StandIn" in n], mod.__name__


def test_d2f_plugins_loads_no_server_and_no_conformance_code():
    code = ("import json, sys; from d2f_core.registry import Registry; rows = Registry().rows(); "
            "print(json.dumps({'rows': len(rows), 'mods': sorted(m for m in sys.modules if m.startswith("
            "('http.server', 'socketserver', 'd2f_conformance')))}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rows"] >= 30 and result["mods"] == [], result
