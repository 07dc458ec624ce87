"""The `d2f` command line as users call it (subprocesses, like the acceptance tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from d2f_core.protocols import KINDS

ROOT = Path(__file__).resolve().parents[1]
D2F = [sys.executable, "-m", "d2f_core.cli"]


def d2f(*args, cwd=ROOT, env=None):
    e = dict(os.environ)
    e.pop("D2F_STRICT_PLUGINS", None)
    e.update(env or {})
    return subprocess.run(D2F + list(args), capture_output=True, text=True, cwd=cwd, env=e, timeout=120)


def test_plugins_json_lists_every_kind_usable():
    p = d2f("plugins", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    for r in rows:
        assert {"name", "kind", "package", "version", "status", "error", "capabilities", "extra"} <= set(r)
        assert r["status"] in ("ok", "unavailable", "failed")
        assert r["kind"] in KINDS or r["status"] == "failed"
    ok_kinds = {r["kind"] for r in rows if r["status"] == "ok"}
    assert set(KINDS) <= ok_kinds, f"kinds without a usable plugin: {set(KINDS) - ok_kinds}"
    assert not [r for r in rows if r["status"] == "failed" and r["package"] == "dream2flow"]


def test_plugins_table_shows_status():
    p = d2f("plugins")
    assert p.returncode == 0 and "zero-motion" in p.stdout and "ok" in p.stdout


def test_bad_config_is_one_clear_line_without_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("world: {plugin: tabletop-2d}\ntracker: {plugin: zero-moton}\n")
    p = d2f("run", str(cfg), "--out", str(tmp_path / "run"))
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "no tracker plugin named 'zero-moton'" in p.stderr and "Did you mean 'zero-motion'" in p.stderr
    p = d2f("run", str(cfg), "--set", "tracker.options.x=1", "--set", "tracker.plugin=zero-motion",
            "--out", str(tmp_path / "run"))
    assert p.returncode == 2 and "takes no options" in p.stderr and "Traceback" not in p.stderr
    p = d2f("run", str(tmp_path / "missing.yaml"))
    assert p.returncode == 2 and "config file not found" in p.stderr


def test_demo_stops_where_plugins_are_missing_and_says_so(tmp_path):
    out = tmp_path / "demo"
    p = d2f("demo", "--out", str(out), "--set", "world.plugin=no-such-world")
    assert p.returncode == 1
    res = json.loads((out / "result.json").read_text())
    assert res["stopped_at"] == "observe"
    assert "no-such-world" in res["message"] and "not installed" in res["message"]
    assert "no-such-world" in p.stderr
    assert (out / "config.yaml").exists() and (out / "manifest.json").exists()


def test_check_unknown_name_suggests(tmp_path):
    p = d2f("check", "zero-moton")
    assert p.returncode == 2 and "Did you mean 'zero-motion'" in p.stderr
